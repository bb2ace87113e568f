"""What verification adds to a promotion of a small image (issue #24): ``make bench-verify`` or
``PYTHONPATH=. .venv/bin/python -m bench.verify [--runs 20]``.

Two docker-registry processes on loopback (source and target); a small image (3 layers of 256 KiB)
signed each way Ferry verifies. Per case: the promotion (``run_import`` in-process) without and
with the policy, into a fresh target repository each run; ``verify`` alone; the checking alone
(signatures, chains, SETs, identities, over evidence already read: the cost "beyond the
registry round-trips"); and the registry requests verification makes (counted at the one
exchange layer, ``Transport.open``), and all the requests the verified promotion adds (verifying,
and copying the signatures along). Medians of ``--runs``. Targets: checking < 50 ms
key-based, < 150 ms keyless.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from shared.importing.run import run_import
from shared.importing.spec import build_spec
from shared.oci.manifest import Descriptor
from shared.registry import RegistryClient, TransportOptions
from shared.registry.transport import Transport
from shared.verify.evidence import gather
from shared.verify.load import parse_policies
from shared.verify.policy import Policy
from shared.verify.verifier import Checked, _check, verify
from tests.harness.images import make_image, push_image
from tests.harness.registry import open_registry
from tests.harness.signing import (
    IN_TOTO,
    ROOT,
    SIGN_PREDICATE,
    SLSA,
    Key,
    NotaryCA,
    attach,
    bundle_referrer,
    cosign_layer,
    cosign_manifest,
    dsse_bundle,
    notary_referrer,
    push_cosign,
    simple_signing,
    statement,
)

OPTIONS = TransportOptions(allow_loopback=True)
RELEASE, CI = Key(), Key()
CA = NotaryCA()
IDENTITY = "https://ci.example/acme/build"
REQUESTS = {"n": 0}


def _count_requests() -> None:
    original = Transport.open

    def counted(self: Transport, *args: Any, **kwargs: Any) -> Any:
        REQUESTS["n"] += 1
        return original(self, *args, **kwargs)

    Transport.open = counted  # type: ignore[method-assign]


def keyless(image_digest: Any, host: str, repo: str) -> dict[str, Any]:
    data = statement(image_digest, SIGN_PREDICATE, {})
    job = {"kind": "dsse", "data": base64.b64encode(data).decode(), "type": IN_TOTO, "subject": IDENTITY}
    job["issuer"] = "https://ci.example"
    cosign_job = {
        **job,
        "kind": "cosign",
        "data": base64.b64encode(simple_signing(f"{host}/{repo}", image_digest)).decode(),
    }
    done = subprocess.run(
        ["node", str(ROOT / "tests" / "harness" / "sigstore_keyless.js")],
        input=json.dumps({"jobs": [job, cosign_job]}).encode(),
        capture_output=True,
        cwd=ROOT,
        check=True,
    )
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def policies(work: Path, trusted_root: dict[str, Any]) -> dict[str, Policy]:
    (work / "trusted_root.json").write_text(json.dumps(trusted_root))
    doc = {
        "authorities": {
            "release": {"key": RELEASE.public_pem},
            "ci": {"key": CI.public_pem},
            "ci-keyless": {
                "keyless": {"trustedRoot": "trusted_root.json", "issuer": "https://ci.example", "subject": IDENTITY}
            },
            "notary": {"notation": {"trustStore": CA.root_pem, "trustedIdentities": ["*"]}},
        },
        "policies": {
            "cosign key": {"signatures": {"authorities": ["release"]}},
            "bundle key + SLSA from CI": {
                "signatures": {"authorities": ["release"]},
                "attestations": [{"predicateType": SLSA, "authorities": ["ci"]}],
            },
            "notary": {"signatures": {"authorities": ["notary"]}},
            "keyless bundle": {"signatures": {"authorities": ["ci-keyless"]}},
            "keyless cosign": {"signatures": {"authorities": ["ci-keyless"]}},
        },
    }
    return parse_policies(doc, work).policies


async def sign_all(client: RegistryClient, host: str, image: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """One repository per case, each holding the image and that case's signatures."""
    root: Descriptor = image.descriptor
    repos = {
        name: f"bench/{uuid.uuid4().hex[:8]}"
        for name in ("cosign key", "bundle key + SLSA from CI", "notary", "keyless bundle", "keyless cosign")
    }
    for repo in repos.values():
        await push_image(client, repo, image, "1.0")
    made = keyless(root.digest, host, repos["keyless cosign"])
    layer = cosign_layer(simple_signing(f"{host}/{repos['cosign key']}", root.digest), RELEASE)
    await push_cosign(client, repos["cosign key"], root.digest, cosign_manifest([layer]))
    repo = repos["bundle key + SLSA from CI"]
    await attach(
        client,
        repo,
        root.digest,
        bundle_referrer(root, dsse_bundle(RELEASE, statement(root.digest, SIGN_PREDICATE, {}))),
    )
    await attach(
        client, repo, root.digest, bundle_referrer(root, dsse_bundle(CI, statement(root.digest, SLSA, {})), SLSA)
    )
    await attach(client, repos["notary"], root.digest, notary_referrer(root, CA.jws(root), CA))
    await attach(client, repos["keyless bundle"], root.digest, bundle_referrer(root, made["results"][0]))
    result = made["results"][1]
    notes = {
        "dev.cosignproject.cosign/signature": result["signature"],
        "dev.sigstore.cosign/certificate": result["certificate"],
        "dev.sigstore.cosign/chain": result["chain"],
        "dev.sigstore.cosign/bundle": result["bundle"],
    }
    payload = simple_signing(f"{host}/{repos['keyless cosign']}", root.digest)
    await push_cosign(client, repos["keyless cosign"], root.digest, cosign_manifest([(payload, notes)]))
    return repos, made["trustedRoot"]


async def timed(action: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await action()
    return (time.perf_counter() - started) * 1000


async def case(
    src: RegistryClient, dst_host: str, repo: str, policy: Policy | None, root: Descriptor
) -> tuple[float, int]:
    spec = build_spec(f"{src.registry}/{repo}:1.0", dst_host, [f"promoted/{uuid.uuid4().hex[:10]}:1.0"])
    async with RegistryClient(dst_host, None, OPTIONS) as dst:
        before = REQUESTS["n"]
        ms = await timed(lambda: run_import(spec, src, dst, verification=policy))
        return ms, REQUESTS["n"] - before


async def checking_ms(src: RegistryClient, repo: str, policy: Policy, root: Descriptor) -> float:
    gathered = await gather(src, repo, root.digest)
    authorities = tuple(
        {a.name: a for a in policy.authorities + tuple(x for r in policy.attestations for x in r.authorities)}.values()
    )

    async def check() -> None:
        out = Checked(root)
        for evidence in gathered.evidence:
            _check(evidence, root, repo, authorities, out)
        assert out.findings, out.reasons

    return await timed(check)


async def measure(runs: int) -> list[dict[str, Any]]:
    _count_requests()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source, target = open_registry(work / "src", "src").start(), open_registry(work / "dst", "dst").start()
        try:
            image = make_image((256 * 1024,) * 3, seed=uuid.uuid4().hex)
            async with RegistryClient(source.host, None, OPTIONS) as src:
                repos, trusted_root = await sign_all(src, source.host, image)
                table = policies(work, trusted_root)
                rows = []
                for name, repo in repos.items():
                    rows.append(await _row(src, target.host, name, repo, table[name], image.descriptor, runs))
                return rows
        finally:
            source.stop()
            target.stop()


async def _row(
    src: RegistryClient, dst: str, name: str, repo: str, policy: Policy, root: Descriptor, runs: int
) -> dict[str, Any]:
    plain, verified, alone, checks, requests, added = [], [], [], [], [], []
    for _ in range(runs):
        ms, n_plain = await case(src, dst, repo, None, root)
        plain.append(ms)
        ms, n_verified = await case(src, dst, repo, policy, root)
        verified.append(ms)
        added.append(n_verified - n_plain)
        before = REQUESTS["n"]
        alone.append(await timed(lambda: verify(policy, src, repo, root)))
        requests.append(REQUESTS["n"] - before)
        checks.append(await checking_ms(src, repo, policy, root))
    med = statistics.median
    return {
        "case": name,
        "promotion ms": round(med(plain), 1),
        "verified promotion ms": round(med(verified), 1),
        "added ms": round(med(verified) - med(plain), 1),
        "verify ms": round(med(alone), 1),
        "checking ms": round(med(checks), 2),
        "verify requests": int(med(requests)),
        "added requests (verify + copy the proof)": int(med(added)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    rows = asyncio.run(measure(parser.parse_args().runs))
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
