"""`make up`'s signed and unsigned samples (docs/signing.md's worked example, live): a release
key and a CI key made for this run (their public halves under ``.ferry/keys/``), ``team/web:1.0``
signed by the release key (cosign ``.sig``) with an SLSA provenance attestation signed by CI (a
Sigstore bundle made by sigstore-js), and ``team/unsigned:1.0``, signed by nobody. The local
rules' promotion names the policy ``prod``: a push of the first is promoted, of the second
refused with ``SIGNATURE_REQUIRED``."""

from __future__ import annotations

import functools
from pathlib import Path

from shared.registry import RegistryClient
from tests.harness.images import make_image, push_image
from tests.harness.signing import (
    SLSA,
    Key,
    attach,
    bundle_referrer,
    cosign_layer,
    cosign_manifest,
    dsse_bundle,
    push_cosign,
    simple_signing,
    statement,
)

PROVENANCE = {"buildDefinition": {"buildType": "https://ci.example/build/v1"}, "runDetails": {"builder": {"id": "ci"}}}


@functools.cache
def make_keys(keys: Path) -> tuple[Key, Key]:
    """This run's release and CI keys (made once a run); their public halves written under ``keys``."""
    release, ci = Key(), Key()
    keys.mkdir(parents=True, exist_ok=True)
    (keys / "release.pub").write_text(release.public_pem)
    (keys / "ci.pub").write_text(ci.public_pem)
    return release, ci


async def sign_samples(client: RegistryClient, dev: str, digest: str, keys: Path) -> str:
    """Sign ``team/web`` at ``digest``; push ``team/unsigned:1.0``; returns the unsigned digest."""
    release, ci = make_keys(keys)
    root = await client.resolve("team/web", digest)
    payload = simple_signing(f"{dev}/team/web", root.digest)
    await push_cosign(client, "team/web", root.digest, cosign_manifest([cosign_layer(payload, release)]))
    provenance = dsse_bundle(ci, statement(root.digest, SLSA, PROVENANCE, name=f"{dev}/team/web"))
    await attach(client, "team/web", root.digest, bundle_referrer(root, provenance, SLSA))
    unsigned = make_image((100_000,), seed="up-unsigned")
    return str(await push_image(client, "team/unsigned", unsigned, "1.0"))


def rules(keys: Path) -> str:
    """The rules file's authorities and policies (the promotion adds ``verify: prod``)."""
    return (
        "authorities:\n"
        f"  release: {{key: {keys / 'release.pub'}}}\n"
        f"  ci: {{key: {keys / 'ci.pub'}}}\n"
        "policies:\n"
        "  prod:                     # signed by the release key, with a provenance attestation from CI\n"
        "    mode: enforce\n"
        "    signatures: {authorities: [release]}\n"
        "    attestations:\n"
        f"      - {{predicateType: '{SLSA}', authorities: [ci]}}\n"
    )


def banner(api: str, dev: str, signed: str, unsigned: str) -> list[str]:
    hook = f"{api}/runtime/webhooks/eventgrid?functionName=on_image_pushed"

    def push(repository: str, digest: str) -> str:
        return (
            f"    curl -s -X POST '{hook}' -H 'aeg-event-type: Notification' -H 'Content-Type: application/json' "
            f'-d \'[{{"id": "{repository}", "eventType": "Microsoft.ContainerRegistry.ImagePushed", "data": '
            f'{{"target": {{"repository": "{repository}", "tag": "1.0", "digest": "{digest}"}}, '
            f'"request": {{"host": "{dev}"}}}}}}]\''
        )

    return [
        "  promotions verify (policy prod: the release key's signature and CI's SLSA provenance; docs/signing.md):",
        "    a signed push, promoted (the job's result says what verified it):",
        push("team/web", signed),
        "    an unsigned push, refused before a byte moves (SIGNATURE_REQUIRED):",
        push("team/unsigned", unsigned),
    ]
