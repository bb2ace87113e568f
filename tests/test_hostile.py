"""Hostile input: SSRF destinations refused at validation and at connection time, and property
tests that no input crashes the reference parser, the manifest parser or the rules file."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from functions.http import create_app
from shared.automation.rules import parse_rules
from shared.credentials import Anonymous
from shared.errors import ConfigurationError, FerryError, InsecureEndpointError, InvalidReferenceError, ManifestError
from shared.oci.manifest import parse_manifest
from shared.oci.reference import parse_reference
from shared.registry import RegistryClient, TransportOptions
from shared.service.wiring import build
from shared.settings import Settings
from tests.harness.azurite import Azurite
from tests.harness.figures import record
from tests.harness.service import environment

# -- SSRF --------------------------------------------------------------------------------------


@pytest.fixture
def strict(azurite: Azurite) -> TestClient:
    """The service as deployed: loopback not allowed, one private registry allowed."""
    env = environment(azurite, FERRY_ALLOW_LOOPBACK="false", FERRY_ALLOWED_REGISTRIES="10.1.2.3:5000,myreg.internal")
    svc = build(Settings.from_env(env))
    return TestClient(create_app(lambda: svc))


@pytest.mark.parametrize(
    ("field", "registry"),
    [
        ("targetRegistry", "169.254.169.254"),
        ("targetRegistry", "10.0.0.5:5000"),
        ("targetRegistry", "172.16.0.1"),
        ("targetRegistry", "192.168.1.10:443"),
        ("targetRegistry", "[fd00::1]:5000"),
        ("targetRegistry", "127.0.0.1:5000"),
        ("targetRegistry", "localhost:5000"),
        ("targetRegistry", "[::1]:5000"),
        ("source.registryUri", "169.254.169.254"),
        ("source.registryUri", "10.9.9.9"),
        ("source.registryUri", "0.0.0.0:80"),
    ],
)
def test_private_destinations_are_refused_at_validation(strict: TestClient, field: str, registry: str) -> None:
    doc = {"targetRegistry": "prodacr", "source": {"registryUri": "docker.io", "sourceImage": "library/nginx:1"}}
    if field == "targetRegistry":
        doc["targetRegistry"] = registry
    else:
        doc["source"]["registryUri"] = registry  # type: ignore[index]
    response = strict.post("/api/imports", json=doc)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["fields"][0]["field"] == field and "refused" in problem["message"]
    assert "FERRY_ALLOWED_REGISTRIES" in problem["message"]
    record(f"SSRF refused: {registry} as {field}", {"reason": "400 at validation"})


def test_allowed_private_registries_pass(strict: TestClient) -> None:
    doc = {"targetRegistry": "10.1.2.3:5000", "source": {"registryUri": "docker.io", "sourceImage": "library/nginx:1"}}
    assert strict.post("/api/imports", json=doc).status_code == 202


def test_source_allow_list(azurite: Azurite) -> None:
    svc = build(Settings.from_env(environment(azurite, FERRY_SOURCE_REGISTRIES="mcr.microsoft.com,docker.io")))
    api = TestClient(create_app(lambda: svc))
    ok = {
        "targetRegistry": "prodacr",
        "source": {"registryUri": "mcr.microsoft.com", "sourceImage": "dotnet/runtime:8.0"},
    }
    assert api.post("/api/imports", json=ok).status_code == 202
    bad = {"targetRegistry": "prodacr", "source": {"registryUri": "ghcr.io", "sourceImage": "org/app:1"}}
    response = api.post("/api/imports", json=bad)
    assert response.status_code == 400 and "not one of FERRY_SOURCE_REGISTRIES" in response.json()["message"]


def test_names_resolving_to_private_addresses_are_refused_when_connecting() -> None:
    """``localhost`` is a name: resolved at connection time, it is loopback, refused unless allowed;
    no request is sent."""
    options = TransportOptions(allow_loopback=False, max_attempts=1)

    async def attempt() -> None:
        async with RegistryClient("localhost:9", Anonymous(), options) as client:
            await client.ping()

    with pytest.raises(InsecureEndpointError, match="refused: localhost:9 is on loopback address"):
        asyncio.run(attempt())


def test_redirects_to_private_addresses_are_refused(open_reg: object) -> None:
    from tests.harness.fakes import fake_server

    def redirect(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        return 307, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""

    with fake_server(redirect) as (host, _):
        options = TransportOptions(allow_loopback=True, max_attempts=1)

        async def attempt() -> None:
            async with RegistryClient(host, Anonymous(), options) as client:
                from shared.oci.digest import Digest
                from shared.oci.manifest import Descriptor

                desc = Descriptor("application/octet-stream", Digest.of(b"x"), 1)
                _ = [c async for c in client.fetch_blob("a/b", desc)]

        with pytest.raises(InsecureEndpointError, match=r"169\.254\.169\.254"):
            asyncio.run(attempt())


def test_a_stopped_upload_never_deletes_where_a_hostile_answer_points() -> None:
    """A stop ends a streamed upload's body and the session is deleted at the URL the registry
    answers with. A registry naming the metadata address there gets no request to it: the
    DELETE is refused before any connection, and the upload ends as stopped, at once."""
    import time

    from shared import stopping
    from shared.oci.digest import Digest
    from shared.oci.manifest import Descriptor
    from tests.harness.hostile import hostile_server, response

    def registry(method: str, path: str, headers: dict[str, str]) -> bytes | None:
        if method == "POST":
            return response(202, b"", {"Location": "/v2/a/b/blobs/uploads/1"})
        if method == "PATCH":
            return response(202, b"", {"Location": "https://169.254.169.254/latest/meta-data/"})
        return None  # the rest of the streamed body, read as requests: closed

    stop = stopping.Stop()
    piece = b"x" * 65536
    desc = Descriptor("application/octet-stream", Digest.of(b"not these bytes"), 64 * len(piece))

    async def open_at(offset: int) -> AsyncIterator[bytes]:
        for n in range(64):
            if n == 2:
                stop.ask()
            yield piece

    async def upload(host: str) -> None:
        async with RegistryClient(host, Anonymous(), TransportOptions(allow_loopback=True, max_attempts=1)) as client:
            with stopping.scope(stop):
                await client.push_blob_chunked("a/b", desc, open_at)

    with hostile_server(registry) as (host, seen):
        started = time.monotonic()
        with pytest.raises(stopping.Stopped):
            asyncio.run(upload(host))
        assert time.monotonic() - started < 5
    assert [s.method for s in seen if s.method in ("POST", "PATCH", "PUT", "DELETE")] == ["POST", "PATCH"]


# -- property tests ----------------------------------------------------------------------------

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
reference_alphabet = st.sampled_from([*list("abcXYZ019._-:/@[]"), "sha256:", "a" * 64, "docker.io/", "localhost:5000/"])


@PROPERTY
@given(st.text(max_size=300) | st.lists(reference_alphabet, max_size=30).map("".join))
def test_reference_parser_never_crashes(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReferenceError:
        return
    assert parse_reference(str(ref)) == ref


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
manifest_like = st.fixed_dictionaries(
    {},
    optional={
        "schemaVersion": st.sampled_from([1, 2, "2", None]),
        "mediaType": st.sampled_from([
            "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json", "application/json", "x",
        ]),
        "config": json_values, "layers": json_values, "manifests": json_values, "subject": json_values,
    },
)  # fmt: skip


@PROPERTY
@given(
    st.binary(max_size=500)
    | manifest_like.map(lambda d: json.dumps(d).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
)
def test_manifest_parser_never_crashes(data: bytes) -> None:
    with contextlib.suppress(ManifestError, FerryError):
        parse_manifest(data)


rule_like = st.fixed_dictionaries(
    {},
    optional={
        "promotions": st.lists(
            st.dictionaries(
                st.sampled_from(["name", "sourceRegistry", "targetRegistry", "tag", "repository", "targetTags", "x"]),
                json_values,
                max_size=6,
            ),
            max_size=3,
        ),
        "mirrors": st.lists(
            st.dictionaries(
                st.sampled_from(["name", "source", "targetRegistry", "semver", "tags", "newest", "tagRegex"]),
                json_values,
                max_size=6,
            ),
            max_size=3,
        ),
    },
)


@PROPERTY
@given(rule_like.map(json.dumps) | st.text(max_size=300))
def test_rules_file_never_crashes(text: str) -> None:
    with contextlib.suppress(ConfigurationError):
        parse_rules(text)


@PROPERTY
@given(json_values)
def test_request_model_only_raises_validation_errors(doc: object) -> None:
    from shared.importing.request import ImportRequest

    with contextlib.suppress(ValidationError):
        ImportRequest.model_validate(doc)


# -- malicious registries ------------------------------------------------------------------------


def test_endless_slow_bodies_fail_quickly() -> None:
    import time

    from shared.errors import TransportError
    from shared.oci.digest import Digest
    from shared.oci.manifest import Descriptor
    from tests.harness.fakes import trickle_server

    # A byte every 50 ms keeps coming (no read ever times out), far under the floor: a stall
    # within the 0.3 s window, for the manifest and for the blob.
    options = TransportOptions(allow_loopback=True, max_attempts=1, stall_floor=1_000_000, stall_window=0.3)

    async def manifest(host: str) -> None:
        async with RegistryClient(host, Anonymous(), options) as client:
            await client.fetch_manifest("a/b", "v1")

    async def blob(host: str) -> None:
        async with RegistryClient(host, Anonymous(), options) as client:
            desc = Descriptor("application/octet-stream", Digest.of(b"x"), 1_000_000)
            _ = [c async for c in client.fetch_blob("a/b", desc)]

    for run in (manifest, blob):
        with trickle_server("application/vnd.oci.image.manifest.v1+json", 1_000_000, 0.05) as host:
            started = time.monotonic()
            with pytest.raises(TransportError, match="stalled"):
                asyncio.run(run(host))
            assert time.monotonic() - started < 5


def test_blob_longer_than_its_descriptor_is_refused() -> None:
    from shared.errors import SizeMismatchError
    from shared.oci.digest import Digest
    from shared.oci.manifest import Descriptor
    from tests.harness.fakes import fake_server

    data = b"y" * 5000

    def respond(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "application/octet-stream"}, data

    with fake_server(respond) as (host, _):

        async def read() -> None:
            async with RegistryClient(host, Anonymous(), TransportOptions(allow_loopback=True)) as client:
                desc = Descriptor("application/octet-stream", Digest.of(data[:100]), 100)
                _ = [c async for c in client.fetch_blob("a/b", desc)]

        with pytest.raises(SizeMismatchError, match="expected 100 bytes"):
            asyncio.run(read())


def test_index_with_ten_thousand_children_is_refused_before_reading_them() -> None:
    from shared.content.memory import MemoryStore
    from shared.engine.plan import PlanOptions, build_plan
    from shared.errors import LimitExceededError
    from shared.oci import mediatypes as mt
    from shared.oci.manifest import Descriptor
    from tests.harness.images import index_of_strangers

    data = index_of_strangers(10_000)
    store = MemoryStore()
    root = Descriptor(mt.OCI_INDEX, store.put_manifest(mt.OCI_INDEX, data, "v1"), len(data))
    with pytest.raises(LimitExceededError, match="more than 50 manifests"):
        asyncio.run(build_plan(store, root, PlanOptions()))
    assert store.calls["fetch_manifest"] == 1


def test_blob_streams_in_bounded_memory(open_reg: object) -> None:
    """A 64 MiB blob moves registry to registry through a few MiB of Python memory at most."""
    import tracemalloc

    from bench.fixtures import Layer
    from tests.conftest import FAST, Reg

    assert isinstance(open_reg, Reg)
    layer = Layer(64 * 1024 * 1024, "bounded")
    desc = layer.descriptor()

    async def go() -> int:
        async def open_at(offset: int):  # type: ignore[no-untyped-def]
            for chunk in layer.chunks(offset):
                yield chunk

        async with RegistryClient(open_reg.host, Anonymous(), FAST) as client:
            await client.push_blob_chunked("bounded/src", desc, open_at)
            tracemalloc.start()
            await client.push_blob("bounded/dst", desc, client.fetch_blob("bounded/src", desc))
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert await client.blob_exists("bounded/dst", desc.digest) == desc.size
            return peak

    peak = asyncio.run(go())
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
