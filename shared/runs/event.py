"""The one event a run publishes when it ends: a CloudEvents 1.0 event (cloudevents/spec
``spec.md``: ``id``, ``source``, ``specversion``, ``type`` required; ``subject``, ``time``,
``datacontenttype`` optional), in the JSON format (``json-format.md``) that the HTTP binding's
structured mode (``application/cloudevents+json``) and batches carry.

- ``type``: ``ferry.run.succeeded`` | ``ferry.run.partial`` | ``ferry.run.failed`` | ``ferry.run.cancelled``
- ``source``: the service (``FERRY_EVENT_SOURCE``); ``subject``: the run's id; ``id``: the same on
  every delivery of this event (``<run id>.ended``), so a receiver can drop a repeat.
- ``data``: :class:`RunSummary` (documented in docs/events.md). Lists are bounded so that an event
  stays far under Event Grid's 1 MB: at most :data:`MAX_LISTED` targets and failed jobs, the rest
  counted in ``omitted``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.runs.model import Counts, Landed, Run, RunKind, RunState, Trigger, landed

SPECVERSION = "1.0"
TYPE_PREFIX = "ferry.run."
#: Targets and failed jobs listed in one event; a larger run lists the first ones.
MAX_LISTED = 1000


class FailedJob(BaseModel):
    """A job of the run that did not succeed: why, in its error's code and message."""

    jobId: str
    state: str
    source: str
    targets: list[str]
    code: str | None = None
    message: str | None = None


class RunSummary(BaseModel):
    """The event's ``data``."""

    runId: str
    kind: RunKind
    state: RunState
    trigger: Trigger
    retryOf: str | None = None
    counts: Counts
    bytes: int
    createdAt: datetime
    endedAt: datetime | None
    durationSeconds: float = Field(description="From the run's creation to its last job's end.")
    targets: list[Landed] = Field(description="Each target that moved, with the digest that landed.")
    failed: list[FailedJob] = Field(description="Each job that failed or was cancelled, with its code and message.")
    omitted: dict[str, int] = Field(default_factory=dict, description="Entries left out of a list over MAX_LISTED.")


#: The run's own fields the summary carries as they are.
_AS_THEY_ARE = ("kind", "state", "trigger", "retryOf", "counts", "bytes", "createdAt", "endedAt")


def event_id(run_id: str) -> str:
    return f"{run_id}.ended"


def event_type(state: str) -> str:
    return TYPE_PREFIX + state


def summary(run: Run) -> RunSummary:
    """The run's summary, as its end event carries it."""
    moved = landed(run.jobs)
    failed = [
        FailedJob(jobId=j.id, state=j.state, source=j.source, targets=j.targets, code=j.code, message=j.message)
        for j in run.jobs
        if j.state in ("failed", "cancelled")
    ]
    omitted = {name: len(items) - MAX_LISTED for name, items in (("targets", moved), ("failed", failed))}
    ended = run.endedAt or run.updatedAt
    return RunSummary(
        runId=run.id,
        **{name: getattr(run, name) for name in _AS_THEY_ARE},
        durationSeconds=round(max(0.0, (ended - run.createdAt).total_seconds()), 3),
        targets=moved[:MAX_LISTED],
        failed=failed[:MAX_LISTED],
        omitted={k: v for k, v in omitted.items() if v > 0},
    )


def cloud_event(run: Run, source: str) -> dict[str, Any]:
    """The run's end event as a CloudEvents 1.0 JSON document."""
    return {
        "specversion": SPECVERSION,
        "id": event_id(run.id),
        "source": source,
        "type": event_type(run.state),
        "subject": run.id,
        "time": (run.endedAt or run.updatedAt).isoformat(),
        "datacontenttype": "application/json",
        "data": summary(run).model_dump(mode="json"),
    }


def encode(event: dict[str, Any]) -> bytes:
    """The bytes sent (and signed): compact JSON, UTF-8."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
