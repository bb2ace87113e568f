"""What the API does with runs: submit a batch as one run, show and list runs, cancel one, retry
its failures.

- ``POST /api/runs``: every item is checked before anything is written (a bad one is refused with
  its index, nothing enqueued); one ``Idempotency-Key`` binds the whole batch to one run; the run
  is written with all its jobs before the first is enqueued, so no job can end it early.
- ``POST /api/runs/{id}/cancel``: the run records the request (its state becomes ``cancelled``
  when its jobs have ended), and each job not yet ended is cancelled as ``POST
  /api/imports/{id}/cancel`` does: a queued one at once, a running one at its next safe point.
- ``POST /api/runs/{id}/retry``: a new run (``retryOf`` the old one) of only the jobs that failed
  or were cancelled, each retried as ``POST /api/imports/{id}/retry`` does.
"""

from __future__ import annotations

import hashlib
import json
import logging

from shared.azure_storage.records import FINISHED, Requester, Statuses
from shared.errors import BadRequest, IdempotencyKeyReusedError, JobStateError, UnknownJobError
from shared.importing.request import ImportRequest
from shared.runs.model import ENDED, Run, RunJob
from shared.service import control
from shared.service.models import RetriedJob
from shared.service.runs import Runs, RunSlot, trigger
from shared.service.submit import Submitter

log = logging.getLogger(__name__)

#: Imports in one ``POST /api/runs``.
MAX_BATCH = 500


def submit_batch(
    submitter: Submitter,
    runs: Runs,
    requests: list[ImportRequest],
    key: str | None = None,
    requested_by: Requester | None = None,
) -> tuple[str, bool]:
    """The batch as one run; returns its id and whether it is new (a repeated key: the first)."""
    for index, request in enumerate(requests):
        try:
            submitter.check(request)
        except BadRequest as exc:
            raise BadRequest(f"imports[{index}].{exc.field}", exc.reason) from None
    run_id = submitter.new_id()
    if key:
        fingerprint = hashlib.sha256(
            json.dumps([r.model_dump(mode="json") for r in requests], sort_keys=True, default=str).encode()
        ).hexdigest()
        first, recorded = submitter.statuses.claim_idempotency_key(f"run:{key}", run_id, fingerprint)
        if recorded and recorded != fingerprint:
            raise IdempotencyKeyReusedError(
                f"Idempotency-Key {key[:64]!r} was used for another batch (run {first}): a new batch needs a new key"
            )
        if first != run_id and runs.records.get(first) is not None:
            return first, False
        run_id = first  # new, or claimed but never written: write it now
    jobs = [(r, submitter.record(r, submitter.new_id(), requested_by=requested_by, run=run_id)) for r in requests]
    members = [RunJob(id=j.id, source=j.source, targets=j.targets) for _, j in jobs]
    runs.open(run_id, "batch", trigger("api", requested_by), members)
    for request, job in jobs:
        try:
            submitter.enqueue(request, job, submitter.sealer(request)(job.id))
        except Exception:  # recorded failed (ENQUEUE_FAILED) and counted; the rest still go
            log.exception("run %s: job %s could not be enqueued", run_id, job.id)
    return run_id, True


def show(runs: Runs, run_id: str) -> Run:
    found = runs.look(run_id) if run_id.isalnum() else None
    if found is None:
        raise UnknownJobError(f"no run {run_id!r}")
    return found


def listing(
    runs: Runs, kind: str | None, state: str | None, limit: int, continuation: str | None
) -> tuple[list[Run], str | None]:
    """Runs newest first, without their jobs."""
    items, token = runs.records.list(kind, state, limit, continuation)
    return [item.view() for item in items], token


def count(runs: Runs, statuses: Statuses, run_id: str, job_id: str) -> None:
    """Count a job that ended outside a worker (cancelled while queued) into its run."""
    if (record := statuses.get(job_id)) is not None and record.state in FINISHED:
        runs.job_ended(run_id, job_id, record)


def cancel(submitter: Submitter, runs: Runs, run_id: str) -> Run:
    """Ask the run to stop; each job not yet ended is cancelled (``JobStateError`` for a run
    that has ended)."""
    run = show(runs, run_id)
    if run.state in ENDED:
        raise JobStateError(f"run {run_id} already {run.state}: only a running run can be cancelled", state=run.state)
    runs.records.request_cancel(run_id)
    for job in run.jobs:
        if job.state in ("succeeded", "failed", "cancelled"):
            continue
        try:
            status = control.cancel(submitter.statuses, job.id)
        except (JobStateError, UnknownJobError):
            continue  # it ended meanwhile: its worker counts it
        if status.state == "cancelled":  # cancelled while queued: no worker will say so soon
            count(runs, submitter.statuses, run_id, job.id)
    return show(runs, run_id)


def retry(
    submitter: Submitter, runs: Runs, run_id: str, requested_by: Requester | None = None
) -> tuple[str, list[RetriedJob]]:
    """A new run of the run's failed and cancelled jobs; returns its id and what each came to."""
    run = show(runs, run_id)
    if run.state not in ENDED:
        raise JobStateError(f"run {run_id} is {run.state}: retry it when it has ended", state=run.state)
    failed = [j for j in run.jobs if j.state in ("failed", "cancelled")]
    if not failed:
        raise JobStateError(f"run {run_id} {run.state}: it has no failed or cancelled job to retry", state=run.state)
    slot = RunSlot(runs, submitter.new_id, "retry", trigger("retry", requested_by), retry_of=run_id)
    notes: list[RetriedJob] = []
    for job in failed:
        try:
            status, _ = submitter.resubmit(job.id, requested_by=requested_by, run=slot)
            notes.append(RetriedJob(retryOf=job.id, id=status.id))
        except (JobStateError, BadRequest) as exc:
            notes.append(RetriedJob(retryOf=job.id, error=str(exc)))
    slot.seal()
    if slot.id is None or not slot.made:
        raise JobStateError(f"run {run_id}: none of its failed jobs could be retried", state=run.state)
    return slot.id, notes
