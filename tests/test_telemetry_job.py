"""Telemetry through the service, with the SDK's in-memory exporter and reader: a ``POST`` makes
a server span, its trace crosses the queue in the message (W3C), the worker's job span continues
it with the job's attributes and a child span per phase; a failed job's span and metrics carry
its code; with telemetry off the message is as it always was."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.http import create_app
from shared import telemetry
from shared.automation.calls import run_mirrors
from shared.service.wiring import Services
from tests.conftest import Reg
from tests.harness.azurite import Azurite
from tests.harness.images import make_multiarch, seed
from tests.harness.service import drain, environment, make_services
from tests.test_telemetry import Recorded


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    rec = Recorded()
    telemetry.use(rec.tracer_provider, rec.meter_provider)
    yield rec
    telemetry.use()


def _submit(client: TestClient, source: str, image: str, target: Reg) -> str:
    body = {"targetRegistry": target.host, "source": {"registryUri": source, "sourceImage": image},
            "targetTags": [f"tel/{image.replace(':', '-')}:1"]}  # fmt: skip
    answer = client.post("/api/imports", json=body, headers={"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def _by_name(recorded: Recorded) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for span in recorded.spans.get_finished_spans():
        out.setdefault(span.name, []).append(span)
    return out


def test_a_job_continues_the_requests_trace_with_its_phases(
    recorded: Recorded, svc: Services, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    digest = asyncio.run(seed(open_reg, repo, make_multiarch(seed="tel-job"), "v1"))
    client = TestClient(create_app(lambda: svc))
    job = _submit(client, open_reg.host, f"{repo}:v1", target_reg)
    kept = json.loads(svc.statuses.message(job) or "{}")
    assert kept["traceContext"]["traceparent"].startswith(f"00-{'ab' * 16}-")  # the caller's trace, in the message
    drain(svc)
    spans = _by_name(recorded)
    request = next(s for s in spans["POST /api/imports"])
    assert request.context.trace_id == int("ab" * 16, 16)  # the caller's traceparent was continued
    (root,) = spans[telemetry.JOB_SPAN]
    assert root.context.trace_id == request.context.trace_id and root.parent.span_id == request.context.span_id
    attributes = dict(root.attributes or {})
    assert attributes["ferry.job.id"] == job and attributes["ferry.outcome"] == "succeeded"
    assert attributes["ferry.digest"] == str(digest) and attributes["ferry.engine"] == "oci"
    assert attributes["ferry.source"].endswith(f"{repo}:v1") and attributes["ferry.bytes"] > 0
    assert attributes["ferry.blobs.copied"] > 0 and "ferry.blobs.mounted" in attributes
    for phase in ("ferry.resolve", "ferry.plan", "ferry.manifest", "ferry.blob", "ferry.tags"):
        assert phase in spans, sorted(spans)
        assert all(s.context.trace_id == root.context.trace_id for s in spans[phase])
    assert {s.parent.span_id for s in spans["ferry.resolve"]} == {root.context.span_id}
    assert len(spans["ferry.manifest"]) == 4  # the index and its three platforms
    metrics = recorded.metrics()
    assert [(p.attributes["ferry.outcome"], p.value) for p in metrics["ferry.jobs"]] == [("succeeded", 1)]
    assert sum(p.value for p in metrics["ferry.copy.bytes"]) == attributes["ferry.bytes"]


def test_a_failed_job_carries_its_code(
    recorded: Recorded, svc: Services, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    client = TestClient(create_app(lambda: svc))
    job = _submit(client, open_reg.host, f"{repo}:missing", target_reg)
    drain(svc)
    code = svc.statuses.get(job).error.code  # type: ignore[union-attr]
    (root,) = _by_name(recorded)[telemetry.JOB_SPAN]
    assert root.attributes["ferry.outcome"] == "failed" and root.attributes["error.type"] == code
    assert root.status.status_code.name == "ERROR"
    points = recorded.metrics()["ferry.jobs"]
    assert [(p.attributes["ferry.outcome"], p.attributes["error.type"]) for p in points] == [("failed", code)]


def test_off_the_message_has_no_trace_context(svc: Services, target_reg: Reg, open_reg: Reg, repo: str) -> None:
    client = TestClient(create_app(lambda: svc))
    job = _submit(client, open_reg.host, f"{repo}:v1", target_reg)
    assert "traceContext" not in json.loads(svc.statuses.message(job) or "{}")


def test_a_mirror_passs_jobs_continue_its_trace(
    recorded: Recorded, azurite: Azurite, tmp_path: Path, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"mirrors": [{"name": "m", "source": f"{open_reg.host}/{repo}", "tags": ["v1"],
                                              "targetRegistry": target_reg.host}]}))  # fmt: skip
    svc = make_services(environment(azurite, FERRY_RULES_FILE=str(rules)))
    asyncio.run(seed(open_reg, repo, make_multiarch(seed="tel-mirror"), "v1"))
    asyncio.run(run_mirrors(svc))
    drain(svc)
    spans = _by_name(recorded)
    (mirror,) = spans["ferry.mirror_pass"]
    (job,) = spans[telemetry.JOB_SPAN]
    assert job.context.trace_id == mirror.context.trace_id and job.parent.span_id == mirror.context.span_id
    assert job.attributes["ferry.outcome"] == "succeeded"
