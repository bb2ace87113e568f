"""Runs as values: the state machine, what a run keeps of a job, the end event's document, and
the events' settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.errors import ConfigurationError
from shared.events.config import FAILURES, STATES, events
from shared.runs.event import MAX_LISTED, cloud_event, encode
from shared.runs.model import Counts, Run, RunJob, job_end, outcome

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize(
    ("counts", "open_", "cancel", "expected"),
    [
        (Counts(total=3, succeeded=2), False, False, "running"),
        (Counts(total=2, succeeded=2), True, False, "running"),
        (Counts(total=2, succeeded=2), False, False, "succeeded"),
        (Counts(total=0), False, False, "succeeded"),
        (Counts(total=2, failed=2), False, False, "failed"),
        (Counts(total=3, succeeded=1, failed=2), False, False, "partial"),
        (Counts(total=3, succeeded=1, cancelled=2), False, True, "cancelled"),
        (Counts(total=2, cancelled=2), False, False, "cancelled"),
        (Counts(total=2, succeeded=1, cancelled=1), False, False, "partial"),
        (Counts(total=2, failed=1, cancelled=1), False, False, "failed"),
        (Counts(total=2, succeeded=2), False, True, "succeeded"),  # a cancel that came too late
    ],
)
def test_a_runs_state_follows_from_its_jobs(counts: Counts, open_: bool, cancel: bool, expected: str) -> None:
    assert outcome(counts, open_=open_, cancel_requested=cancel) == expected


def test_a_run_keeps_a_jobs_end_short_and_without_its_detail() -> None:
    record: dict[str, Any] = {
        "state": "failed",
        "source": "docker.io/library/nginx:1",
        "targets": ["reg/web:1"],
        "error": {"code": "NOT_FOUND", "message": "m" * 3000, "detail": "GET https://x/v2/ 404"},
        "progress": {"bytesMoved": 42},
        "finishedAt": "2026-01-01T00:00:00+00:00",
    }
    end = job_end("j1", record)
    assert end["code"] == "NOT_FOUND" and len(end["message"]) == 500 and end["bytes"] == 42
    assert "detail" not in end and end["digest"] is None
    ok = job_end("j2", {"state": "succeeded", "result": {"bytes": 7, "digest": "sha256:" + "a" * 64}})
    assert ok["bytes"] == 7 and ok["digest"] == "sha256:" + "a" * 64
    dry = job_end("j3", {"state": "succeeded", "result": {"dryRun": True, "digest": "sha256:" + "b" * 64}})
    assert dry["digest"] is None  # a dry run landed nothing


def _run(jobs: list[RunJob], state: str = "partial") -> Run:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return Run.model_validate(
        {
            "id": "8234567890123abcd1234",
            "kind": "mirror",
            "state": state,
            "trigger": {"type": "rule", "rule": "nightly", "requestedBy": "timer"},
            "counts": {"total": len(jobs), "succeeded": 1, "failed": len(jobs) - 1},
            "bytes": 99,
            "createdAt": at,
            "updatedAt": at + timedelta(seconds=5),
            "endedAt": at + timedelta(seconds=12.5),
            "jobs": jobs,
        }
    )


def test_the_end_event_is_a_cloudevent_with_the_runs_summary() -> None:
    digest = "sha256:" + "c" * 64
    jobs = [
        RunJob(id="j1", state="succeeded", source="s:1", targets=["r/a:1", "r/b:1"], digest=digest),
        RunJob(id="j2", state="failed", source="s:2", targets=["r/a:2"], code="NOT_FOUND", message="no such tag"),
    ]
    event = cloud_event(_run(jobs), "/ferry/test")
    assert {k: event[k] for k in ("specversion", "id", "source", "type", "subject")} == {
        "specversion": "1.0",
        "id": "8234567890123abcd1234.ended",
        "source": "/ferry/test",
        "type": "ferry.run.partial",
        "subject": "8234567890123abcd1234",
    }
    assert event["time"] == "2026-01-01T00:00:12.500000+00:00"
    data = event["data"]
    assert data["kind"] == "mirror" and data["trigger"]["rule"] == "nightly"
    assert data["counts"] == {"total": 2, "succeeded": 1, "failed": 1, "cancelled": 0, "upToDate": 0}
    assert data["bytes"] == 99 and data["durationSeconds"] == 12.5
    assert data["targets"] == [
        {"target": "r/a:1", "digest": digest, "jobId": "j1"},
        {"target": "r/b:1", "digest": digest, "jobId": "j1"},
    ]
    assert data["failed"] == [
        {
            "jobId": "j2",
            "state": "failed",
            "source": "s:2",
            "targets": ["r/a:2"],
            "code": "NOT_FOUND",
            "message": "no such tag",
        }
    ]
    assert json.loads(encode(event)) == event


def test_a_large_run_lists_the_first_entries_and_counts_the_rest() -> None:
    jobs = [RunJob(id=f"j{i}", state="failed", code="X", message="m" * 500) for i in range(MAX_LISTED + 5)]
    event = cloud_event(_run(jobs, "failed"), "/ferry")
    assert len(event["data"]["failed"]) == MAX_LISTED and event["data"]["omitted"] == {"failed": 5}
    assert len(encode(event)) < 1024 * 1024  # under Event Grid's limit for one event


def test_events_settings_name_every_destination() -> None:
    config = events(
        {
            "FERRY_WEBHOOK_OPS_URL": "https://hooks.example.com/ferry",
            "FERRY_WEBHOOK_OPS_SECRET": SECRET,
            "FERRY_WEBHOOK_OPS_EVENTS": "failures",
            "FERRY_WEBHOOK_AUDIT_URL": "https://audit.example.com/in",
            "FERRY_WEBHOOK_AUDIT_SECRET": SECRET,
            "FERRY_EVENTGRID_MAIN_ENDPOINT": "https://t.westeurope-1.eventgrid.azure.net/api/events",
            "FERRY_EVENT_SOURCE": "/ferry/prod",
            "FERRY_EVENT_DELIVERY_SECONDS": "60",
        }
    )
    kinds = {(d.kind, d.name): d.states for d in config.destinations}
    assert kinds == {("webhook", "ops"): FAILURES, ("webhook", "audit"): STATES, ("eventgrid", "main"): STATES}
    assert config.source == "/ferry/prod" and config.delivery_seconds == 60
    assert SECRET not in repr(config)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"FERRY_WEBHOOK_OPS_URL": "https://h/x"}, "FERRY_WEBHOOK_OPS_SECRET: missing"),
        ({"FERRY_WEBHOOK_OPS_SECRET": SECRET}, "FERRY_WEBHOOK_OPS_URL: missing"),
        (
            {"FERRY_WEBHOOK_OPS_URL": "https://h/x", "FERRY_WEBHOOK_OPS_SECRET": "hunter2"},
            "FERRY_WEBHOOK_OPS_SECRET: must",
        ),
        (
            {"FERRY_WEBHOOK_OPS_URL": "https://u:p@h/x", "FERRY_WEBHOOK_OPS_SECRET": SECRET},
            "FERRY_WEBHOOK_OPS_URL: must be an http(s) URL without credentials",
        ),
        (
            {
                "FERRY_WEBHOOK_OPS_URL": "https://h/x",
                "FERRY_WEBHOOK_OPS_SECRET": SECRET,
                "FERRY_WEBHOOK_OPS_EVENTS": "oops",
            },
            "FERRY_WEBHOOK_OPS_EVENTS: must be all, failures or a list of",
        ),
        ({"FERRY_EVENTGRID_X_EVENTS": "all"}, "FERRY_EVENTGRID_X_ENDPOINT: missing"),
        ({"FERRY_EVENT_DELIVERY_SECONDS": "-1"}, "FERRY_EVENT_DELIVERY_SECONDS: must be a positive number"),
    ],
)
def test_a_bad_events_setting_is_named(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        events(env)
    assert names in str(caught.value)
    assert "hunter2" not in str(caught.value)
