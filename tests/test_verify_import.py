"""run_import with a verification policy, registry to registry: resolve once, verify that
digest, copy that digest and the signatures that verified it, or copy nothing at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.errors import SignatureInvalidError, SignatureRequiredError
from shared.importing.result import ResultDocument
from shared.importing.run import run_import
from shared.importing.spec import build_spec
from shared.oci.manifest import Descriptor
from shared.registry import RegistryClient
from shared.verify.load import parse_policies
from shared.verify.policy import Policy
from shared.verify.verifier import enforce, verify
from tests.conftest import FAST, Reg
from tests.harness.images import make_image, seed
from tests.harness.signing import (
    SLSA,
    Key,
    attach,
    bundle_referrer,
    cosign_layer,
    cosign_manifest,
    dsse_bundle,
    message_bundle,
    push_cosign,
    simple_signing,
    statement,
)

RELEASE, CI = Key(), Key()
PROVENANCE = {"buildDefinition": {"buildType": "https://ci.example/build/v1"}}


def prod_policy(tmp_path: Path, mode: str = "enforce") -> Policy:
    doc = {
        "authorities": {"release": {"key": RELEASE.public_pem}, "ci": {"key": CI.public_pem}},
        "policies": {
            "prod": {
                "mode": mode,
                "signatures": {"authorities": ["release"]},
                "attestations": [{"predicateType": SLSA, "authorities": ["ci"]}],
            }
        },
    }
    return parse_policies(doc, tmp_path).get("prod")


async def signed_image(reg: Reg, repo: str, *, attest: bool = True) -> Descriptor:
    img = make_image(seed=repo)
    await seed(reg, repo, img, "1.0")
    root = img.descriptor
    async with reg.client() as client:
        payload = simple_signing(f"{reg.host}/{repo}", root.digest)
        await push_cosign(client, repo, root.digest, cosign_manifest([cosign_layer(payload, RELEASE)]))
        if attest:
            bundle = dsse_bundle(CI, statement(root.digest, SLSA, PROVENANCE))
            await attach(client, repo, root.digest, bundle_referrer(root, bundle, SLSA))
            # a second referrer: both must land in the target's referrers index
            await attach(client, repo, root.digest, bundle_referrer(root, message_bundle(RELEASE, img.manifest)))
    return root


async def promote(src: Reg, dst: Reg, repo: str, policy: Policy) -> ResultDocument:
    spec = build_spec(f"{src.host}/{repo}:1.0", dst.host, [f"{repo}:1.0"])
    async with RegistryClient(src.host, src.credential, FAST) as s, RegistryClient(dst.host, dst.credential, FAST) as d:
        return (await run_import(spec, s, d, verification=policy)).document()


async def nothing_landed(dst: Reg, repo: str, root: Descriptor) -> None:
    async with dst.client() as client:
        assert await client.blob_exists(repo, root.digest) is None
        tags = await _tags(client, repo)
        assert tags == []


async def _tags(client: RegistryClient, repo: str) -> list[str]:
    from shared.errors import NotFoundError

    try:
        return await client.list_tags(repo)
    except NotFoundError:
        return []


async def test_a_verified_promotion_copies_the_image_and_its_proof(
    open_reg: Reg, target_reg: Reg, repo: str, tmp_path: Path
) -> None:
    root = await signed_image(open_reg, repo)
    result = await promote(open_reg, target_reg, repo, prod_policy(tmp_path))
    assert result["digest"] == str(root.digest)
    verified = result["verification"]["verified"]
    assert {(v["authority"], v["format"], v.get("predicateType")) for v in verified} == {
        ("release", "cosign", None),
        ("release", "sigstore-bundle", None),
        ("ci", "sigstore-bundle", SLSA),
    }
    assert all(v["subject"] == str(root.digest) for v in verified)
    # prod can verify again: the .sig tag and the bundle referrer came along
    async with target_reg.client() as client:
        again = await verify(prod_policy(tmp_path), client, repo, root)
    enforce(again)
    assert {f.evidence for f in again.findings} == {
        f.evidence for f in (await _source_verdict(open_reg, repo, root, tmp_path)).findings
    }


async def _source_verdict(reg: Reg, repo: str, root: Descriptor, tmp_path: Path) -> Any:
    async with reg.client() as client:
        return await verify(prod_policy(tmp_path), client, repo, root)


async def test_unsigned_fails_before_any_blob_moves(open_reg: Reg, target_reg: Reg, repo: str, tmp_path: Path) -> None:
    img = make_image(seed=repo)
    await seed(open_reg, repo, img, "1.0")
    with pytest.raises(SignatureRequiredError):
        await promote(open_reg, target_reg, repo, prod_policy(tmp_path))
    await nothing_landed(target_reg, repo, img.descriptor)


async def test_missing_attestation_fails_and_nothing_moves(
    open_reg: Reg, target_reg: Reg, repo: str, tmp_path: Path
) -> None:
    root = await signed_image(open_reg, repo, attest=False)
    with pytest.raises(SignatureRequiredError, match="no attestation"):
        await promote(open_reg, target_reg, repo, prod_policy(tmp_path))
    await nothing_landed(target_reg, repo, root)


async def test_signed_by_another_key_is_invalid(open_reg: Reg, target_reg: Reg, repo: str, tmp_path: Path) -> None:
    img = make_image(seed=repo)
    await seed(open_reg, repo, img, "1.0")
    async with open_reg.client() as client:
        payload = simple_signing(f"{open_reg.host}/{repo}", img.digest)
        await push_cosign(client, repo, img.digest, cosign_manifest([cosign_layer(payload, Key())]))
    with pytest.raises(SignatureInvalidError) as caught:
        await promote(open_reg, target_reg, repo, prod_policy(tmp_path))
    assert caught.value.code == "SIGNATURE_INVALID" and "does not verify" in caught.value.reason
    await nothing_landed(target_reg, repo, img.descriptor)


async def test_warn_mode_copies_and_records_the_warning(
    open_reg: Reg, target_reg: Reg, repo: str, tmp_path: Path
) -> None:
    img = make_image(seed=repo)
    await seed(open_reg, repo, img, "1.0")
    result = await promote(open_reg, target_reg, repo, prod_policy(tmp_path, "warn"))
    assert result["verification"]["satisfied"] is False
    assert result["verification"]["warning"]["code"] == "SIGNATURE_REQUIRED"
    async with target_reg.client() as client:
        assert (await client.resolve(repo, "1.0")).digest == img.digest


async def test_the_verified_digest_is_the_one_copied_even_if_the_tag_moves(
    open_reg: Reg, target_reg: Reg, repo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resolve once, verify that digest, copy that digest: the source tag moved to an unsigned
    image right after the check (containers/skopeo#560) changes nothing that is copied."""
    from shared.verify import verifier  # run_import imports it when a policy is given

    root = await signed_image(open_reg, repo)
    swapped = make_image(seed=f"{repo}-swap")
    checked = verify  # the function run_import calls, by this name

    async def verify_then_move_the_tag(*args: Any, **kwargs: Any) -> Any:
        verdict = await checked(*args, **kwargs)
        await seed(open_reg, repo, swapped, "1.0")  # the attacker's push, after the check
        return verdict

    monkeypatch.setattr(verifier, "verify", verify_then_move_the_tag)
    result = await promote(open_reg, target_reg, repo, prod_policy(tmp_path))
    assert result["digest"] == str(root.digest)
    async with target_reg.client() as client:
        assert (await client.resolve(repo, "1.0")).digest == root.digest
        assert await client.blob_exists(repo, swapped.blobs[-1].descriptor.digest) is None


async def test_a_platform_filter_copies_no_signature_of_the_source_index(
    open_reg: Reg, target_reg: Reg, repo: str, tmp_path: Path
) -> None:
    from tests.harness.images import make_multiarch

    index = make_multiarch(["linux/amd64", "linux/arm64"], (256,), (128,), seed=repo)
    await seed(open_reg, repo, index, "1.0")
    async with open_reg.client() as client:
        payload = simple_signing(f"{open_reg.host}/{repo}", index.digest)
        await push_cosign(client, repo, index.digest, cosign_manifest([cosign_layer(payload, RELEASE)]))
    policy = parse_policies(
        {
            "authorities": {"release": {"key": RELEASE.public_pem}},
            "policies": {"p": {"signatures": {"authorities": ["release"]}}},
        },
        tmp_path,
    ).get("p")
    spec = build_spec(f"{open_reg.host}/{repo}:1.0", target_reg.host, [f"{repo}:1.0"], platforms=["linux/amd64"])
    async with open_reg.client() as s, target_reg.client() as d:
        result = (await run_import(spec, s, d, verification=policy)).document()
        assert "signatures not copied" in result["verification"]["note"]
        assert await d.referrers(repo, index.digest) == []
        assert f"sha256-{index.digest.encoded}.sig" not in await d.list_tags(repo)
