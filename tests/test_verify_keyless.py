"""Keyless signatures, offline: Sigstore bundles made by sigstore-js against @sigstore/mock's
Fulcio and Rekor, cosign ``.sig`` keyless layers built from cosign's specification and logged in
the same mock Rekor; verified against the trusted root that names them, with no network."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from shared.errors import SignatureInvalidError
from shared.verify.load import parse_policies
from shared.verify.policy import Policy
from shared.verify.verifier import Verdict, enforce, verify
from tests.conftest import Reg
from tests.harness.images import make_image, seed
from tests.harness.signing import (
    IN_TOTO,
    ROOT,
    SIGN_PREDICATE,
    SLSA,
    Key,
    attach,
    bundle_referrer,
    cosign_manifest,
    push_cosign,
    simple_signing,
    statement,
)

IMAGE = make_image(seed=f"keyless-{uuid.uuid4().hex[:8]}")
ISSUER = "https://ci.example"
CI = "https://ci.example/acme/build"
RUN = uuid.uuid4().hex[:8]
#: Each case in a repository of its own (a cosign payload names its repository).
CASES = {
    "bundle": ("dsse", SIGN_PREDICATE, CI, 0),
    "message": ("message", None, CI, 0),
    "slsa": ("dsse", SLSA, CI, 0),
    "bundle wrong identity": ("dsse", SIGN_PREDICATE, "https://ci.example/mallory/build", 0),
    "bundle expired": ("dsse", SIGN_PREDICATE, CI, 3600),
    "cosign": ("cosign", None, CI, 0),
    "cosign wrong identity": ("cosign", None, "https://ci.example/mallory/build", 0),
    "cosign expired": ("cosign", None, CI, 3600),
}


def repo_of(case: str) -> str:
    return f"keyless/{RUN}/{case.replace(' ', '-')}"


def _job(case: str, host: str) -> dict[str, Any]:
    kind, ptype, subject, ago = CASES[case]
    if kind == "cosign":
        data = simple_signing(f"{host}/{repo_of(case)}", IMAGE.digest)
    elif kind == "message":
        data = IMAGE.manifest
    else:
        data = statement(IMAGE.digest, ptype or SIGN_PREDICATE, {"buildDefinition": {"buildType": CI}})
    return {
        "kind": kind,
        "data": base64.b64encode(data).decode(),
        "type": IN_TOTO,
        "subject": subject,
        "issuer": ISSUER,
        "issuedSecondsAgo": ago,
        "payload": base64.b64encode(data).decode(),
    }


@pytest.fixture(scope="module")
def made(open_reg: Reg) -> dict[str, Any]:
    jobs = [_job(case, open_reg.host) for case in CASES]
    done = subprocess.run(
        ["node", str(ROOT / "tests" / "harness" / "sigstore_keyless.js")],
        input=json.dumps({"jobs": jobs}).encode(),
        capture_output=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    out = json.loads(done.stdout)
    return {"root": out["trustedRoot"], "jobs": dict(zip(CASES, zip(jobs, out["results"], strict=True), strict=True))}


def keyless_policy(tmp_path: Path, made: dict[str, Any], **extra: Any) -> Policy:
    (tmp_path / "trusted_root.json").write_text(json.dumps(made["root"]))
    doc = {
        "authorities": {
            "ci": {
                "keyless": {
                    "trustedRoot": "trusted_root.json",
                    "issuer": ISSUER,
                    "subjectRegExp": "^https://ci\\.example/acme/.+$",
                }
            }
        },
        "policies": {"p": {"signatures": {"authorities": ["ci"]}, **extra}},
    }
    return parse_policies(doc, tmp_path).get("p")


async def place(reg: Reg, case: str, made: dict[str, Any], tamper: str | None = None) -> str:
    repo = repo_of(case) + (f"-{tamper}" if tamper else "")
    await seed(reg, repo, IMAGE, "v1")
    job, result = made["jobs"][case]
    async with reg.client() as client:
        if job["kind"] == "cosign":
            payload = base64.b64decode(job["payload"])
            annotations = {
                "dev.cosignproject.cosign/signature": result["signature"],
                "dev.sigstore.cosign/certificate": result["certificate"],
                "dev.sigstore.cosign/chain": result["chain"],
                "dev.sigstore.cosign/bundle": result["bundle"],
            }
            if tamper == "set":
                doc = json.loads(result["bundle"])
                doc["Payload"]["integratedTime"] += 1
                annotations["dev.sigstore.cosign/bundle"] = json.dumps(doc)
            await push_cosign(client, repo, IMAGE.digest, cosign_manifest([(payload, annotations)]))
        else:
            bundle = json.loads(json.dumps(result))
            if tamper == "payload":
                honest = statement(IMAGE.digest, SIGN_PREDICATE, {"buildDefinition": {"buildType": "other"}})
                bundle["dsseEnvelope"]["payload"] = base64.b64encode(honest).decode()
            proof = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
            if tamper == "proof":
                proof["rootHash"] = base64.b64encode(b"\x07" * 32).decode()
            if tamper == "checkpoint":  # the same note, signed by someone else
                note, _, line = proof["checkpoint"]["envelope"].partition("\n\n")
                forged = base64.b64encode(b"\x00" * 4 + Key().sign((note + "\n").encode())).decode()
                proof["checkpoint"]["envelope"] = f"{note}\n\n{line.rsplit(' ', 1)[0]} {forged}\n"
            await attach(client, repo, IMAGE.digest, bundle_referrer(IMAGE.descriptor, bundle))
    return repo


async def check(reg: Reg, repo: str, policy: Policy) -> Verdict:
    async with reg.client() as client:
        return await verify(policy, client, repo, IMAGE.descriptor)


@pytest.mark.parametrize("case", ["bundle", "message", "cosign"])
async def test_keyless_signatures_verify_offline(
    open_reg: Reg, made: dict[str, Any], tmp_path: Path, case: str
) -> None:
    repo = await place(open_reg, case, made)
    verdict = await check(open_reg, repo, keyless_policy(tmp_path, made))
    enforce(verdict)
    assert verdict.findings[0].signer == f"{CI} (issuer {ISSUER})"


async def test_keyless_provenance_attestation(open_reg: Reg, made: dict[str, Any], tmp_path: Path) -> None:
    repo = await place(open_reg, "slsa", made)
    await place(open_reg, "cosign", made)  # a signature in another repository does not count here
    rule = {
        "predicateType": SLSA,
        "authorities": ["ci"],
        "conditions": [{"path": "buildDefinition.buildType", "equals": CI}],
    }
    verdict = await check(open_reg, repo, keyless_policy(tmp_path, made, attestations=[rule]))
    assert verdict.problem is not None and verdict.problem.code == "SIGNATURE_REQUIRED"  # no signature, only provenance
    assert [f.predicate_type for f in verdict.findings] == [SLSA]


@pytest.mark.parametrize(
    ("case", "tamper", "words"),
    [
        ("bundle wrong identity", None, "identity not trusted: https://ci.example/mallory/build"),
        ("cosign wrong identity", None, "identity not trusted: https://ci.example/mallory/build"),
        ("bundle expired", None, "certificate expired"),
        ("cosign expired", None, "certificate expired"),
        ("bundle", "payload", "does not verify with its certificate"),
        ("cosign", "set", "signed timestamp does not verify"),
        ("bundle", "proof", "inclusion proof does not lead to its root hash"),
        ("bundle", "checkpoint", "checkpoint is not signed by the log"),
    ],
)
async def test_keyless_negatives(
    open_reg: Reg, made: dict[str, Any], tmp_path: Path, case: str, tamper: str | None, words: str
) -> None:
    repo = await place(open_reg, case, made, tamper)
    with pytest.raises(SignatureInvalidError) as caught:
        enforce(await check(open_reg, repo, keyless_policy(tmp_path, made)))
    assert words in str(caught.value)


async def test_another_trusted_root_trusts_nothing(open_reg: Reg, made: dict[str, Any], tmp_path: Path) -> None:
    repo = await place(open_reg, "bundle", made)
    other = json.loads(json.dumps(made["root"]))
    other["tlogs"][0]["logId"]["keyId"] = base64.b64encode(b"\x01" * 32).decode()
    with pytest.raises(SignatureInvalidError, match="a log the trusted root does not list"):
        enforce(await check(open_reg, repo, keyless_policy(tmp_path, {**made, "root": other})))


def test_inclusion_proofs_by_rfc_9162() -> None:
    """A tree of five leaves: every leaf's proof leads to the root; a wrong index does not."""
    import hashlib

    from shared.verify.findings import Unusable
    from shared.verify.inclusion import root_from

    def leaf(i: int) -> bytes:
        return hashlib.sha256(b"\x00" + bytes([i])).digest()

    def node(a: bytes, b: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + a + b).digest()

    h = [leaf(i) for i in range(5)]
    ab, cd = node(h[0], h[1]), node(h[2], h[3])
    root = node(node(ab, cd), h[4])
    proofs = {0: [h[1], cd, h[4]], 1: [h[0], cd, h[4]], 2: [h[3], ab, h[4]], 3: [h[2], ab, h[4]], 4: [node(ab, cd)]}
    for index, path in proofs.items():
        assert root_from(h[index], index, 5, path) == root
    assert root_from(h[0], 1, 5, proofs[0]) != root
    with pytest.raises(Unusable, match="wrong number of hashes"):
        root_from(h[4], 4, 5, proofs[0])
