"""A run: one piece of work that makes jobs (a batch from the API, a single import, a mirror pass
of one rule, a promotion for one push event, a retry of a run's failures), with one outcome.

A run's state follows from its jobs' states, never from anything else (:func:`outcome`):

- ``running`` while the run is still open (its creator may add jobs) or any job has not ended;
- then ``cancelled`` when a cancel was asked for the run (or every job that ended was cancelled);
- ``succeeded`` when every job succeeded (a run of no jobs succeeds: nothing was left to do);
- ``failed`` when none succeeded; ``partial`` when some did and some did not.

The counts are kept on the run's record and changed in the same table transaction as the job's
row in the run (:mod:`shared.azure_storage.runs`), so each job is counted once, however many
workers end jobs at once and however often a job's end is reported again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

RunKind = Literal["import", "batch", "mirror", "promotion", "retry"]
RunState = Literal["running", "succeeded", "failed", "partial", "cancelled"]
#: The states a run does not leave.
ENDED: tuple[RunState, ...] = ("succeeded", "failed", "partial", "cancelled")
#: A job's states once it has ended, as a run counts them.
JobEnd = Literal["succeeded", "failed", "cancelled"]
#: Longest message of a failed job kept in the run and its event.
MESSAGE_CHARS = 500


class Counts(BaseModel):
    """How many jobs the run has, and how many ended each way. ``upToDate``: what its creator
    found already done and made no job for (a mirror pass's tags already at the source's digest)."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    upToDate: int = 0

    @property
    def ended(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def running(self) -> int:
        """Jobs queued or running."""
        return self.total - self.ended

    def plus(self, state: JobEnd) -> Counts:
        return self.model_copy(update={state: getattr(self, state) + 1})


def outcome(counts: Counts, *, open_: bool, cancel_requested: bool) -> RunState:
    """The run's state from its jobs' (see the module's docstring)."""
    if open_ or counts.running > 0:
        return "running"
    if counts.cancelled and (cancel_requested or not (counts.succeeded or counts.failed)):
        return "cancelled"
    if counts.failed == 0 and counts.cancelled == 0:
        return "succeeded"
    return "failed" if counts.succeeded == 0 else "partial"


class Trigger(BaseModel):
    """What made the run, and who asked for it."""

    type: Literal["api", "rule", "event", "retry", "cli"] = "api"
    rule: str | None = Field(None, description="The mirror or promotion rule's name.")
    eventId: str | None = Field(None, description="The push event's id (promotions).")
    requestedBy: str | None = Field(
        None,
        description="Who asked: the Easy Auth principal's name, 'function key' when the host checked a key, "
        "'timer' or 'event grid' for triggers.",
    )


class Landed(BaseModel):
    """A target a job moved, and the digest it now points at."""

    target: str
    digest: str
    jobId: str


class RunJob(BaseModel):
    """A job of the run, as the run keeps it (its state as of its last report to the run)."""

    id: str
    state: str = "queued"
    source: str = ""
    targets: list[str] = Field(default_factory=list)
    code: str | None = None
    message: str | None = None
    bytes: int = 0
    digest: str | None = None
    endedAt: datetime | None = None


class DestinationOutcome(BaseModel):
    """How the run's event went to one destination."""

    state: Literal["pending", "delivered", "undelivered", "skipped"] = "pending"
    attempts: int = 0
    status: int | None = Field(None, description="The last HTTP status answered.")
    error: str | None = Field(None, description="Why the last attempt failed.")
    at: datetime | None = None


class EventRecord(BaseModel):
    """The run's end event: its id, and how delivery went to each configured destination."""

    id: str
    type: str
    state: Literal["pending", "queued", "delivering", "delivered", "undelivered", "none"] = "pending"
    destinations: dict[str, DestinationOutcome] = Field(default_factory=dict)


class Run(BaseModel):
    """``GET /api/runs/{id}``: the run, its counts, what landed where, and its jobs."""

    id: str
    kind: RunKind
    state: RunState
    trigger: Trigger = Field(default_factory=Trigger)
    retryOf: str | None = Field(None, description="The run this one retries (POST /api/runs/{id}/retry).")
    counts: Counts = Field(default_factory=Counts)
    bytes: int = Field(0, description="Blob bytes the run's jobs sent to their targets.")
    createdAt: datetime
    updatedAt: datetime
    endedAt: datetime | None = None
    cancelRequestedAt: datetime | None = None
    event: EventRecord | None = None
    targets: list[Landed] = Field(default_factory=list, description="Each target that moved and its digest.")
    jobs: list[RunJob] = Field(default_factory=list)


class StoredJob(RunJob):
    """A job's row in its run: ``n`` its place (jobs made in one millisecond have ids in no order)
    and whether the run has ``counted`` its end."""

    n: int = 0
    counted: bool = False


class StoredEvent(EventRecord):
    """The run's event as its record keeps it: also who is delivering it, and until when."""

    claimedBy: str | None = None
    claimedUntil: datetime | None = None


class RunChange(BaseModel):
    """The fields of a run's record to merge; only those set are written."""

    kind: RunKind | None = None
    state: RunState | None = None
    trigger: Trigger | None = None
    retryOf: str | None = None
    open: bool | None = None
    counts: Counts | None = None
    bytes: int | None = None
    createdAt: datetime | None = None
    updatedAt: datetime | None = None
    endedAt: datetime | None = None
    cancelRequestedAt: datetime | None = None
    event: StoredEvent | None = None


class RunRecord(RunChange):
    """A run as the status table keeps it (the row format is :mod:`shared.azure_storage.runrows`')."""

    id: str
    kind: RunKind
    state: RunState = "running"
    trigger: Trigger = Field(default_factory=Trigger)
    open: bool = False
    counts: Counts = Field(default_factory=Counts)
    bytes: int = 0
    createdAt: datetime
    updatedAt: datetime

    def merged(self, change: RunChange) -> RunRecord:
        """The record with ``change`` merged in."""
        return self.model_copy(update={name: getattr(change, name) for name in change.model_fields_set})

    def view(self, jobs: list[StoredJob] | None = None) -> Run:
        """The API's view of the run (and its jobs)."""
        members = [RunJob.model_validate(j.model_dump(exclude={"n", "counted"})) for j in jobs or []]
        event = None if self.event is None else EventRecord.model_validate(self.event.model_dump())
        doc = self.model_dump(exclude={"open", "event"})
        return Run.model_validate({**doc, "event": event, "jobs": members, "targets": landed(members)})


def landed(jobs: list[RunJob]) -> list[Landed]:
    """Each target a succeeded job moved, with the digest it landed."""
    return [
        Landed(target=t, digest=j.digest, jobId=j.id)
        for j in jobs
        if j.state == "succeeded" and j.digest
        for t in j.targets
    ]


def job_end(job_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """What a run keeps of a job that has ended, from the job's status record: its state, code
    and message (cut to :data:`MESSAGE_CHARS`), bytes and the digest that landed."""
    result = record.get("result") or {}
    error = record.get("error") or {}
    progress = record.get("progress") or {}
    moved = result.get("bytes") if isinstance(result, dict) else None
    if moved is None and isinstance(progress, dict):
        moved = progress.get("bytesMoved")
    message = error.get("message") if isinstance(error, dict) else None
    return {
        "state": record.get("state"),
        "source": str(record.get("source") or ""),
        "targets": [str(t) for t in record.get("targets") or []],
        "code": error.get("code") if isinstance(error, dict) else None,
        "message": message[:MESSAGE_CHARS] if isinstance(message, str) else None,
        "bytes": int(moved or 0),
        "digest": result.get("digest") if isinstance(result, dict) and not result.get("dryRun") else None,
        "endedAt": record.get("finishedAt") or record.get("updatedAt"),
    }
