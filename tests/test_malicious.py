"""Malicious source registries, each through a whole import into a real target registry.

Every case must fail the import with its own clear error, quickly, in bounded memory, with no
connection to an address Ferry was not asked to contact (every connection's peer is recorded
where the transport makes it), and with nothing tagged at the target. ``make reliability``
writes each case's figures (seconds, peak Python memory, requests) to bench/RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from shared.credentials import Anonymous, Secret, UsernamePassword
from shared.errors import (
    AuthenticationError,
    DigestMismatchError,
    FerryError,
    InsecureEndpointError,
    LimitExceededError,
    ProtocolError,
    SizeMismatchError,
    TooLargeError,
    TransportError,
)
from shared.http import wire
from shared.importing.result import ResultDocument
from shared.importing.run import run_import
from shared.importing.spec import build_spec
from shared.oci import mediatypes as mt
from shared.oci.digest import Digest
from shared.oci.manifest import MAX_MANIFEST_BYTES, Descriptor
from shared.registry import RegistryClient, TransportOptions
from shared.registry.store import RegistryRepository
from tests.conftest import Reg
from tests.harness.fakes import Responder, fake_server, trickle_server
from tests.harness.figures import record
from tests.harness.images import Image, index_of_strangers, make_image

#: Short deadlines so that "quickly" is seconds; the behaviour is the production one.
OPTIONS = TransportOptions(
    allow_loopback=True,
    max_attempts=2,
    backoff_base=0.01,
    backoff_cap=0.1,
    retry_budget=5.0,
    stall_floor=1_000_000,
    stall_window=1.0,
)
#: The most Python memory one failed import may hold at its peak (tracemalloc).
MEMORY_BOUND = 16 * 1024 * 1024
#: Seconds a failing import may take.
TIME_BOUND = 10.0

IMAGE = make_image((200_000,), seed="malicious")
LAYER = IMAGE.blobs[1]


def _manifest_headers(image: Image) -> dict[str, str]:
    return {"Content-Type": image.media_type, "Docker-Content-Digest": str(image.digest)}


def registry(image: Image = IMAGE, **overrides: Responder) -> Responder:
    """An honest registry serving ``image`` as ``evil/app:v1``; ``overrides`` answer instead for
    ``manifest`` (GET and HEAD) or ``blob`` requests."""
    blobs = {str(b.descriptor.digest): b.data for b in image.blobs}

    def respond(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if path == "/v2/":
            return 200, {}, b"{}"
        if "/manifests/" in path:
            if "manifest" in overrides:
                return overrides["manifest"](method, path, headers)
            return 200, _manifest_headers(image), image.manifest
        if "/blobs/" in path:
            if "blob" in overrides:
                return overrides["blob"](method, path, headers)
            data = blobs.get(path.rsplit("/", 1)[-1])
            if data is not None:
                return 200, {"Content-Type": "application/octet-stream"}, data
        return 404, {"Content-Type": "application/json"}, b'{"errors":[{"code":"NOT_FOUND","message":"no"}]}'

    return respond


def _layer_only(answer: Callable[[bytes], tuple[int, dict[str, str], bytes]]) -> Responder:
    """Answers the layer's GET with ``answer(layer bytes)``; the config honestly."""

    def respond(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        digest = path.rsplit("/", 1)[-1]
        if digest == str(LAYER.descriptor.digest):
            return answer(LAYER.data)
        config = IMAGE.blobs[0]
        return 200, {"Content-Type": "application/octet-stream"}, config.data

    return respond


def _big_manifest() -> Responder:
    body = b'{"schemaVersion": 2, "mediaType": "' + mt.OCI_MANIFEST.encode() + b'", "x": "'
    body += b"a" * (MAX_MANIFEST_BYTES + 1024) + b'"}'
    return lambda method, path, headers: (200, {"Content-Type": mt.OCI_MANIFEST}, body)


def _small_head_big_body() -> Responder:
    """HEAD claims a small manifest; GET sends over 4 MiB."""
    big = _big_manifest()

    def respond(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if method == "HEAD":
            return 200, {"Content-Type": mt.OCI_MANIFEST, "Docker-Content-Digest": str(Digest.of(b"x"))}, b"x" * 900
        return big(method, path, headers)

    return respond


def _huge_index() -> Responder:
    body = index_of_strangers(10_000)
    headers = {"Content-Type": mt.OCI_INDEX, "Docker-Content-Digest": str(Digest.of(body))}
    return lambda method, path, h: (200, headers, body)


def _redirect_to_itself(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    return 307, {"Location": path}, b""


@dataclass
class Case:
    name: str
    error: type[FerryError]
    message: str
    overrides: dict[str, Any] = field(default_factory=dict)
    #: Extra servers: ``"decoy"`` (a second origin a redirect leads to, on 127.0.0.2) and
    #: ``"realm"`` (a token service on 127.0.0.3 nobody may contact).
    decoy: bool = False
    trickle: bool = False
    credential: bool = False
    #: Peak Python memory allowed. Parsing is the cost where there is one: 1.3 MB of index JSON
    #: is about 12 MB of Python objects (bounded in turn by the 4 MiB manifest limit).
    memory: int = MEMORY_BOUND


CASES = [
    Case("manifest over 4 MiB", TooLargeError, "4194304", {"manifest": _big_manifest()}),
    Case("manifest over 4 MiB behind a small HEAD", TooLargeError, "4194304", {"manifest": _small_head_big_body()}),
    Case(
        "index with 10,000 children",
        LimitExceededError,
        "more than 50 manifests",
        {"manifest": _huge_index()},
        memory=24 * 1024 * 1024,
    ),
    Case(
        "blob longer than its descriptor",
        SizeMismatchError,
        "expected 200000 bytes",
        {"blob": _layer_only(lambda data: (200, {}, data + b"extra bytes"))},
    ),
    Case(
        "blob whose digest does not match",
        DigestMismatchError,
        str(LAYER.descriptor.digest),
        {"blob": _layer_only(lambda data: (200, {}, bytes(reversed(data))))},
    ),
    Case("redirect loop", ProtocolError, "too many redirects", {"blob": _redirect_to_itself}),
    Case(
        "token realm on the metadata address",
        InsecureEndpointError,
        "169.254.169.254",
        {
            "manifest": lambda m, p, h: (
                401,
                {"WWW-Authenticate": 'Bearer realm="https://169.254.169.254/token",service="evil"'},
                b"",
            )
        },
    ),
    Case("challenge from another origin", AuthenticationError, "which answered 401", decoy=True, credential=True),
    Case("endless slow body", TransportError, "stalled", trickle=True),
]


@contextmanager
def connections_recorded() -> Iterator[list[tuple[str, int]]]:
    """Every connection the registry transport opens, by its peer address."""
    peers: list[tuple[str, int]] = []
    made = wire.Wire.connection_made

    def connection_made(self: wire.Wire, transport: Any) -> None:
        peer = transport.get_extra_info("peername")
        peers.append((peer[0], peer[1]))
        made(self, transport)

    wire.Wire.connection_made = connection_made  # type: ignore[method-assign]
    try:
        yield peers
    finally:
        wire.Wire.connection_made = made  # type: ignore[method-assign]


def _address(host: str) -> tuple[str, int]:
    name, _, port = host.rpartition(":")
    return name, int(port)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_malicious_registry_fails_the_import_quickly_in_bounded_memory(case: Case, target_reg: Reg) -> None:
    with ExitStack() as stack:
        realm_host, realm_seen = stack.enter_context(fake_server(lambda m, p, h: (200, {}, b"{}"), "127.0.0.3"))
        overrides = dict(case.overrides)
        decoy_seen: list[tuple[str, str, dict[str, str]]] = []
        expected = {_address(target_reg.host)}
        if case.decoy:
            # The source redirects the layer to another origin, which challenges for credentials
            # at a realm: Ferry follows the redirect but sends the source's credentials nowhere.
            challenge = f'Bearer realm="http://{realm_host}/token",service="decoy"'
            decoy_host, decoy_seen = stack.enter_context(
                fake_server(lambda m, p, h: (401, {"WWW-Authenticate": challenge}, b""), "127.0.0.2")
            )
            overrides["blob"] = _layer_only(lambda data: (307, {"Location": f"http://{decoy_host}/blob"}, b""))
            expected.add(_address(decoy_host))
        if case.trickle:
            source = stack.enter_context(trickle_server(mt.OCI_MANIFEST, 1_000_000, 0.2))
            seen: list[Any] = []
        else:
            source, seen = stack.enter_context(fake_server(registry(**overrides)))
        expected.add(_address(source))
        credential = UsernamePassword("evil-user", Secret("source-s3cret")) if case.credential else Anonymous()
        target_repo = f"evil/{abs(hash(case.name))}"
        spec = build_spec(f"{source}/evil/app:v1", target_reg.host, [f"{target_repo}:v1"])

        async def go() -> None:
            async with (
                RegistryClient(source, credential, OPTIONS) as src,
                RegistryClient(target_reg.host, Anonymous(), OPTIONS) as dst,
            ):
                await run_import(spec, src, dst)

        peers = stack.enter_context(connections_recorded())
        tracemalloc.start()
        started = time.monotonic()
        try:
            with pytest.raises(case.error) as caught:
                asyncio.run(go())
            seconds = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    assert case.message in str(caught.value)
    assert "source-s3cret" not in str(caught.value)
    assert seconds < TIME_BOUND, f"{seconds:.1f} s"
    assert peak < case.memory, f"peak {peak / 1e6:.1f} MB"
    assert set(peers) <= expected, f"contacted {set(peers) - expected}"
    assert realm_seen == []  # no token service was asked, the metadata address never reached
    assert all("authorization" not in headers for _, _, headers in decoy_seen)

    async def target_tag() -> Descriptor | None:
        async with RegistryClient(target_reg.host, Anonymous(), OPTIONS) as client:
            return await RegistryRepository(client, target_repo).lookup("v1")

    assert asyncio.run(target_tag()) is None
    record(
        f"malicious registry: {case.name}",
        {
            "error": type(caught.value).__name__,
            "seconds": round(seconds, 2),
            "peakPythonMiB": round(peak / 2**20, 1),
            "requestsToSource": len(seen),
            "connections": len(peers),
            "unexpectedAddresses": 0,
        },
    )


def test_no_content_coding_comes_between_the_bytes_and_their_digest(target_reg: Reg) -> None:
    """A registry (or a CDN before it) that gzips every answer the client lets it: Ferry asks
    for ``identity`` on every request, so manifests and blobs arrive as the bytes their digests
    name, and the import lands the same image."""
    import gzip

    honest = registry()
    asked: list[str] = []

    def gzipping(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        status, extra, body = honest(method, path, headers)
        asked.append(headers.get("accept-encoding", ""))
        if "gzip" in headers.get("accept-encoding", "") and body and method == "GET":
            return status, {**extra, "Content-Encoding": "gzip"}, gzip.compress(body)
        return status, extra, body

    with fake_server(gzipping) as (source, _):
        spec = build_spec(f"{source}/evil/app:v1", target_reg.host, ["identity/app:v1"])

        async def go() -> ResultDocument:
            async with (
                RegistryClient(source, Anonymous(), OPTIONS) as src,
                RegistryClient(target_reg.host, Anonymous(), OPTIONS) as dst,
            ):
                return (await run_import(spec, src, dst)).document()

        result = asyncio.run(go())
    assert result["digest"] == str(IMAGE.digest)
    assert asked and set(asked) == {"identity"}
