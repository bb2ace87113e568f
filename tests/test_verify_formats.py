"""Each signature format against a real registry: the good case, and every negative case of
issue #24 (unsigned; another key; payload for another digest; a signature moved to another
repository; tampered payload; wrong identity; expired certificate; a referrer list that lies)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from shared.errors import SignatureInvalidError, SignatureRequiredError
from shared.oci import mediatypes as mt
from shared.oci.digest import Digest
from shared.oci.manifest import Descriptor
from shared.verify.load import parse_policies
from shared.verify.policy import Policy
from shared.verify.verifier import Verdict, enforce, verify
from tests.conftest import Reg
from tests.harness.images import Blob, Image, make_image, make_multiarch, push_image, seed
from tests.harness.signing import (
    NOTARY,
    SIGN_PREDICATE,
    SLSA,
    Key,
    NotaryCA,
    attach,
    bundle_referrer,
    cosign_layer,
    cosign_manifest,
    dsse_bundle,
    message_bundle,
    notary_referrer,
    push_cosign,
    simple_signing,
    statement,
)

RELEASE = Key()
CI = Key()
OTHER = Key()
CA = NotaryCA()


def policy(tmp_path: Path, spec: dict[str, Any], **authorities: Any) -> Policy:
    auth = authorities or {"release": {"key": RELEASE.public_pem}}
    doc = {"authorities": auth, "policies": {"p": spec}}
    return parse_policies(doc, tmp_path).get("p")


def simple(tmp_path: Path, **extra: Any) -> Policy:
    return policy(tmp_path, {"signatures": {"authorities": ["release"]}, **extra})


async def check(reg: Reg, repo: str, pol: Policy, root: Descriptor) -> Verdict:
    async with reg.client() as client:
        return await verify(pol, client, repo, root)


async def image(reg: Reg, repo: str, seed_: str = "img") -> Descriptor:
    img = make_image(seed=seed_)
    await seed(reg, repo, img, "v1")
    return img.descriptor


def fails(verdict: Verdict, kind: type[Exception], *words: str) -> None:
    with pytest.raises(kind) as caught:
        enforce(verdict)
    for word in words:
        assert word in str(caught.value), str(caught.value)


# -- cosign .sig --------------------------------------------------------------------------------


async def sign_cosign(reg: Reg, repo: str, root: Descriptor, key: Key = RELEASE, *, reference: str | None = None,
                      digest: Digest | None = None, tamper: bool = False) -> None:  # fmt: skip
    payload = simple_signing(reference or f"{reg.host}/{repo}", digest or root.digest)
    layer = cosign_layer(payload, key)
    if tamper:
        layer = (payload.replace(b'"optional":null', b'"optional":{"by":"mallory"}'), layer[1])
    async with reg.client() as client:
        await push_cosign(client, repo, root.digest, cosign_manifest([layer]))


async def test_cosign_key_signature_verifies(open_reg: Reg, repo: str, tmp_path: Path) -> None:
    root = await image(open_reg, repo)
    await sign_cosign(open_reg, repo, root)
    verdict = await check(open_reg, repo, simple(tmp_path), root)
    enforce(verdict)
    assert [(f.authority, f.format, f.signer) for f in verdict.findings] == [("release", "cosign", "key release")]
    assert verdict.evidence[0].tag == f"sha256-{root.digest.encoded}.sig"


async def test_unsigned_is_signature_required(open_reg: Reg, repo: str, tmp_path: Path) -> None:
    root = await image(open_reg, repo)
    fails(await check(open_reg, repo, simple(tmp_path), root), SignatureRequiredError, "not signed")


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("another key", ["does not verify"]),
        ("another digest", ["another digest"]),
        ("another repository", ["another repository"]),
        ("tampered", ["does not verify"]),
    ],
)
async def test_cosign_negatives(open_reg: Reg, repo: str, tmp_path: Path, case: str, words: list[str]) -> None:
    root = await image(open_reg, repo)
    other = await image(open_reg, repo, "other")
    if case == "another key":
        await sign_cosign(open_reg, repo, root, OTHER)
    elif case == "another digest":
        await sign_cosign(open_reg, repo, root, digest=other.digest)
    elif case == "another repository":
        await sign_cosign(open_reg, repo, root, reference=f"{open_reg.host}/elsewhere/app")
    else:
        await sign_cosign(open_reg, repo, root, tamper=True)
    verdict = await check(open_reg, repo, simple(tmp_path), root)
    assert not verdict.findings
    fails(verdict, SignatureInvalidError, *words)


async def test_cosign_signature_blob_over_the_cap_is_not_read(open_reg: Reg, repo: str, tmp_path: Path) -> None:
    root = await image(open_reg, repo)
    big = simple_signing(f"{open_reg.host}/{repo}", root.digest) + b" " * 300_000
    async with open_reg.client() as client:
        await push_cosign(client, repo, root.digest, cosign_manifest([cosign_layer(big, RELEASE)]))
    fails(await check(open_reg, repo, simple(tmp_path), root), SignatureInvalidError, "over 262144")


# -- Sigstore bundles (sigstore-js) ---------------------------------------------------------------


async def attach_bundle(
    reg: Reg, repo: str, root: Descriptor, bundle: dict[str, Any], ptype: str | None = None
) -> Digest:
    async with reg.client() as client:
        return await attach(client, repo, root.digest, bundle_referrer(root, bundle, ptype))


async def test_bundle_dsse_and_message_signatures_verify(open_reg: Reg, repo: str, tmp_path: Path) -> None:
    img = make_image(seed="b1")
    await seed(open_reg, repo, img, "v1")
    root = img.descriptor
    await attach_bundle(open_reg, repo, root, dsse_bundle(RELEASE, statement(root.digest, SIGN_PREDICATE, {})))
    verdict = await check(open_reg, repo, simple(tmp_path), root)
    enforce(verdict)
    assert [(f.format, f.predicate_type) for f in verdict.findings] == [("sigstore-bundle", None)]
    repo2 = f"{repo}-msg"
    await seed(open_reg, repo2, img, "v1")
    await attach_bundle(open_reg, repo2, root, message_bundle(RELEASE, img.manifest))
    enforce(await check(open_reg, repo2, simple(tmp_path), root))


@pytest.mark.parametrize("case", ["another key", "another digest", "tampered", "message for another digest"])
async def test_bundle_negatives(open_reg: Reg, repo: str, tmp_path: Path, case: str) -> None:
    img = make_image(seed="b2")
    await seed(open_reg, repo, img, "v1")
    root = img.descriptor
    other = make_image(seed="b3")
    if case == "another key":
        bundle = dsse_bundle(OTHER, statement(root.digest, SIGN_PREDICATE, {}))
    elif case == "another digest":
        bundle = dsse_bundle(RELEASE, statement(other.digest, SIGN_PREDICATE, {}))
    elif case == "message for another digest":
        bundle = message_bundle(RELEASE, other.manifest)
    else:
        bundle = dsse_bundle(RELEASE, statement(root.digest, SIGN_PREDICATE, {"x": 1}))
        honest = statement(root.digest, SIGN_PREDICATE, {"x": 2})
        import base64

        bundle["dsseEnvelope"]["payload"] = base64.b64encode(honest).decode()
    await attach_bundle(open_reg, repo, root, bundle)
    words = {"another key": "does not verify", "tampered": "does not verify"}.get(case, "another digest")
    fails(await check(open_reg, repo, simple(tmp_path), root), SignatureInvalidError, words)


async def test_bundle_moved_from_another_repository_never_counts(open_reg: Reg, repo: str, tmp_path: Path) -> None:
    """A valid bundle of another repository's image, its manifest copied into this repository
    and listed as a referrer of this image: it names the other image, so it proves nothing.
    (A referrers index that names a manifest absent from the repository is refused by the
    registry itself, MANIFEST_BLOB_UNKNOWN, and Ferry reads signatures only from the source
    repository.)"""
    img, theirs = make_image(seed="b4"), make_image(seed="b4-theirs")
    await seed(open_reg, repo, img, "v1")
    elsewhere = f"{repo}-elsewhere"
    await seed(open_reg, elsewhere, theirs, "v1")
    root = img.descriptor
    ref = bundle_referrer(theirs.descriptor, dsse_bundle(RELEASE, statement(theirs.digest, SIGN_PREDICATE, {})))
    async with open_reg.client() as client:
        await attach(client, elsewhere, theirs.digest, ref)
        await push_image(client, repo, ref)
        listed = Descriptor(mt.OCI_MANIFEST, ref.digest, len(ref.manifest), artifact_type=ref.artifact_type)
        index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [listed.to_json()]}).encode()
        await client.push_manifest(repo, root.digest.tag_schema, index, mt.OCI_INDEX)
    fails(await check(open_reg, repo, simple(tmp_path), root), SignatureInvalidError, "names another subject")


async def test_a_referrer_list_that_lies_never_counts(open_reg: Reg, repo: str, tmp_path: Path) -> None:
    """The referrers index lists, as a bundle for this image, a valid bundle whose own manifest
    refers to another image (same signer, same repository)."""
    img, other = make_image(seed="b5"), make_image(seed="b6")
    await seed(open_reg, repo, img, "v1")
    await seed(open_reg, repo, other, "v2")
    root = img.descriptor
    theirs = bundle_referrer(other.descriptor, dsse_bundle(RELEASE, statement(root.digest, SIGN_PREDICATE, {})))
    # the list also claims a Notary signature that is really a bundle
    lying_type = Descriptor(mt.OCI_MANIFEST, theirs.digest, len(theirs.manifest), artifact_type=NOTARY)
    async with open_reg.client() as client:
        await push_image(client, repo, theirs)
        listed = Descriptor(mt.OCI_MANIFEST, theirs.digest, len(theirs.manifest), artifact_type=theirs.artifact_type)
        entries = [listed.to_json(), lying_type.to_json()]
        index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}).encode()
        await client.push_manifest(repo, root.digest.tag_schema, index, mt.OCI_INDEX)
    verdict = await check(open_reg, repo, simple(tmp_path), root)
    fails(verdict, SignatureInvalidError, "names another subject (the referrer list lies)")


# -- attestations ---------------------------------------------------------------------------------


def prod(tmp_path: Path, **condition: Any) -> Policy:
    rule: dict[str, Any] = {"predicateType": SLSA, "authorities": ["ci"]}
    if condition:
        rule["conditions"] = [condition]
    return policy(
        tmp_path,
        {"signatures": {"authorities": ["release"]}, "attestations": [rule]},
        release={"key": RELEASE.public_pem},
        ci={"key": CI.public_pem},
    )


PROVENANCE = {"buildDefinition": {"buildType": "https://ci.example/build/v1"}, "runDetails": {"builder": {"id": "ci"}}}


async def test_provenance_from_ci_is_required_and_checked(open_reg: Reg, repo: str, tmp_path: Path) -> None:
    root = await image(open_reg, repo, "att")
    await sign_cosign(open_reg, repo, root)
    fails(await check(open_reg, repo, prod(tmp_path), root), SignatureRequiredError, "no attestation " + SLSA)
    await attach_bundle(open_reg, repo, root, dsse_bundle(CI, statement(root.digest, SLSA, PROVENANCE)), SLSA)
    verdict = await check(
        open_reg, repo, prod(tmp_path, path="buildDefinition.buildType", matches="https://ci\\.example/.*"), root
    )
    enforce(verdict)
    assert {(f.authority, f.predicate_type) for f in verdict.findings} == {("release", None), ("ci", SLSA)}
    assert len(verdict.evidence) == 2
    strict = prod(tmp_path, path="buildDefinition.buildType", equals="https://other/")
    fails(await check(open_reg, repo, strict, root), SignatureInvalidError, "does not meet its conditions")


async def test_provenance_signed_by_release_key_is_not_from_ci(open_reg: Reg, repo: str, tmp_path: Path) -> None:
    root = await image(open_reg, repo, "att2")
    await sign_cosign(open_reg, repo, root)
    await attach_bundle(open_reg, repo, root, dsse_bundle(OTHER, statement(root.digest, SLSA, PROVENANCE)), SLSA)
    fails(await check(open_reg, repo, prod(tmp_path), root), SignatureInvalidError, "does not verify")


# -- Notary Project JWS ---------------------------------------------------------------------------


def notation(tmp_path: Path, ca: NotaryCA = CA, identity: str = "x509.subject: C=US, O=Acme, CN=release") -> Policy:
    return policy(
        tmp_path,
        {"signatures": {"authorities": ["notary"]}},
        notary={"notation": {"trustStore": ca.root_pem, "trustedIdentities": [identity]}},
    )


async def sign_notary(
    reg: Reg, repo: str, root: Descriptor, ca: NotaryCA = CA, target: Descriptor | None = None, **kw: Any
) -> None:
    async with reg.client() as client:
        await attach(client, repo, root.digest, notary_referrer(root, ca.jws(target or root, **kw), ca))


async def test_notary_jws_verifies(open_reg: Reg, repo: str, tmp_path: Path) -> None:
    root = await image(open_reg, repo, "n1")
    await sign_notary(open_reg, repo, root)
    verdict = await check(open_reg, repo, notation(tmp_path), root)
    enforce(verdict)
    assert verdict.findings[0].format == "notary-jws"
    assert "CN=release" in verdict.findings[0].signer


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("unsigned", ["not signed"]),
        ("another CA", ["does not chain"]),
        ("another digest", ["another digest"]),
        ("another size", ["differs from the image's descriptor"]),
        ("tampered", ["does not verify"]),
        ("wrong identity", ["identity not trusted"]),
        ("expired certificate", ["certificate expired"]),
        ("expired signature", ["signature expired"]),
        ("not for code signing", ["not for code signing"]),
    ],
)
async def test_notary_negatives(open_reg: Reg, repo: str, tmp_path: Path, case: str, words: list[str]) -> None:
    root = await image(open_reg, repo, "n2")
    pol = notation(tmp_path)
    if case == "another CA":
        await sign_notary(open_reg, repo, root, NotaryCA())
    elif case == "another digest":
        other = await image(open_reg, repo, "n3")
        await sign_notary(open_reg, repo, root, target=other)
    elif case == "another size":
        await sign_notary(open_reg, repo, root, target=Descriptor(root.media_type, root.digest, root.size + 1))
    elif case == "tampered":
        await sign_notary(open_reg, repo, root, tamper=True)
    elif case == "wrong identity":
        await sign_notary(open_reg, repo, root)
        pol = notation(tmp_path, identity="x509.subject: C=US, O=Acme, CN=someone-else")
    elif case == "expired certificate":
        ca = NotaryCA(leaf_days=(-10, -1))
        await sign_notary(open_reg, repo, root, ca)
        pol = notation(tmp_path, ca)
    elif case == "expired signature":
        await sign_notary(open_reg, repo, root, expiry=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    elif case == "not for code signing":
        from cryptography.x509.oid import ExtendedKeyUsageOID

        ca = NotaryCA(eku=ExtendedKeyUsageOID.SERVER_AUTH)
        await sign_notary(open_reg, repo, root, ca)
        pol = notation(tmp_path, ca)
    kind = SignatureRequiredError if case == "unsigned" else SignatureInvalidError
    fails(await check(open_reg, repo, pol, root), kind, *words)


# -- modes and indexes ----------------------------------------------------------------------------


async def test_warn_mode_records_and_off_reads_nothing(open_reg: Reg, repo: str, tmp_path: Path) -> None:
    root = await image(open_reg, repo, "w")
    verdict = await check(open_reg, repo, simple(tmp_path, mode="warn"), root)
    enforce(verdict)  # does not raise
    assert verdict.to_json()["warning"]["code"] == "SIGNATURE_REQUIRED"
    off = await check(open_reg, repo, simple(tmp_path, mode="off"), root)
    assert off.satisfied and off.findings == []


async def test_index_needs_its_own_or_every_platform_signature(open_reg: Reg, repo: str, tmp_path: Path) -> None:
    index = make_multiarch(["linux/amd64", "linux/arm64"], (512,), (256,), seed=f"ix-{uuid.uuid4().hex[:6]}")
    await seed(open_reg, repo, index, "v1")
    root = index.descriptor
    for child in index.children[:1]:
        await sign_cosign(open_reg, repo, child.descriptor)
    every = simple(tmp_path, index="everyPlatform")
    fails(await check(open_reg, repo, every, root), SignatureRequiredError, str(index.children[1].digest))
    fails(await check(open_reg, repo, simple(tmp_path), root), SignatureRequiredError, str(root.digest))
    await sign_cosign(open_reg, repo, index.children[1].descriptor)
    verdict = await check(open_reg, repo, every, root)
    enforce(verdict)
    assert len(verdict.evidence) == 2
    await sign_cosign(open_reg, repo, root)
    enforce(await check(open_reg, repo, simple(tmp_path), root))


async def test_two_of_two_authorities(open_reg: Reg, repo: str, tmp_path: Path) -> None:
    root = await image(open_reg, repo, "two")
    pol = policy(
        tmp_path,
        {"signatures": {"authorities": ["release", "notary"], "count": 2}},
        release={"key": RELEASE.public_pem},
        notary={"notation": {"trustStore": CA.root_pem, "trustedIdentities": ["*"]}},
    )
    await sign_cosign(open_reg, repo, root)
    fails(await check(open_reg, repo, pol, root), SignatureInvalidError, "1 of 2")
    await sign_notary(open_reg, repo, root)
    verdict = await check(open_reg, repo, pol, root)
    enforce(verdict)
    assert {f.format for f in verdict.findings} == {"cosign", "notary-jws"}


_ = (Blob, Image)
