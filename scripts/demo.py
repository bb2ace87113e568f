"""`make demo`: what Ferry can do today, for real, on this machine.

Starts a local registry with htpasswd auth on 127.0.0.1, pushes a generated multi-arch image
with Ferry's registry client, reads it back (resolve by HEAD, manifests verified by digest,
every blob streamed and verified), prints what it found, and stops the registry it started.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from shared.credentials import Secret, UsernamePassword
from shared.oci import Index, parse_manifest
from shared.registry import RegistryClient
from tests.harness.images import make_multiarch, push_image
from tests.harness.registry import basic_registry


async def run(host: str, credential: UsernamePassword) -> None:
    image = make_multiarch(["linux/amd64", "linux/arm64/v8", "windows/amd64"], seed="demo")
    async with RegistryClient(host, credential) as client:
        pushed = await push_image(client, "demo/hello", image, "1.0")
        print(f"pushed  {host}/demo/hello:1.0 -> {pushed}")
        root = await client.resolve("demo/hello", "1.0")
        print(f"resolve {root.media_type} {root.digest} ({root.size} bytes)")
        _, body = await client.fetch_manifest("demo/hello", str(root.digest))
        index = parse_manifest(body)
        assert isinstance(index, Index)
        total = 0
        for child in index.manifests:
            _, child_body = await client.fetch_manifest("demo/hello", str(child.digest))
            manifest = parse_manifest(child_body)
            sizes = []
            for blob in getattr(manifest, "blobs", ()):
                n = sum([len(chunk) async for chunk in client.fetch_blob("demo/hello", blob)])
                sizes.append(n)
            total += sum(sizes)
            print(f"  {child.platform!s:16} {child.digest}  {len(sizes)} blobs, {sum(sizes)} bytes, all verified")
        print(f"tags    {await client.list_tags('demo/hello')}")
        print(f"read back {len(index.manifests)} platforms, {total} blob bytes; digests match what was pushed")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ferry-demo-") as tmp:
        registry = basic_registry(Path(tmp), {"demo": "demo-password"}, name="dev")
        print(
            f"started docker-registry (htpasswd) on {registry.host}, pid {registry.proc.pid if registry.proc else '?'}"
        )
        try:
            asyncio.run(run(registry.host, UsernamePassword("demo", Secret("demo-password"))))
        finally:
            registry.stop()
            print("stopped the registry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
