"""Looking at and stopping a job: ``GET`` with every attempt, and cancel. (A retry is a new
submission: :meth:`~shared.service.submit.Submitter.resubmit`.)

Cancel, as Harbor's "stop" of an execution: a ``queued`` job becomes ``cancelled`` at once (its
message is consumed unrun when it is next delivered); a ``running`` one is asked to stop
(``cancelRequestedAt``), and its worker, which looks every second, stops it before any tag moves
and records ``cancelled``. Both changes are made under the record's ETag, so a worker starting
the job at the same moment sees one or the other, never neither.
"""

from __future__ import annotations

from shared.azure_storage.records import JobChange, JobRecord, Statuses, now
from shared.errors import JobStateError, UnknownJobError
from shared.service.models import ImportStatus, status_of
from shared.service.submit import job_record


def show(statuses: Statuses, job_id: str) -> ImportStatus:
    """The job with every attempt it made."""
    record = job_record(statuses, job_id)
    return status_of(record, statuses.attempts(job_id) if record.attemptCount else [])


def cancel(statuses: Statuses, job_id: str) -> ImportStatus:
    """Cancel a queued job, or ask a running one to stop; idempotent. A job that succeeded or
    failed raises :class:`JobStateError` with its state."""
    at = now()

    def change(current: JobRecord) -> JobChange | None:
        if current.state == "queued":
            return JobChange(state="cancelled", cancelRequestedAt=at, finishedAt=at, updatedAt=at)
        if current.state == "running" and not current.cancelRequestedAt:
            return JobChange(cancelRequestedAt=at, updatedAt=at)
        return None

    record = statuses.transition(job_id, change) if job_id.isalnum() else None
    if record is None:
        raise UnknownJobError(f"no import job {job_id!r}")
    if record.state in ("succeeded", "failed"):
        raise JobStateError(
            f"job {job_id} already {record.state}: only a queued or running job can be cancelled", state=record.state
        )
    return status_of(record)
