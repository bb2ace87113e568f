"""The service's documents at its edges: the queue message (:class:`ImportJob`), the API's view
of a job (:class:`ImportStatus`, made from its :class:`~shared.azure_storage.records.JobRecord`)
and its other answers (:class:`Accepted`, :class:`JobList`, :class:`RunAccepted`,
:class:`RunList`), which the API sends and its client (:mod:`shared.service.client`) reads. The
request itself is :class:`shared.importing.request.ImportRequest`; a run is
:class:`shared.runs.model.Run`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.azure_storage.records import Attempt, JobRecord, Kept, Requester, State, Waiting, now
from shared.engine.progress import Snapshot
from shared.importing.request import PublicRequest
from shared.importing.result import ResultDocument
from shared.importing.spec import ImportSpec
from shared.runs.model import Run


class ImportJob(BaseModel):
    """The queue message. Inline credentials travel only sealed (``sealed``), never in clear."""

    model_config = ConfigDict(extra="forbid")
    id: str
    request: PublicRequest
    sealed: str | None = None
    createdAt: datetime = Field(default_factory=now)
    #: Set when a wait for the pull budget put the job back as a new message
    #: (:mod:`shared.service.waiting`): attempts recorded, and failed deliveries, before it.
    attemptsBefore: int = Field(0, ge=0, exclude_if=lambda v: v == 0)
    failuresBefore: int = Field(0, ge=0, exclude_if=lambda v: v == 0)
    #: The W3C trace context (``traceparent``, ``tracestate``) of what made the job, so the job's
    #: trace continues it; absent when telemetry is off (the message is then as it always was).
    traceContext: dict[str, str] | None = Field(None, exclude_if=lambda v: v is None)


class ImportStatus(BaseModel):
    """``GET /api/imports/{id}``: a job's state, as the status table records it, with every
    attempt (``GET /api/imports`` shows the last one only)."""

    id: str
    state: State
    createdAt: datetime
    updatedAt: datetime
    startedAt: datetime | None = None
    finishedAt: datetime | None = None
    attemptCount: int = 0
    attempts: list[Attempt] = Field(default_factory=list)
    retryOf: str | None = Field(None, description="The job this one retries (POST .../retry).")
    cancelRequestedAt: datetime | None = None
    source: str = ""
    targets: list[str] = Field(default_factory=list)
    progress: Kept[Snapshot] | None = None
    result: Kept[ResultDocument] | None = None
    error: dict[str, str] | None = None
    run: str | None = Field(None, description="The run this job belongs to (GET /api/runs/{id}).")
    requestedBy: Requester | None = Field(
        None, description="Who asked: the API's caller (Easy Auth principal or function key), a rule, an event."
    )
    #: Shown only while the job waits: a job that never waited reads as it always did.
    waiting: Waiting | None = Field(
        None, description="Why a queued job waits, and until when (the pull budget).", exclude_if=lambda v: v is None
    )


class Accepted(BaseModel):
    """``202`` for ``POST /api/imports`` and ``POST .../retry``: the job, where to follow it, and
    whether this request made it (``false``: an ``Idempotency-Key`` seen before)."""

    id: str
    state: str
    location: str
    created: bool


class JobList(BaseModel):
    """``GET /api/imports``: jobs newest first, each with its last attempt; ``next`` continues."""

    items: list[ImportStatus]
    next: str | None = None


class RetriedJob(BaseModel):
    """A job of a run being retried: the new job (``id``), or why it was not retried (``error``)."""

    retryOf: str
    id: str | None = Field(None, exclude_if=lambda v: v is None)
    error: str | None = Field(None, exclude_if=lambda v: v is None)


class RunAccepted(BaseModel):
    """``202`` for ``POST /api/runs`` and ``POST /api/runs/{id}/retry``."""

    id: str
    state: str
    location: str
    created: bool
    jobs: list[RetriedJob] = Field(default_factory=list, description="A retry: each job retried, or why not.")


class RunList(BaseModel):
    """``GET /api/runs``: runs newest first, without their jobs; ``next`` continues."""

    items: list[Run]
    next: str | None = None


def status_of(record: JobRecord, attempts: list[Attempt] | None = None) -> ImportStatus:
    """The API's view of a job's record: with ``attempts`` (every one, for ``GET`` on one job),
    else the last one the record keeps."""
    shown = attempts if attempts is not None else [record.lastAttempt] if record.lastAttempt else []
    error = record.error.model_dump(exclude_none=True) if record.error else None
    return ImportStatus(**record.model_dump(include=_RECORDED), attempts=shown, error=error)


#: What the API shows of a record as it is (the attempts and the error are shaped for it).
_RECORDED = set(ImportStatus.model_fields) - {"attempts", "error"}


def targets_of(spec: ImportSpec) -> list[str]:
    return [f"{spec.target_registry}/{t}" for t in spec.targets]
