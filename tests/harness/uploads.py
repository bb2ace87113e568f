"""A 200 MiB image that trickles from a hostile source (its layer never held whole), and what a
real registry itself says of an upload session: for tests that stop an import mid-upload."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any

import httpx

from tests.conftest import Reg
from tests.harness.hostile import Pieces, response
from tests.harness.relay import Relay

LAYER_CHUNK = bytes(range(256)) * 256  # 64 KiB
LAYER_CHUNKS = 3200  # 200 MiB


def streamed_image(layers: dict[str, int]) -> tuple[bytes, str, bytes, str]:
    """A single-platform OCI image of ``layers`` (digest → size; their bytes are the caller's to
    serve): (config, its digest, manifest, its digest)."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": list(layers)}}
    )
    config_digest = f"sha256:{hashlib.sha256(config.encode()).hexdigest()}"
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s}
                   for d, s in layers.items()],
    }).encode()  # fmt: skip
    return config.encode(), config_digest, manifest, f"sha256:{hashlib.sha256(manifest).hexdigest()}"


def manifest_answer(method: str, manifest: bytes, digest: str) -> bytes:
    """A registry's answer to ``HEAD`` or ``GET`` of ``manifest``."""
    fields = {"Content-Type": "application/vnd.oci.image.manifest.v1+json", "Docker-Content-Digest": digest}
    body = manifest if method == "GET" else b""
    return response(200, body, {**fields, "Content-Length": str(len(manifest))}, length=False)


def big_image() -> tuple[dict[str, tuple[bytes, str]], str, bytes, int]:
    """A 200 MiB single-layer image, its layer never held whole: (blobs by digest, the layer's
    digest, the manifest, the layer's size)."""
    hasher = hashlib.sha256()
    for _ in range(LAYER_CHUNKS):
        hasher.update(LAYER_CHUNK)
    layer, size = f"sha256:{hasher.hexdigest()}", len(LAYER_CHUNK) * LAYER_CHUNKS
    config, config_digest, manifest, _ = streamed_image({layer: size})
    return {config_digest: (config, "config")}, layer, manifest, size


def trickling_source(seen_layer: threading.Event) -> Any:
    blobs, layer, manifest, size = big_image()
    digest = f"sha256:{hashlib.sha256(manifest).hexdigest()}"

    def answer(method: str, path: str, headers: dict[str, str]) -> bytes | Pieces:
        if "/manifests/" in path:
            return manifest_answer(method, manifest, digest)
        name = path.rsplit("/", 1)[-1]
        if name == layer:  # 200 MiB at about 6 MB/s: half a minute, unless cancelled
            seen_layer.set()
            start = response(200, b"", {"Content-Length": str(size)}, length=False)
            return [(start, 0.0)] + [(LAYER_CHUNK, 0.01)] * LAYER_CHUNKS
        if name in blobs:
            return response(200, blobs[name][0])
        return response(200, b"{}")

    return answer


def upload_session(registry: Reg, path: str) -> str:
    """What the registry itself says of an upload session: ``open`` (``204``, or, while a body
    streams past the offset in the URL's state, ``BLOB_UPLOAD_INVALID``), else its error code."""
    answer = httpx.get(f"http://{registry.host}{path}")
    if answer.status_code == 204:
        return "open"
    code = str(answer.json()["errors"][0]["code"])
    return "open" if code == "BLOB_UPLOAD_INVALID" else code


def upload_path(relay: Relay, seconds: float, registry: Reg) -> str:
    """The upload URL the import is sending the layer to, once it is: the ``PATCH`` whose session
    stays open (a blob over 1 MiB streams in a ``PATCH``; the small config goes in one ``PUT``)."""
    deadline = time.monotonic() + seconds
    while True:
        for method, path in list(relay.requests):
            if method == "PATCH" and "/blobs/uploads/" in path and _stays_open(registry, path):
                return path
        assert time.monotonic() < deadline, "the layer upload never started"
        time.sleep(0.05)


def _stays_open(registry: Reg, path: str) -> bool:
    if upload_session(registry, path) != "open":
        return False
    time.sleep(0.3)
    return upload_session(registry, path) == "open"
