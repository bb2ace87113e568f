"""Imports end to end against real registries: az acr import semantics, exactly copied bytes."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from shared.credentials import Credential
from shared.errors import DigestMismatchError, LimitExceededError, NotFoundError, TagExistsError
from shared.importing.result import ResultDocument
from shared.importing.run import run_import
from shared.importing.spec import Limits, build_spec
from shared.oci import mediatypes as mt
from shared.oci.digest import Digest
from shared.oci.manifest import Index, Platform, parse_manifest
from shared.registry import RegistryClient
from tests.conftest import FAST, Reg
from tests.harness.faultproxy import FaultProxy, Rule
from tests.harness.images import (
    Image,
    make_artifact,
    make_image,
    make_index,
    make_multiarch,
    push_image,
    seed,
)
from tests.harness.skopeo import raw_manifest


async def do_import(
    src: Reg | str,
    dst: Reg | str,
    source: str,
    *,
    src_credential: Credential | None = None,
    dst_credential: Credential | None = None,
    images: tuple[str, ...] = (),
    repositories: tuple[str, ...] = (),
    src_reg: Reg | None = None,
    dst_reg: Reg | None = None,
    **kwargs: Any,
) -> ResultDocument:
    """Import through ``src``/``dst`` (a Reg, or the host of a proxy in front of one)."""
    src_host = src if isinstance(src, str) else src.host
    dst_host = dst if isinstance(dst, str) else dst.host
    src_cred = src_credential or (src.credential if isinstance(src, Reg) else src_reg.credential if src_reg else None)
    dst_cred = dst_credential or (dst.credential if isinstance(dst, Reg) else dst_reg.credential if dst_reg else None)
    spec = build_spec(f"{src_host}/{source}", dst_host, images, repositories, **kwargs)
    async with RegistryClient(src_host, src_cred, FAST) as s, RegistryClient(dst_host, dst_cred, FAST) as d:
        return (await run_import(spec, s, d)).document()


def skopeo_raw(reg: Reg, ref: str) -> bytes:
    return raw_manifest(reg.host, ref)


@pytest.fixture
def target_proxy(target_reg: Reg) -> Iterator[FaultProxy]:
    proxy = FaultProxy("127.0.0.1", target_reg.proc.port).start()
    yield proxy
    proxy.stop()


def blob_puts(proxy: FaultProxy) -> Counter[str]:
    """Completed blob uploads by digest (the ``PUT ...?digest=`` that commits each)."""
    return Counter(
        s.path.split("digest=")[1].split("&")[0].replace("%3A", ":")
        for s in proxy.requests("PUT", "/blobs/uploads/")
        if "digest=" in s.path
    )


def writes(proxy: FaultProxy) -> list[str]:
    return [f"{s.method} {s.path}" for s in proxy.seen if s.method in ("POST", "PUT", "PATCH", "DELETE")]


async def test_multiarch_shared_layers_each_sent_once(
    open_reg: Reg, target_reg: Reg, target_proxy: FaultProxy, repo: str
) -> None:
    index = make_multiarch(
        ["linux/amd64", "linux/arm64/v8", "linux/ppc64le", "windows/amd64"], shared_sizes=(30_000, 40_000)
    )
    await seed(open_reg, repo, index)
    result = await do_import(open_reg, target_proxy.host, f"{repo}:v1", dst_reg=target_reg)
    puts = blob_puts(target_proxy)
    assert set(puts.values()) == {1} and len(puts) == len(index.blobs) == result["blobs"]["copied"]
    assert result["digest"] == str(index.digest) and result["manifests"] == 5
    assert result["targets"] == [f"{target_proxy.host}/{repo}:v1"]  # az's default naming
    assert skopeo_raw(target_reg, f"{repo}:v1") == skopeo_raw(open_reg, f"{repo}:v1") == index.manifest
    child = index.children[2]
    assert skopeo_raw(target_reg, f"{repo}@{child.digest}") == child.manifest
    assert result["bytes"] == result["uniqueBytes"] == sum(len(b.data) for b in index.blobs)


async def test_import_by_digest_lands_as_latest(open_reg: Reg, target_reg: Reg, repo: str) -> None:
    image = make_image(seed="bydigest")
    digest = await seed(open_reg, repo, image, None)
    result = await do_import(open_reg, target_reg, f"{repo}@{digest}")
    assert result["targets"] == [f"{target_reg.host}/{repo}:latest"]
    async with target_reg.client() as client:
        assert (await client.resolve(repo, "latest")).digest == digest


async def test_tag_at_digest_match_and_mismatch(open_reg: Reg, target_reg: Reg, repo: str) -> None:
    image = make_image(seed="pinned")
    digest = await seed(open_reg, repo, image)
    ok = await do_import(open_reg, target_reg, f"{repo}:v1@{digest}", images=("pinned:ok",))
    assert ok["digest"] == str(digest)
    other = Digest.of(b"something else")
    with pytest.raises(DigestMismatchError, match=f"tag v1 now points at {digest}"):
        await do_import(open_reg, target_reg, f"{repo}:v1@{other}", images=("pinned:bad",))
    async with target_reg.client() as client:
        assert await client.list_tags("pinned") == ["ok"]


async def test_noforce_conflict_writes_nothing(
    open_reg: Reg, target_reg: Reg, target_proxy: FaultProxy, repo: str
) -> None:
    old, new = make_image(seed="old"), make_image(seed="new")
    await seed(target_reg, repo, old, "v1")
    await seed(open_reg, repo, new, "v1")
    with pytest.raises(TagExistsError, match=f"Tag {repo}:v1 already exists in target registry") as refused:
        await do_import(
            open_reg, target_proxy.host, f"{repo}:v1", dst_reg=target_reg, images=(f"{repo}:v1", f"{repo}:free")
        )
    # Both digests, and how to overwrite, as az users expect.
    assert f"{repo}:v1 is {old.digest}; the import is {new.digest}" in str(refused.value)
    assert '--force (ferry import) or "mode": "Force"' in str(refused.value)
    assert writes(target_proxy) == []
    async with target_reg.client() as client:
        assert (await client.resolve(repo, "v1")).digest == old.digest
        assert await client.blob_exists(repo, new.blobs[-1].descriptor.digest) is None


async def test_same_digest_is_a_noop_and_force_overwrites(
    open_reg: Reg, target_reg: Reg, target_proxy: FaultProxy, repo: str
) -> None:
    first, second = make_image(seed="first"), make_image(seed="second")
    await seed(open_reg, repo, first)
    await do_import(open_reg, target_reg, f"{repo}:v1")
    again = await do_import(open_reg, target_proxy.host, f"{repo}:v1", dst_reg=target_reg)  # NoForce, same digest
    assert again["bytes"] == 0 and again["upToDate"] is True
    assert writes(target_proxy) == [] and [s.method for s in target_proxy.seen] == ["HEAD"]
    await seed(open_reg, repo, second)
    with pytest.raises(TagExistsError):
        await do_import(open_reg, target_reg, f"{repo}:v1")
    forced = await do_import(open_reg, target_reg, f"{repo}:v1", force=True)
    assert forced["digest"] == str(second.digest)
    async with target_reg.client() as client:
        assert (await client.resolve(repo, "v1")).digest == second.digest


async def test_several_images_and_untagged_repositories(
    open_reg: Reg, target_reg: Reg, target_proxy: FaultProxy, repo: str
) -> None:
    index = make_multiarch(seed="several")
    await seed(open_reg, repo, index, "1.0")
    result = await do_import(
        open_reg,
        target_proxy.host,
        f"{repo}:1.0",
        dst_reg=target_reg,
        images=(f"{repo}-a:1.0", f"{repo}-a:stable", f"{repo}-b"),
        repositories=(f"{repo}-c",),
    )
    assert result["targets"] == [
        f"{target_proxy.host}/{repo}-a:1.0",
        f"{target_proxy.host}/{repo}-a:stable",
        f"{target_proxy.host}/{repo}-b:1.0",
        f"{target_proxy.host}/{repo}-c@{index.digest}",
    ]
    assert set(blob_puts(target_proxy).values()) == {1}  # streamed once; the other repositories mount
    assert result["blobs"]["mounted"] == 2 * len(index.blobs)
    async with target_reg.client() as client:
        assert sorted(await client.list_tags(f"{repo}-a")) == ["1.0", "stable"]
        assert await client.list_tags(f"{repo}-b") == ["1.0"]
        with pytest.raises(NotFoundError):  # distribution: a repository without tags is "unknown" to tags/list
            await client.list_tags(f"{repo}-c")
        _, body = await client.fetch_manifest(f"{repo}-c", str(index.digest))
        assert body == index.manifest


async def test_same_registry_mounts_without_streaming(open_reg: Reg, repo: str) -> None:
    index = make_multiarch(seed="mount")
    await seed(open_reg, repo, index)
    proxy = FaultProxy("127.0.0.1", open_reg.proc.port).start()
    try:
        result = await do_import(
            proxy.host, proxy.host, f"{repo}:v1", src_reg=open_reg, dst_reg=open_reg, images=(f"{repo}-copy:v1",)
        )
    finally:
        proxy.stop()
    assert result["bytes"] == 0 and result["blobs"]["mounted"] == len(index.blobs)
    assert proxy.requests("GET", "/blobs/") == [] and blob_puts(proxy) == Counter()


async def test_basic_auth_source_to_token_auth_target(basic_reg: Reg, token_reg: Reg, repo: str) -> None:
    index = make_multiarch(seed="basic2token")
    await seed(basic_reg, repo, index)
    result = await do_import(basic_reg, token_reg, f"{repo}:v1")
    assert result["digest"] == str(index.digest) and result["blobs"]["copied"] == len(index.blobs)


async def test_acr_exchange_on_both_sides(acr_reg: Reg, acr2_reg: Reg, repo: str) -> None:
    assert acr_reg.tokens and acr2_reg.tokens and acr_reg.entra and acr2_reg.entra
    index = make_multiarch(seed="acr2acr")
    await seed(acr_reg, repo, index)
    before = (acr_reg.tokens.requests["POST /oauth2/exchange"], acr2_reg.tokens.requests["POST /oauth2/exchange"])
    result = await do_import(acr_reg, acr2_reg, f"{repo}:v1")
    assert result["blobs"]["copied"] == len(index.blobs)
    after = (acr_reg.tokens.requests["POST /oauth2/exchange"], acr2_reg.tokens.requests["POST /oauth2/exchange"])
    assert after == (before[0] + 1, before[1] + 1)  # one exchange per side, then cached
    assert acr2_reg.tokens.seen_tenants[-1] == "tenant-two"


async def test_index_over_50_manifests_is_refused_before_copying(
    open_reg: Reg, target_reg: Reg, target_proxy: FaultProxy, repo: str
) -> None:
    images = [make_image((64,), seed=f"fan{i}", platform=Platform("linux", f"a{i}")) for i in range(51)]
    index = make_index(images)
    await seed(open_reg, repo, index)
    with pytest.raises(LimitExceededError, match=f"more than 50 manifests.*{index.digest}"):
        await do_import(open_reg, target_proxy.host, f"{repo}:v1", dst_reg=target_reg)
    assert writes(target_proxy) == [] and target_proxy.requests("GET", "/blobs/") == []
    result = await do_import(open_reg, target_reg, f"{repo}:v1", limits=Limits(max_manifests=52))
    assert result["manifests"] == 52


async def test_layer_over_the_public_limit_is_refused_before_copying(
    open_reg: Reg, target_reg: Reg, target_proxy: FaultProxy, repo: str
) -> None:
    image = make_image((10_000, 500), seed="biglayer")
    await seed(open_reg, repo, image)
    with pytest.raises(
        LimitExceededError, match=f"blob {image.blobs[1].descriptor.digest}.*10000 bytes.*without credentials"
    ):
        await do_import(
            open_reg, target_proxy.host, f"{repo}:v1", dst_reg=target_reg, limits=Limits(max_public_blob_bytes=4096)
        )
    assert writes(target_proxy) == []


async def test_corrupting_proxy_fails_and_leaves_the_tag(open_reg: Reg, target_reg: Reg, repo: str) -> None:
    old, new = make_image(seed="keep"), make_image((50_000,), seed="corrupted")
    await seed(target_reg, repo, old)
    await seed(open_reg, repo, new)
    proxy = FaultProxy("127.0.0.1", open_reg.proc.port).start()
    proxy.add(Rule("GET", f"/blobs/{new.blobs[-1].descriptor.digest}", corrupt=1234))
    try:
        with pytest.raises(DigestMismatchError):
            await do_import(proxy.host, target_reg, f"{repo}:v1", src_reg=open_reg, force=True, images=(f"{repo}:v1",))
    finally:
        proxy.stop()
    async with target_reg.client() as client:
        assert (await client.resolve(repo, "v1")).digest == old.digest
        assert await client.blob_exists(repo, new.blobs[-1].descriptor.digest) is None


async def test_connection_cut_mid_blob_completes_without_resending(
    open_reg: Reg, target_reg: Reg, target_proxy: FaultProxy, repo: str
) -> None:
    image = make_image((400_000, 300_000, 200_000), seed="cut")
    await seed(open_reg, repo, image)
    source_proxy = FaultProxy("127.0.0.1", open_reg.proc.port).start()
    victim = image.blobs[1].descriptor.digest
    source_proxy.add(Rule("GET", f"/blobs/{victim}", cut=150_000))  # source side: resumed with Range
    upload_victim = image.blobs[3].descriptor.digest
    target_proxy.add(Rule("PUT", f"digest={str(upload_victim).replace(':', '%3A')}", cut_request=50_000))
    try:
        result = await do_import(
            source_proxy.host, target_proxy.host, f"{repo}:v1", src_reg=open_reg, dst_reg=target_reg
        )
    finally:
        source_proxy.stop()
    assert result["digest"] == str(image.digest)
    gets = Counter(s.path.rsplit("/", 1)[1] for s in source_proxy.requests("GET", "/blobs/"))
    # The cut download resumed (a second, ranged GET). A blob of up to 1 MiB goes up from memory
    # in one PUT, so the cut falls on that PUT's body: the blob is sent again from memory, never
    # read from the source again.
    assert gets[str(victim)] == 2 and gets[str(upload_victim)] == 1
    assert [v for d, v in gets.items() if d != str(victim)] == [1] * (len(image.blobs) - 1)
    ranged = [s for s in source_proxy.requests("GET", str(victim)) if "Range" in s.headers]
    assert len(ranged) == 1 and ranged[0].headers["Range"] != "bytes=0-"
    puts = blob_puts(target_proxy)
    uploads = Counter(
        s.path.split("digest=")[1].replace("%3A", ":") for s in target_proxy.requests("PUT") if "digest=" in s.path
    )
    # The cut PUT, then one in a fresh session (the cut one is never sent again into its own).
    assert uploads[str(upload_victim)] == 2 and puts  # the others went once
    assert sorted(v for d, v in uploads.items() if d != str(upload_victim)) == [1] * (len(image.blobs) - 1)
    assert skopeo_raw(target_reg, f"{repo}:v1") == image.manifest


async def test_referrers_are_copied(open_reg: Reg, target_reg: Reg, repo: str) -> None:
    image = make_image(seed="withrefs")
    sbom = make_artifact(image.descriptor, "application/spdx+json", b'{"spdxVersion":"SPDX-2.3"}', seed="sbom")
    sig = make_artifact(sbom.descriptor, "application/vnd.cncf.notary.signature", b"signature", seed="sig")
    await seed(open_reg, repo, image)
    async with open_reg.client() as client:
        for artifact, subject in ((sbom, image), (sig, sbom)):
            await push_image(client, repo, artifact)
            tag_index = make_index([artifact])
            await client.push_manifest(repo, subject.digest.tag_schema, tag_index.manifest, tag_index.media_type)
    plain = await do_import(open_reg, target_reg, f"{repo}:v1", images=(f"{repo}-plain:v1",))
    assert plain["referrers"] == []
    result = await do_import(open_reg, target_reg, f"{repo}:v1", include_referrers=True)
    assert result["referrers"] == [str(sbom.digest), str(sig.digest)]
    async with target_reg.client() as client:
        found = await client.referrers(repo, image.digest)
        assert [(d.digest, d.artifact_type) for d in found] == [(sbom.digest, "application/spdx+json")]
        assert [d.digest for d in await client.referrers(repo, sbom.digest)] == [sig.digest]
        _, body = await client.fetch_manifest(repo, str(sig.digest))
        assert body == sig.manifest


async def test_platform_filter(open_reg: Reg, target_reg: Reg, repo: str) -> None:
    index = make_multiarch(["linux/amd64", "linux/arm64/v8", "linux/arm/v7"], seed="filter")
    await seed(open_reg, repo, index)
    result = await do_import(open_reg, target_reg, f"{repo}:v1", platforms=("linux/arm64",))
    assert result["sourceDigest"] == str(index.digest) and result["digest"] != str(index.digest)
    assert "filtered" in result["note"]
    async with target_reg.client() as client:
        _, body = await client.fetch_manifest(repo, "v1")
        node = parse_manifest(body)
        assert isinstance(node, Index) and [str(m.platform) for m in node.manifests] == ["linux/arm64/v8"]
        assert await client.blob_exists(repo, index.children[0].blobs[-1].descriptor.digest) is None


async def test_dry_run_copies_nothing(open_reg: Reg, target_reg: Reg, target_proxy: FaultProxy, repo: str) -> None:
    index = make_multiarch(seed="dry")
    await seed(open_reg, repo, index)
    await seed(target_reg, repo, index.children[0], None)  # part of it is there already
    result = await do_import(open_reg, target_proxy.host, f"{repo}:v1", dst_reg=target_reg, dry_run=True)
    plan = result["plan"]
    assert result["dryRun"] and writes(target_proxy) == []
    assert plan["blobs"] == len(index.blobs) and plan["uniqueBytes"] == sum(len(b.data) for b in index.blobs)
    assert plan["blobsPresent"] == len(index.children[0].blobs)
    assert plan["blobsToCopy"] == len(index.blobs) - len(index.children[0].blobs)
    assert [m["present"] for m in plan["manifests"]].count(True) == 1


async def test_artifacts_and_helm_charts_copy_like_images(open_reg: Reg, target_reg: Reg, repo: str) -> None:
    import json

    from tests.harness.images import Blob

    config = Blob(b'{"name":"chart","version":"1.0.0"}', mt.HELM_CONFIG)
    chart = Blob(b"chart-tarball-bytes", mt.HELM_CHART)
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": config.descriptor.to_json(),
        "layers": [chart.descriptor.to_json()],
        "annotations": {"org.opencontainers.image.title": "chart"},
    }
    helm = Image(json.dumps(doc).encode(), mt.OCI_MANIFEST, [config, chart])
    await seed(open_reg, repo, helm, "1.0.0")
    result = await do_import(open_reg, target_reg, f"{repo}:1.0.0")
    assert result["digest"] == str(helm.digest)
    assert skopeo_raw(target_reg, f"{repo}:1.0.0") == helm.manifest


async def test_missing_source_is_a_clear_failure(open_reg: Reg, target_reg: Reg, repo: str) -> None:
    with pytest.raises(NotFoundError, match=f"^registry {open_reg.host}: {repo}:nope not found$"):
        await do_import(open_reg, target_reg, f"{repo}:nope")


async def test_https_registry_with_a_private_ca(
    workdir: Any, target_reg: Reg, repo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real registry serving TLS with a certificate from a private CA, trusted through
    SSL_CERT_FILE as OpenSSL and httpx read it: pushed to, imported from, verified by name."""
    import asyncio

    from shared import environment
    from shared.credentials import Anonymous
    from shared.errors import TransportError
    from shared.registry import TransportOptions
    from tests.harness.registry import RegistryProcess, free_port
    from tests.harness.tls import self_signed

    cert, key = self_signed(workdir / "tls", "registry.test")
    registry = RegistryProcess("tls", free_port(), workdir / "tls-registry", None, tls=(cert, key)).start()
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> Any:  # registry.test is this machine
        return await real("127.0.0.1" if host == "registry.test" else host, port, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    options = TransportOptions(allow_loopback=True, max_attempts=1)  # https: registry.test is not loopback
    name = f"registry.test:{registry.port}"
    image = make_image((300_000,), seed="private-ca")
    try:
        async with RegistryClient(name, Anonymous(), options) as client:
            with pytest.raises(TransportError, match="TLS certificate refused"):  # certifi does not know it
                await client.resolve(repo, "v1")
        options = environment.transport(
            {"SSL_CERT_FILE": str(cert), "FERRY_RETRY_ATTEMPTS": "1"}, loopback_default=True
        )
        async with RegistryClient(name, Anonymous(), options) as client:
            await push_image(client, repo, image, "v1")
        spec = build_spec(f"{name}/{repo}:v1", target_reg.host, [f"{repo}:from-tls"])
        async with RegistryClient(name, Anonymous(), options) as s, target_reg.client() as d:
            result = (await run_import(spec, s, d)).document()
        assert result["digest"] == str(image.digest)
        assert skopeo_raw(target_reg, f"{repo}:from-tls") == image.manifest
    finally:
        registry.stop()


async def test_concurrent_imports_of_one_image_into_one_repository_all_succeed(
    open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    """Four imports of one image into one repository at once, five times over: a manifest PUT
    that races another import's blob links (distribution answers DIGEST_INVALID or
    BLOB_UNKNOWN) is asked again once its blobs are there, so none fails (1 in 20 did)."""
    image = make_multiarch(["linux/amd64", "linux/arm64"], layer_sizes=(300_000, 200_000), seed="race")
    await seed(open_reg, repo, image)
    for round_ in range(5):
        target = f"{repo}-race{round_}"
        results = await asyncio.gather(
            *(do_import(open_reg, target_reg, f"{repo}:v1", images=(f"{target}:t{n}",)) for n in range(4)),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        assert failures == [], failures
        assert {r["digest"] for r in results if isinstance(r, dict)} == {str(image.digest)}
