"""The registry client's distribution-spec behaviour, against a real registry and small fakes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from shared.errors import DigestMismatchError, NotFoundError, TooLargeError, UnsupportedContentError
from shared.oci import mediatypes as mt
from shared.oci.digest import Digest
from shared.oci.manifest import MAX_MANIFEST_BYTES
from shared.registry import RegistryClient
from tests.conftest import FAST, Reg
from tests.harness.fakes import fake_server
from tests.harness.images import make_artifact, make_image, make_index, push_image
from tests.harness.skopeo import raw_manifest


async def test_manifest_bytes_are_kept_exactly(open_reg: Reg, repo: str) -> None:
    """Odd whitespace and key order survive the round trip: digests never change."""
    image = make_image(seed="exact")
    assert b"\n   " in image.manifest  # indent=3: not what a re-serialiser would write
    async with open_reg.client() as client:
        await push_image(client, repo, image, "v1")
        desc, body = await client.fetch_manifest(repo, "v1")
    assert body == image.manifest and desc.digest == image.digest
    assert raw_manifest(open_reg.host, f"{repo}:v1") == image.manifest


async def test_missing_things(open_reg: Reg, repo: str) -> None:
    async with open_reg.client() as client:
        assert await client.blob_exists(repo, Digest.of(b"nothing")) is None
        with pytest.raises(NotFoundError) as caught:
            await client.fetch_manifest(repo, "nope")
        assert str(caught.value) == f"registry {open_reg.host}: {repo}:nope not found"
        assert "NAME_UNKNOWN" in caught.value.detail or "MANIFEST_UNKNOWN" in caught.value.detail


async def test_tags(open_reg: Reg, repo: str) -> None:
    image = make_image(seed="tags")
    async with open_reg.client() as client:
        await push_image(client, repo, image, "t0")
        for i in range(1, 7):
            await client.push_manifest(repo, f"t{i}", image.manifest, image.media_type)
        # distribution 2.8 ignores ``n`` and answers in storage order; the set is what counts.
        assert sorted(await client.list_tags(repo, page_size=2)) == [f"t{i}" for i in range(7)]


async def test_tags_follow_link_pagination() -> None:
    """Pages as the spec describes them (``n``, ``last``, ``Link: <...>; rel="next"``)."""
    tags = [f"v{i:02d}" for i in range(7)]

    def respond(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(path).query)
        n, last = int(query["n"][0]), query.get("last", [""])[0]
        page = [t for t in tags if t > last][:n]
        extra = {"Content-Type": "application/json"}
        if page and page[-1] != tags[-1]:
            extra["Link"] = f'</v2/a/b/tags/list?n={n}&last={page[-1]}>; rel="next"'
        return 200, extra, json.dumps({"name": "a/b", "tags": page}).encode()

    with fake_server(respond) as (host, seen):
        async with RegistryClient(host, options=FAST) as client:
            assert await client.list_tags("a/b", page_size=3) == tags
    assert len(seen) == 3


async def test_referrers_fall_back_to_the_tag_schema(open_reg: Reg, repo: str) -> None:
    """distribution 2.8 has no referrers API (404): the ``sha256-<hex>`` tag is read instead."""
    image = make_image(seed="subject")
    sbom = make_artifact(image.descriptor, "application/spdx+json", b'{"spdx":1}', seed="sbom")
    sig = make_artifact(image.descriptor, "application/vnd.cncf.notary.signature", b"sig", seed="sig")
    async with open_reg.client() as client:
        await push_image(client, repo, image, "v1")
        assert await client.referrers(repo, image.digest) == []
        for artifact in (sbom, sig):
            await push_image(client, repo, artifact)
        index = make_index([sbom, sig])
        await client.push_manifest(repo, image.digest.tag_schema, index.manifest, index.media_type)
        found = await client.referrers(repo, image.digest)
        assert [d.digest for d in found] == [sbom.digest, sig.digest]
        only = await client.referrers(repo, image.digest, "application/spdx+json")
        assert [d.digest for d in only] == [sbom.digest]


async def test_referrers_api_with_pagination() -> None:
    first = {"mediaType": mt.OCI_MANIFEST, "digest": str(Digest.of(b"1")), "size": 1, "artifactType": "a/x"}
    second = {"mediaType": mt.OCI_MANIFEST, "digest": str(Digest.of(b"2")), "size": 1, "artifactType": "a/y"}

    def respond(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        page2 = "page=2" in path
        doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [second if page2 else first]}
        extra = {"Content-Type": mt.OCI_INDEX}
        if not page2:
            extra["Link"] = f'<{path.split("?", maxsplit=1)[0]}?page=2>; rel="next"'
        return 200, extra, json.dumps(doc).encode()

    with fake_server(respond) as (host, seen):
        async with RegistryClient(host, options=FAST) as client:
            found = await client.referrers("a/b", Digest.of(b"subject"))
    assert [d.artifact_type for d in found] == ["a/x", "a/y"]
    assert len(seen) == 2


def _manifest_server(body: bytes, content_type: str, digest: str | None = None):  # type: ignore[no-untyped-def]
    def respond(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        extra = {"Content-Type": content_type}
        if digest:
            extra["Docker-Content-Digest"] = digest
        return 200, extra, body

    return fake_server(respond)


async def test_manifest_over_4_mib_is_refused() -> None:
    big = b"{" + b" " * MAX_MANIFEST_BYTES + b"}"
    with _manifest_server(big, mt.OCI_MANIFEST) as (host, _):
        async with RegistryClient(host, options=FAST) as client:
            with pytest.raises(TooLargeError, match="over the 4194304-byte limit"):
                await client.fetch_manifest("a/b", "v1")


async def test_schema1_on_head_is_refused() -> None:
    with _manifest_server(b"{}", mt.DOCKER_SCHEMA1_SIGNED, str(Digest.of(b"{}"))) as (host, _):
        async with RegistryClient(host, options=FAST) as client:
            with pytest.raises(UnsupportedContentError, match="schema 1"):
                await client.resolve("a/b", "old")


async def test_resolve_falls_back_to_get_without_a_digest_header() -> None:
    image = make_image(seed="nodigest")
    with _manifest_server(image.manifest, mt.OCI_MANIFEST) as (host, seen):
        async with RegistryClient(host, options=FAST) as client:
            desc = await client.resolve("a/b", "v1")
    assert desc.digest == image.digest and desc.size == len(image.manifest)
    assert [m for m, _, _ in seen] == ["HEAD", "GET"]


async def test_a_registry_lying_about_the_digest_is_caught() -> None:
    image = make_image(seed="liar")
    other = str(Digest.of(b"other"))
    with _manifest_server(image.manifest, mt.OCI_MANIFEST, other) as (host, _):
        async with RegistryClient(host, options=FAST) as client:
            with pytest.raises(DigestMismatchError):
                await client.fetch_manifest("a/b", "v1")
            with pytest.raises(DigestMismatchError):
                await client.resolve("a/b", str(image.digest))


@pytest.mark.parametrize("probe", [True, False])
async def test_put_blob_finds_present_blobs_either_way(open_reg: Reg, repo: str, probe: bool) -> None:
    """With the mount probe (one POST) or HEAD then POST, a present blob is not sent again."""
    from shared.registry.store import RegistryRepository, UploadOptions
    from tests.harness.images import Blob

    blob = Blob(b"layer bytes " * 100, "application/octet-stream")
    sent: list[int] = []

    def open_at(offset: int) -> AsyncIterator[bytes]:
        async def gen() -> AsyncIterator[bytes]:
            sent.append(offset)
            yield blob.data[offset:]

        return gen()

    async with open_reg.client() as client:
        dst = RegistryRepository(client, repo, UploadOptions(probe_with_mount=probe))
        assert await dst.put_blob(blob.descriptor, open_at) == "copied"
        assert await dst.put_blob(blob.descriptor, open_at) == "present"
        assert await client.blob_exists(repo, blob.descriptor.digest) == len(blob.data)
    assert sent == [0]


async def test_a_registrys_cookies_are_not_kept_or_sent_back() -> None:
    """Ferry keeps no cookie jar: what a registry sets is not carried to its next request (and
    no answer is parsed for cookies, a tenth of a mirror pass's ``HEAD``)."""

    def respond(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        body = json.dumps({"name": "a/b", "tags": ["v1"]}).encode()
        return 200, {"Content-Type": "application/json", "Set-Cookie": "session=s3cret; Path=/"}, body

    with fake_server(respond) as (host, seen):
        async with RegistryClient(host, options=FAST) as client:
            await client.list_tags("a/b")
            await client.list_tags("a/b")
            assert not client.transport.http.cookies
    assert len(seen) == 2
    assert all("cookie" not in {k.lower() for k in h} for _, _, h in seen)
