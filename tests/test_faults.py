"""Faults between the client and a real registry, injected by a loopback proxy."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest

from shared.errors import (
    AuthenticationError,
    DigestMismatchError,
    ProtocolError,
    RateLimitedError,
    RegistryUnavailableError,
)
from shared.registry import RegistryClient, TransportOptions
from tests.conftest import FAST, Reg
from tests.harness.fakes import fake_server
from tests.harness.faultproxy import FaultProxy, Rule
from tests.harness.images import Blob, make_image, push_image, random_bytes

ERROR_503 = (503, {"Content-Type": "application/json"}, b'{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}')


@pytest.fixture
def proxy(open_reg: Reg) -> Iterator[FaultProxy]:
    p = FaultProxy("127.0.0.1", open_reg.proc.port).start()
    yield p
    p.stop()


class Sleeps:
    """Records the waits the transport asks for, and waits them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        import asyncio

        self.waits.append(seconds)
        await asyncio.sleep(seconds)


async def _pushed(open_reg: Reg, repo: str, sizes: tuple[int, ...] = (300_000,), seed: str = "f") -> Blob:
    image = make_image(sizes, seed=seed)
    async with open_reg.client() as client:
        await push_image(client, repo, image, "v1")
    return image.blobs[-1]


async def _read(client: RegistryClient, repo: str, blob: Blob) -> bytes:
    return b"".join([c async for c in client.fetch_blob(repo, blob.descriptor)])


async def test_429_with_retry_after_is_waited_out(open_reg: Reg, proxy: FaultProxy, repo: str) -> None:
    await _pushed(open_reg, repo)
    body = json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}).encode()
    proxy.add(Rule("HEAD", "/manifests/v1", respond=(429, {"Retry-After": "1"}, body)))
    sleeps = Sleeps()
    started = time.monotonic()
    async with RegistryClient(proxy.host, options=FAST, sleep=sleeps) as client:
        await client.resolve(repo, "v1")
    assert sleeps.waits and sleeps.waits[0] >= 1.0
    assert time.monotonic() - started >= 1.0
    assert len(proxy.requests("HEAD", "/manifests/v1")) == 2


async def test_retry_after_longer_than_the_budget_fails_at_once(open_reg: Reg, proxy: FaultProxy, repo: str) -> None:
    proxy.add(Rule("HEAD", "/manifests/v1", respond=(429, {"Retry-After": "3600"}, b"")))
    async with RegistryClient(proxy.host, options=FAST) as client:
        with pytest.raises(RateLimitedError) as caught:
            await client.resolve(repo, "v1")
    assert caught.value.retry_after == 3600 and caught.value.retryable
    assert len(proxy.requests("HEAD")) == 1


async def test_503_burst_is_retried(open_reg: Reg, proxy: FaultProxy, repo: str) -> None:
    blob = await _pushed(open_reg, repo)
    proxy.add(Rule("GET", f"/blobs/{blob.descriptor.digest}", times=3, respond=ERROR_503))
    async with RegistryClient(proxy.host, options=FAST) as client:
        assert await _read(client, repo, blob) == blob.data
    assert len(proxy.requests("GET", "/blobs/")) == 4


async def test_retries_stop_at_their_bound(open_reg: Reg, proxy: FaultProxy, repo: str) -> None:
    proxy.add(Rule("GET", "/manifests/", times=100, respond=ERROR_503))
    options = TransportOptions(max_attempts=3, backoff_base=0.01, backoff_cap=0.05, allow_loopback=True)
    async with RegistryClient(proxy.host, options=options) as client:
        with pytest.raises(RegistryUnavailableError) as caught:
            await client.fetch_manifest(repo, "v1")
    assert len(proxy.requests("GET")) == 3
    assert str(caught.value).startswith(f"registry {proxy.host}: unavailable (503) (3 attempts over ")
    assert caught.value.detail.startswith(f"fetch manifest: GET http://{proxy.host}/v2/{repo}")
    assert "503 UNAVAILABLE: busy" in caught.value.detail


async def test_connection_cut_mid_blob_resumes_with_range(open_reg: Reg, proxy: FaultProxy, repo: str) -> None:
    blob = await _pushed(open_reg, repo, (1_000_000,))
    proxy.add(Rule("GET", f"/blobs/{blob.descriptor.digest}", cut=400_000))
    async with RegistryClient(proxy.host, options=FAST) as client:
        assert await _read(client, repo, blob) == blob.data
    gets = proxy.requests("GET", "/blobs/")
    assert len(gets) == 2
    resumed_at = int(gets[1].headers["Range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 400_000  # what arrived before the cut is not asked for again


async def test_corrupt_blob_is_rejected_and_never_written(open_reg: Reg, proxy: FaultProxy, repo: str) -> None:
    blob = await _pushed(open_reg, repo, (200_000,))
    proxy.add(Rule("GET", f"/blobs/{blob.descriptor.digest}", corrupt=123_456))
    target = repo + "-target"
    async with RegistryClient(proxy.host, options=FAST) as source, open_reg.client() as dest:
        with pytest.raises(DigestMismatchError) as caught:
            await dest.push_blob(target, blob.descriptor, source.fetch_blob(repo, blob.descriptor))
        assert await dest.blob_exists(target, blob.descriptor.digest) is None
    assert str(blob.descriptor.digest) in str(caught.value)


async def test_corrupt_manifest_is_rejected(open_reg: Reg, proxy: FaultProxy, repo: str) -> None:
    image = make_image(seed="corrupt-manifest")
    async with open_reg.client() as client:
        await push_image(client, repo, image, "v1")
    proxy.add(Rule("GET", "/manifests/", corrupt=40))
    async with RegistryClient(proxy.host, options=FAST) as client:
        with pytest.raises(DigestMismatchError):
            await client.fetch_manifest(repo, str(image.digest))


async def test_chunked_upload_survives_a_cut_request(open_reg: Reg, proxy: FaultProxy, repo: str) -> None:
    data = random_bytes(700_000, "chunked")
    blob = Blob(data, "application/octet-stream")
    proxy.add(
        Rule(
            "PATCH",
            "/blobs/uploads/",
            cut_request=100_000,
            when=lambda h: h.get("content-range", "").startswith("262144-"),
        )
    )

    def open_at(offset: int) -> AsyncIterator[bytes]:
        async def gen() -> AsyncIterator[bytes]:
            for i in range(offset, len(data), 50_000):
                yield data[i : min(i + 50_000, len(data))]

        return gen()

    async with RegistryClient(proxy.host, options=FAST) as client:
        await client.push_blob_chunked(repo, blob.descriptor, open_at, chunk_size=262_144)
    async with open_reg.client() as check:
        assert b"".join([c async for c in check.fetch_blob(repo, blob.descriptor)]) == data
    patches = [r.headers.get("Content-Range") for r in proxy.requests("PATCH")]
    assert patches.count("262144-524287") >= 2  # the cut chunk was sent again, from where the registry stood


async def test_chunked_upload_recovers_from_416(open_reg: Reg, proxy: FaultProxy, repo: str) -> None:
    data = random_bytes(300_000, "416")
    blob = Blob(data, "application/octet-stream")
    proxy.add(
        Rule(
            "PATCH",
            "/blobs/uploads/",
            respond=(416, {}, b""),
            when=lambda h: h.get("content-range", "").startswith("100000-"),
        )
    )

    async def from_offset(offset: int) -> AsyncIterator[bytes]:
        yield data[offset:]

    async with RegistryClient(proxy.host, options=FAST) as client:
        await client.push_blob_chunked(repo, blob.descriptor, from_offset, chunk_size=100_000)
        assert await client.blob_exists(repo, blob.descriptor.digest) == len(data)


@contextmanager
def redirected_blobs(reg: Reg, blob: Blob, location: str) -> Iterator[FaultProxy]:
    """A proxy in front of ``reg`` whose authenticated GETs of ``blob`` redirect to ``location``."""
    proxy = FaultProxy("127.0.0.1", reg.proc.port).start()
    proxy.add(
        Rule(
            "GET",
            f"/blobs/{blob.descriptor.digest}",
            times=10,
            respond=(307, {"Location": location}, b""),
            when=lambda h: "authorization" in h,
        )
    )
    try:
        yield proxy
    finally:
        proxy.stop()


async def _pushed_to(reg: Reg, repo: str, seed: str) -> Blob:
    image = make_image((5000,), seed=seed)
    async with reg.client() as client:
        await push_image(client, repo, image, "v1")
    return image.blobs[-1]


async def test_blob_redirect_does_not_carry_authorization(basic_reg: Reg, repo: str) -> None:
    blob = await _pushed_to(basic_reg, repo, "redirect")

    def storage(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "application/octet-stream"}, blob.data

    with (
        fake_server(storage) as (storage_host, seen),
        redirected_blobs(basic_reg, blob, f"http://{storage_host}/blob?sig=SECRET-SAS") as proxy,
    ):
        async with RegistryClient(proxy.host, basic_reg.credential, FAST) as client:
            assert await _read(client, repo, blob) == blob.data
    assert seen and all("authorization" not in h for _, _, h in seen)


async def test_redirect_loop_fails_clearly() -> None:
    def loop(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        return 307, {"Location": path}, b""

    with fake_server(loop) as (host, seen):
        async with RegistryClient(host, options=FAST) as client:
            blob = Blob(b"x", "application/octet-stream")
            with pytest.raises(ProtocolError, match="too many redirects"):
                await _read(client, "a/b", blob)
    assert len(seen) <= 25


async def test_challenge_from_another_origin_is_not_answered(token_reg: Reg, repo: str) -> None:
    """A redirect target that asks for credentials gets none: no token is fetched for it."""
    assert token_reg.tokens is not None
    blob = await _pushed_to(token_reg, repo, "xorigin")
    realm = f"{token_reg.tokens.url}/token"

    def storage(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        return 401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="evil"'}, b""

    with (
        fake_server(storage) as (storage_host, seen),
        redirected_blobs(token_reg, blob, f"http://{storage_host}/blob") as proxy,
    ):
        async with RegistryClient(proxy.host, token_reg.credential, FAST) as client:
            await client.resolve(repo, "v1")
            assert token_reg.tokens is not None
            before = sum(token_reg.tokens.requests.values())
            with pytest.raises(AuthenticationError) as caught:
                await _read(client, repo, blob)
            assert sum(token_reg.tokens.requests.values()) == before  # no token fetched for the other origin
    assert "401" in caught.value.detail
    assert len(seen) == 1 and "authorization" not in seen[0][2]
