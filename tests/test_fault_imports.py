"""Whole imports through fault proxies in front of real registries: each ends ``succeeded`` or,
past its retry bound, fails with a clear error; the target tag never points at a partial image.
``make reliability`` writes each scenario's figures (outcome, seconds, faults met, requests
repeated, bytes sent again) to bench/RELIABILITY.md."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from shared.errors import FerryError, RateLimitedError, RegistryUnavailableError
from shared.importing.run import run_import
from shared.importing.spec import build_spec
from shared.registry import RegistryClient, TransportOptions
from shared.registry.store import RegistryRepository
from tests.conftest import Reg
from tests.harness.faultproxy import FaultProxy, Rule
from tests.harness.figures import record
from tests.harness.images import make_image, push_image

OPTIONS = TransportOptions(allow_loopback=True, max_attempts=4, backoff_base=0.05, backoff_cap=0.5, retry_budget=20.0)
IMAGE = make_image((400_000, 300_000, 200_000), seed="fault-imports")
LAYER_A, LAYER_B = IMAGE.blobs[1].descriptor, IMAGE.blobs[2].descriptor
SIZES = {str(b.descriptor.digest): b.descriptor.size for b in IMAGE.blobs}


def _error(status: int, code: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"errors": [{"code": code, "message": "injected"}]}).encode()
    return status, {"Content-Type": "application/json", **(headers or {})}, body


def _put_of(digest: object) -> str:
    return f"digest={str(digest).replace(':', '%3A')}"


@dataclass
class Scenario:
    name: str
    source: list[Rule] = field(default_factory=list)
    target: list[Rule] = field(default_factory=list)
    #: None: the import succeeds; else the error it fails with.
    error: type[FerryError] | None = None
    message: str = ""
    min_seconds: float = 0.0


SCENARIOS = [
    Scenario(
        "target answers 500 for a while",
        target=[
            Rule("POST", "/blobs/uploads/", times=3, respond=_error(500, "UNKNOWN")),
            Rule("PUT", "/manifests/", times=2, respond=_error(500, "UNKNOWN")),
        ],
    ),
    Scenario(
        "target answers 500 past the retry bound",
        target=[Rule("PUT", "/manifests/", times=1000, respond=_error(500, "UNKNOWN"))],
        error=RegistryUnavailableError,
        message="500 UNKNOWN: injected",
    ),
    Scenario(
        "source answers 429 with Retry-After",
        source=[
            Rule("HEAD", "/manifests/v1", respond=_error(429, "TOOMANYREQUESTS", {"Retry-After": "1"})),
            Rule("GET", f"/blobs/{LAYER_A.digest}", respond=_error(429, "TOOMANYREQUESTS", {"Retry-After": "1"})),
        ],
        min_seconds=1.0,
    ),
    Scenario(
        "source answers 429 past the retry bound",
        source=[
            Rule(
                "GET",
                f"/blobs/{LAYER_A.digest}",
                times=1000,
                respond=_error(429, "TOOMANYREQUESTS", {"Retry-After": "1"}),
            )
        ],
        error=RateLimitedError,
        message="429 TOOMANYREQUESTS",
        min_seconds=3.0,
    ),
    Scenario(
        "target answers 503 twice to a monolithic upload PUT",
        target=[Rule("PUT", _put_of(LAYER_A.digest), times=2, respond=_error(503, "UNAVAILABLE"))],
    ),
    Scenario(
        "target answers DIGEST_INVALID once to a manifest PUT",
        target=[Rule("PUT", "/manifests/", times=1, respond=_error(400, "DIGEST_INVALID"))],
    ),
    Scenario("connection reset mid-upload", target=[Rule("PUT", _put_of(LAYER_A.digest), cut_request=100_000)]),
    Scenario("connection cut mid-download", source=[Rule("GET", f"/blobs/{LAYER_B.digest}", cut=120_000)]),
]


@pytest.fixture
def proxies(open_reg: Reg, target_reg: Reg) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    source = FaultProxy("127.0.0.1", open_reg.proc.port).start()
    target = FaultProxy("127.0.0.1", target_reg.proc.port).start()
    yield source, target
    source.stop()
    target.stop()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_an_import_under_a_fault_succeeds_or_fails_cleanly(
    scenario: Scenario, open_reg: Reg, target_reg: Reg, proxies: tuple[FaultProxy, FaultProxy], repo: str
) -> None:
    source, target = proxies
    async with open_reg.client() as client:
        await push_image(client, repo, IMAGE, "v1")
    for rule in scenario.source:
        source.add(rule)
    for rule in scenario.target:
        target.add(rule)
    spec = build_spec(f"{source.host}/{repo}:v1", target.host, [f"{repo}:v1"])
    started = time.monotonic()
    error: FerryError | None = None
    async with RegistryClient(source.host, options=OPTIONS) as s, RegistryClient(target.host, options=OPTIONS) as d:
        try:
            await run_import(spec, s, d)
        except FerryError as exc:
            error = exc
    seconds = time.monotonic() - started

    async with target_reg.client() as client:
        found = await RegistryRepository(client, repo).lookup("v1")
        landed = found.digest if found else None
        present = [await client.blob_exists(repo, b.descriptor.digest) is not None for b in IMAGE.blobs]
    if scenario.error is None:
        assert error is None, f"failed: {error}"
        assert landed == IMAGE.digest
        assert all(present)
    else:
        assert isinstance(error, scenario.error), f"{type(error).__name__}: {error}"
        assert scenario.message in f"{error} {error.detail}"
        assert landed is None  # the tag never moved
    assert seconds >= scenario.min_seconds

    # What was done twice: a blob read again from the source, or uploaded again to the target.
    reads = [r for r in source.requests("GET", "/blobs/") if "Range" not in r.headers and (r.status or 200) < 300]
    gets = Counter(r.path.rsplit("/", 1)[1] for r in reads)
    puts = Counter(
        r.path.split("digest=")[1].replace("%3A", ":") for r in target.requests("PUT") if "digest=" in r.path
    )
    resent = sum(SIZES[d] * (n - 1) for d, n in puts.items() if n > 1)
    if scenario.error is None:
        assert all(n == 1 for d, n in puts.items() if d != str(LAYER_A.digest))  # only the victim went twice
        assert resent <= LAYER_A.size * max(1, sum(r.fired for r in scenario.target))  # once per fault, at most
    record(
        f"import: {scenario.name}",
        {
            "outcome": "succeeded" if error is None else f"failed ({type(error).__name__})",
            "seconds": round(seconds, 2),
            "faultsInjected": sum(r.fired for r in scenario.source + scenario.target),
            "rangedResumes": len([r for r in source.requests("GET", "/blobs/") if "Range" in r.headers]),
            "blobsReadTwice": sum(1 for n in gets.values() if n > 1),
            "bytesSentAgain": resent,
            "targetTag": "complete image" if landed else "not moved",
        },
    )
