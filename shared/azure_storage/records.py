"""A job's record, typed: what the status table keeps for one import job, from its submission to
its end, and one attempt at it. The worker, the API, the CLI and the triggers read and write
these; the table's row format is :mod:`shared.azure_storage.store`'s business alone
(:func:`~shared.azure_storage.store.row_of`, :func:`~shared.azure_storage.store.record_of`).

:class:`JobChange` is a merge: only the fields it sets are written (a field set to None clears).
:class:`Statuses` is the store's protocol, as the service uses it.

The JSON documents a record keeps (the progress, the result, the verifications) are typed where
they are made (:class:`~shared.engine.progress.Snapshot`,
:class:`~shared.importing.result.ResultDocument`, :class:`~shared.verify.report.VerdictReport`)
and :data:`Kept` as they were written: read back whole, in their order, a row from older code
included.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, Field, GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

from shared.engine.progress import Snapshot
from shared.importing.request import PublicRequest
from shared.importing.result import ResultDocument
from shared.verify.report import VerdictReport

State = Literal["queued", "running", "succeeded", "failed", "cancelled"]
#: States a job does not leave.
FINISHED = ("succeeded", "failed", "cancelled")
#: How an attempt ended: ``abandoned`` when its worker stopped before it could say (killed, or
#: shut down mid-job: the message came back and a later attempt found this one still running);
#: ``waiting`` when the source's pull budget stopped it (the job waits; not a failure).
Outcome = Literal["running", "succeeded", "failed", "cancelled", "abandoned", "waiting"]


class _AsWritten:
    """A JSON object validated and serialized as the object it is (its keys, their order, their
    values), whatever TypedDict types it for the code that writes and reads it."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.dict_schema(core_schema.str_schema(), core_schema.any_schema())


_T = TypeVar("_T")
#: A JSON document a record keeps as it was written: typed by ``_T`` for the code, not re-shaped.
Kept = Annotated[_T, _AsWritten()]


def now() -> datetime:
    return datetime.now(UTC)


class WorkerInstance(BaseModel):
    """The worker instance an attempt ran on."""

    host: str
    pid: int


class Attempt(BaseModel):
    """One delivery of a job's message to a worker, and how it ended."""

    number: int
    startedAt: datetime
    finishedAt: datetime | None = None
    outcome: Outcome = "running"
    code: str | None = None
    message: str | None = None
    bytes: int = Field(0, description="Blob bytes this attempt sent to the target.")
    worker: WorkerInstance | None = None


class JobError(BaseModel):
    """Why a job failed: a stable code, the message, and what lies under it (the HTTP exchange)."""

    code: str
    message: str
    detail: str | None = None


class Requester(BaseModel):
    """Who asked for a job: ``kind`` (``api``, ``cli``, ``event``, ``mirror``, ...) and a name."""

    kind: str
    name: str | None = None


class Waiting(BaseModel):
    """Why a queued job waits, and until when (None: until something changes)."""

    reason: str
    until: datetime | None = None


class JobChange(BaseModel):
    """The fields of a record to merge; only those set are written (None clears a field)."""

    state: State | None = None
    createdAt: datetime | None = None
    updatedAt: datetime | None = None
    startedAt: datetime | None = None
    finishedAt: datetime | None = None
    attemptCount: int | None = None
    lastAttempt: Attempt | None = None
    retryOf: str | None = None
    cancelRequestedAt: datetime | None = None
    source: str | None = None
    targets: list[str] | None = None
    request: PublicRequest | None = None
    progress: Kept[Snapshot] | None = None
    result: Kept[ResultDocument] | None = None
    error: JobError | None = None
    run: str | None = None
    requestedBy: Requester | None = None
    verification: list[Kept[VerdictReport]] | None = None
    waiting: Waiting | None = None


class JobRecord(JobChange):
    """A job as the status table keeps it. ``request`` is the request without its secrets; ``run``,
    ``requestedBy``, ``verification`` and ``waiting`` are kept for what groups, asks for, checks
    or holds back a job."""

    id: str
    state: State = "queued"
    createdAt: datetime = Field(default_factory=now)
    updatedAt: datetime = Field(default_factory=now)
    attemptCount: int = 0
    source: str = ""
    targets: list[str] = Field(default_factory=list)

    def merged(self, change: JobChange) -> JobRecord:
        """The record with ``change`` merged in."""
        return self.model_copy(update={name: getattr(change, name) for name in change.model_fields_set})


class Statuses(Protocol):
    """Job records, their attempts, their kept messages, and the claims on idempotency keys and
    tags (:class:`~shared.azure_storage.store.StatusStore`)."""

    def insert(self, record: JobRecord) -> None: ...
    def get(self, job_id: str) -> JobRecord | None: ...
    def update(self, job_id: str, change: JobChange) -> None: ...
    def transition(self, job_id: str, change: Callable[[JobRecord], JobChange | None]) -> JobRecord | None: ...
    def record_attempt(self, job_id: str, attempt: Attempt) -> None: ...
    def attempts(self, job_id: str) -> list[Attempt]: ...
    def keep_message(self, job_id: str, content: str) -> None: ...
    def message(self, job_id: str) -> str | None: ...
    def list(self, state: str | None, limit: int, continuation: str | None) -> tuple[list[JobRecord], str | None]: ...
    def claim_idempotency_key(self, key: str, job_id: str, fingerprint: str) -> tuple[str, str]: ...
    def claim_tag(self, tag: str, job_id: str) -> None: ...
    def newest_for_tag(self, tag: str) -> str | None: ...
