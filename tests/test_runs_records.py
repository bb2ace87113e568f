"""A run's record, typed: the API's JSON for a finished run, its CloudEvent and the table rows
that hold it are byte-for-byte what they were before the record had a type (fixtures captured
from the untyped code, ``tests/fixtures/runs/``).

The store's clock is fixed and the ids are chosen, so nothing needs masking: a run of three jobs
(one succeeded, one failed, one cancelled) ends ``partial``, its event is claimed and finished with
no destination, and what the API serves (show, list, cancel's refusal aside), the event's bytes
and the rows are compared whole."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shared.azure_storage.records import JobError, JobRecord
from shared.events.config import EventsConfig
from shared.events.publish import Publisher
from shared.http.policy import TransportOptions
from shared.runs.event import cloud_event, encode
from shared.runs.model import RunJob, Trigger
from shared.service.runevents import EventSender
from shared.service.wiring import Services

pytestmark = pytest.mark.process
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "runs"
#: Set to rewrite the fixtures from the code as it stands (done once, before the record was typed).
CAPTURE = os.environ.get("FERRY_CAPTURE_RUNS") == "1"
AT = datetime(2026, 12, 1, 8, 30, 15, 123456, tzinfo=UTC)
DIGEST = "sha256:" + "e" * 64


def _ended(job_id: str, state: str) -> JobRecord:
    done = datetime(2026, 12, 1, 8, 31, 2, 500000, tzinfo=UTC)
    if state == "succeeded":
        return JobRecord(id=job_id, state="succeeded", finishedAt=done, result={"bytes": 1234, "digest": DIGEST})
    error = JobError(code="NOT_FOUND", message="source registry r: repository a not found", detail="GET /v2/")
    return JobRecord.model_validate({"id": job_id, "state": state, "finishedAt": done, "error": error})


def _served(api: TestClient, svc: Services, run_id: str) -> dict[str, str]:
    jobs = [
        RunJob(id=f"{run_id}j{n}", source=f"src.example/app:{n}", targets=[f"dst.example/app:{n}", "dst.example/x"])
        for n in range(3)
    ]
    svc.runs.open(run_id, "batch", Trigger(type="api", requestedBy="alice@example.com"), jobs)
    for job, state in zip(jobs, ["succeeded", "failed", "cancelled"], strict=True):
        svc.runs.job_ended(run_id, job.id, _ended(job.id, state))
    run = svc.runs.look(run_id)
    assert run is not None
    event = encode(cloud_event(run, "/ferry/golden")).decode()
    sender = EventSender(svc.runs.records, EventsConfig(destinations=(), source="/ferry/golden"), _publisher())
    asyncio.run(sender.handle(json.dumps({"run": run_id})))
    rows = svc.runs.records.table.query_entities("PartitionKey eq @p", parameters={"p": f"run-{run_id}"})
    kept = [{k: v for k, v in sorted(dict(r).items()) if k != "Timestamp"} for r in rows]
    return {
        "show": api.get(f"/api/runs/{run_id}").text,
        "list": api.get("/api/runs?kind=batch&state=partial").text,
        "cancel": api.post(f"/api/runs/{run_id}/cancel").text,
        "event": event,
        "rows": json.dumps(kept, indent=1, default=str),
    }


def _publisher() -> Publisher:
    return Publisher(TransportOptions(allow_loopback=True))


def test_a_finished_runs_json_event_and_rows_are_what_they_were(
    api: TestClient, svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shared.azure_storage.runs._now", lambda: AT)
    served = _served(api, svc, "0golden0run")
    if CAPTURE:
        FIXTURES.mkdir(parents=True, exist_ok=True)
        for name, text in served.items():
            (FIXTURES / f"{name}.json").write_text(text + "\n")
    for name, text in served.items():
        assert text + "\n" == (FIXTURES / f"{name}.json").read_text(), name
