"""Running a job: handle a queue message (``running`` → ``succeeded`` | ``failed`` |
``cancelled``), as the queue trigger and the local worker both do. Submitting is
:mod:`shared.service.submit`; one attempt's record and its cancel watch, :mod:`.attempts`.

Each delivery is an attempt, recorded with its start, end, outcome, bytes and worker. A job
cancelled while queued is consumed unrun; one cancelled while running stops at the engine's next
safe point, before any tag moves, and its message is consumed: a cancelled job never comes back.

Retry policy, decided here only: a retryable failure (429, 5xx, connection) raises
:class:`RetryLater`, so the message comes back; on its last delivery (``max_dequeue_count``) the
job is recorded ``failed`` with the last error and the message goes to the poison queue. A
permanent failure (bad reference, tag exists, not found, denied) is recorded ``failed`` at once
and the message consumed. A redelivered message of a finished job changes nothing.

Inline credentials are opened (:func:`~shared.service.submit.unseal`) only in the worker's memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from shared import stopping, telemetry
from shared.azure_storage.records import FINISHED, Attempt, JobChange, JobError, JobRecord, Statuses, now
from shared.credentials import Anonymous, Credential
from shared.credentials.resolver import Resolver
from shared.engine.progress import Snapshot
from shared.errors import FerryError, PullBudgetSpent, UnexpectedError
from shared.importing.engines import engine_for
from shared.importing.launch import Access, Wiring, launch
from shared.importing.request import ImportRequest
from shared.importing.result import ImportResult, ResultDocument
from shared.importing.spec import TargetRef
from shared.logs import job_fields
from shared.service.attempts import JobCancelled, ProgressWriter, Watch, begin, new_attempt, not_run
from shared.service.models import ImportJob
from shared.service.runs import Runs
from shared.service.submit import open_sealed
from shared.service.waiting import Waits, budget_name
from shared.settings import Settings
from shared.text import clean, shorten
from shared.verify.load import policy_named

log = logging.getLogger(__name__)

#: Seconds between progress writes to the status table.
PROGRESS_INTERVAL = 2.0


def _observed(attempt: Attempt, result: ResultDocument | None = None, outcome: str | None = None) -> None:
    """The attempt's end on the job's span and in the metrics (nothing when telemetry is off)."""
    outcome = outcome or attempt.outcome
    seconds = (now() - attempt.startedAt).total_seconds()
    telemetry.ended(telemetry.current(), outcome, result, attempt.code)
    nbytes, engine = int(attempt.bytes or 0), (result or {}).get("engine")
    telemetry.record_job(outcome, seconds, attempt.code, nbytes, engine)


class RetryLater(Exception):
    """The job failed in a way worth another delivery; the message must not be consumed."""


class Worker:
    """Runs one queue message. The Functions queue trigger and ``python -m shared.cli worker``
    both call :meth:`handle`."""

    def __init__(
        self,
        settings: Settings,
        statuses: Statuses,
        target_credential: Callable[[str], Credential] | None = None,
        identity: Callable[[], Any] | None = None,
        runs: Runs | None = None,
        waits: Waits | None = None,
    ) -> None:
        self.settings = settings
        self.statuses = statuses
        #: The shared pull budget and how a job waits for it (None: no budget is kept).
        self.waits = waits
        self._target_credential = target_credential
        #: Each job's end is counted into its run (:mod:`shared.service.runs`).
        self.runs = runs
        #: The record of each job in hand as it started (its run, source, targets).
        self._started: dict[str, JobRecord] = {}
        if identity is None and settings.client_id:
            client_id = settings.client_id

            def identity() -> Any:
                from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - only in Azure

                return DefaultAzureCredential(managed_identity_client_id=client_id)

        self.credentials = Resolver(settings.credential, identity)

    @property
    def wiring(self) -> Wiring:
        """How this worker reaches registries and ARM, as its settings now say."""
        settings = self.settings
        return Wiring(
            settings.transport,
            settings.concurrency,
            lambda: self.credentials.identity().source,
            settings.arm_endpoint,
            settings.arm_timeout,
            self.waits.budget if self.waits is not None else None,
        )

    def source_credential(self, job: ImportJob, request: ImportRequest, registry: str) -> Credential:
        """Sealed inline credentials, else the named one, else the identity for an ACR. Asked for
        with no registry (the ARM engine's body), only sealed or named credentials: else anonymous."""
        given = open_sealed(self.settings.credential_key, job.id, job.sealed) if job.sealed else None
        # the request's own registry: one named only inside sourceImage gets no identity
        where = (request.source.registry or "") if registry else ""
        return self.credentials(where, name=request.source.credential, given=given)

    def credential_for(self, registry: str, name: str | None) -> Credential:
        """A named credential, else the target's (the triggers')."""
        return self.credentials(registry, name=name) if name else self.target_credential(registry)

    def _source_for_budget(self, job: ImportJob) -> Credential:
        """The source credential, to name the budget by; anonymous when it cannot be had (the
        job then fails on it as it would)."""
        try:
            return self.source_credential(job, job.request, job.request.source.registry or "")
        except FerryError:
            return Anonymous()

    def target_credential(self, registry: str) -> Credential:
        if self._target_credential is not None:
            return self._target_credential(registry)
        return self.credentials(registry)

    async def handle(self, content: str, dequeue_count: int) -> None:
        """Run the job in ``content``. Returns when the message may be consumed; raises
        :class:`RetryLater` when it must come back."""
        try:
            job = ImportJob.model_validate_json(content)
        except ValidationError as exc:
            log.error("dropping a malformed queue message: %s", exc.errors(include_input=False, include_url=False)[:3])
            return
        attributes = {"ferry.attempt": dequeue_count, "messaging.destination.name": self.settings.queue_name}
        with telemetry.job_span(job.id, job.traceContext, attributes):  # continues the trace that made the job
            await self._handle(job, dequeue_count)

    async def _handle(self, job: ImportJob, dequeue_count: int) -> None:
        number, failures = job.attemptsBefore + dequeue_count, job.failuresBefore + dequeue_count
        attempt, earlier, waiting_job = new_attempt(number), list[Attempt](), job
        if (admitted := await self._admitted(job, dequeue_count, attempt)) is None:
            return
        job, request = admitted, admitted.request
        record = await asyncio.to_thread(
            self.statuses.transition, job.id, lambda current: begin(current, attempt, earlier)
        )
        if record is None or record.state != "running":  # only this delivery's change makes it running
            telemetry.ended(telemetry.current(), "not run")
            not_run(job.id, record)
            if record is not None and record.state in FINISHED:  # a worker may have died before counting it
                await self._count(record)
            return
        telemetry.current().set_attributes({"ferry.source": record.source, "ferry.targets": record.targets})
        if record.run:
            self._started[job.id] = record
        fields = job_fields(job.id, record.source, record.targets)
        log.info("job %s started (attempt %d): %s", job.id, number, fields["source"], extra=fields)
        await self._attempt_rows(job.id, attempt, earlier)
        progress = ProgressWriter(self.statuses, job.id)
        try:
            result = await self._watched(job, request, progress)
        except JobCancelled as cancelled:
            await self._cancelled(job.id, attempt, progress, cancelled.left)
            return
        except PullBudgetSpent as spent:
            await self._wait_again(waiting_job, dequeue_count, spent, attempt, progress)
            return
        except FerryError as exc:
            await self._failed(job.id, exc, attempt, progress, failures)
            return
        except Exception as exc:  # a bug or an unexpected library error: retry, then poison
            log.exception("job %s failed unexpectedly", job.id)
            await self._failed(job.id, UnexpectedError(type(exc).__name__), attempt, progress, failures)
            return
        result.credential = request.source.credential if job is not waiting_job else None  # one of several
        await self._succeeded(job.id, result, progress.latest, attempt, fields)

    async def _wait_again(
        self, job: ImportJob, dequeue_count: int, spent: PullBudgetSpent, attempt: Attempt, progress: ProgressWriter
    ) -> None:
        """A pull the budget refused mid-job: the job waits (what it copied stays; not a failure)."""
        await progress.aclose()
        assert self.waits is not None  # only a budget raises it
        await self.waits.wait(job, dequeue_count, spent, attempt)

    async def _admitted(self, job: ImportJob, dequeue_count: int, attempt: Attempt) -> ImportJob | None:
        """The job as it may start now (one credential chosen when it names several), or None when
        it waits for the pull budget (recorded, and back on the queue)."""
        if self.waits is None:
            return job
        admitted, spent = await self.waits.admit(job, self._source_for_budget(job))
        if spent is None:
            return admitted
        await self.waits.wait(job, dequeue_count, spent, attempt)
        return None

    async def _attempt_rows(self, job_id: str, attempt: Attempt, earlier: list[Attempt]) -> None:
        """This attempt's row, and the one an earlier attempt left ``running`` marked abandoned."""
        await asyncio.gather(*(asyncio.to_thread(self.statuses.record_attempt, job_id, a) for a in [attempt, *earlier]))

    async def _ended(self, job_id: str, attempt: Attempt, fields: JobChange) -> str:
        """Record the job's new state and how this attempt ended, in the job and in its row;
        returns the state recorded. Back to ``queued`` is made under the record's ETag: a cancel
        asked for meanwhile makes it ``cancelled`` instead (the message is then consumed)."""
        at = now()
        attempt.finishedAt = at
        fields.updatedAt, fields.lastAttempt = at, attempt

        def change(current: JobRecord | None) -> JobChange:
            if fields.state == "queued" and current is not None and current.cancelRequestedAt:
                return fields.model_copy(update={"state": "cancelled", "finishedAt": at})
            return fields.model_copy(update={"finishedAt": at}) if fields.state in FINISHED else fields

        if fields.state == "queued":
            write = asyncio.to_thread(self.statuses.transition, job_id, change)
        else:  # nothing else changes a running job's state: a plain merge
            write = asyncio.to_thread(self.statuses.update, job_id, change(None))
        record, _ = await asyncio.gather(write, asyncio.to_thread(self.statuses.record_attempt, job_id, attempt))
        state = str(record.state) if record else str(fields.state)
        started = self._started.pop(job_id, None)
        if state in FINISHED and started is not None:  # the record as written: no read needed
            await self._count(record or started.merged(change(None)), started.run)
        return state

    async def _count(self, record: JobRecord | None, run: str | None = None) -> None:
        """Count the job's end into its run; a failure to is logged, and repaired by the next
        look at the run or the next delivery of the job's message."""
        run = run or (record.run if record else None)
        if self.runs is None or record is None or not run:
            return
        try:
            await asyncio.to_thread(self.runs.job_ended, run, record.id, record)
        except Exception:
            log.exception("job %s: could not count its end into run %s", record.id, run)

    async def _succeeded(
        self, job_id: str, result: ImportResult, final: Snapshot | None, attempt: Attempt, fields: dict[str, str]
    ) -> None:
        attempt.outcome, attempt.bytes = "succeeded", int(result.bytes or 0)
        change = JobChange(state="succeeded", result=result.document(), progress=final, error=None)
        if result.verification is not None:  # what verified what, kept with the job (docs/signing.md)
            change.verification = [result.verification]
        await self._ended(job_id, attempt, change)
        _observed(attempt, change.result)
        log.info("job %s succeeded: %s", job_id, result.summary(), extra=fields)

    async def _cancelled(self, job_id: str, attempt: Attempt, progress: ProgressWriter, left: list[str]) -> None:
        """Stopped on request: open uploads were cancelled on the way out (``left``: those the
        target would not delete, said in the record) and no tag moved."""
        await progress.aclose()
        copied = progress.now()
        attempt.outcome, attempt.bytes = "cancelled", copied["bytesMoved"] if copied else 0
        change = JobChange(state="cancelled", progress=copied)
        if left:
            attempt.message = f"the target would not delete {len(left)} upload session(s): {', '.join(left)}"
            change.result = {"uploadSessionsLeft": left}
        await self._ended(job_id, attempt, change)
        _observed(attempt)
        log.info("job %s cancelled: no tag moved", job_id, extra=job_fields(job_id))

    async def _failed(
        self, job_id: str, exc: FerryError, attempt: Attempt, progress: ProgressWriter, failures: int
    ) -> None:
        """``failures``: deliveries that failed, this one included (waits for the budget are not)."""
        await progress.aclose()
        # detail: what lies under the message (the HTTP exchange)
        error = JobError(code=exc.code, message=str(exc), detail=clean(exc.detail) if exc.detail else None)
        attempt.outcome, attempt.code, attempt.message = "failed", exc.code, shorten(str(exc), 2000)
        attempt.bytes = copied["bytesMoved"] if (copied := progress.now()) else 0
        number = attempt.number
        if exc.retryable and failures < self.settings.max_dequeue_count:
            state = await self._ended(job_id, attempt, JobChange(state="queued", error=error))
            _observed(attempt, outcome="retrying" if state == "queued" else "cancelled")
            if state == "queued":
                log.warning(
                    "job %s: attempt %d failed (%s): %s; retry in %g s", job_id, number, exc.code, exc,
                    self.settings.retry_delay, extra=job_fields(job_id),
                )  # fmt: skip
                raise RetryLater(str(exc))
            log.info("job %s cancelled after attempt %d failed", job_id, number, extra=job_fields(job_id))
            return
        await self._ended(job_id, attempt, JobChange(state="failed", error=error))
        _observed(attempt)
        log.warning("job %s failed (%s): %s", job_id, exc.code, exc, extra=job_fields(job_id))
        if exc.retryable:  # the last delivery: the host (or the local worker) moves it to poison
            raise RetryLater(str(exc))

    async def _watched(self, job: ImportJob, request: ImportRequest, progress: ProgressWriter) -> ImportResult:
        """The job, stopped when a cancel is asked for (:class:`JobCancelled`)."""
        watch = Watch(self.statuses, job.id)
        with stopping.scope(watch.stop):  # the engine's task, and every task it starts, sees it
            engine = asyncio.create_task(self._run(job, request, progress, watch))
        watcher = asyncio.create_task(watch.run(engine))
        try:
            return await engine
        except stopping.Stopped:
            raise JobCancelled(watch.stop.left) from None
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if watch.stop.asked and not (current is not None and current.cancelling()):
                raise JobCancelled(watch.stop.left) from None
            raise
        finally:
            watcher.cancel()

    async def _run(
        self, job: ImportJob, request: ImportRequest, progress: ProgressWriter, watch: Watch
    ) -> ImportResult:
        spec = request.spec(self.settings.limits)

        async def may_tag(target: TargetRef) -> bool:
            await watch.commit()  # the last moment a cancel stops the job: tags move next
            newest = await asyncio.to_thread(self.statuses.newest_for_tag, f"{spec.target_registry}/{target}")
            return newest is None or newest >= job.id  # ids sort newest first

        engine = engine_for(request, self.settings.registries)
        credential = self.source_credential(job, request, request.source.registry or "")
        access = Access(
            lambda registry: self.source_credential(job, request, registry),
            self.target_credential,
            budget_name=budget_name(job, credential),
        )
        try:
            return await launch(
                spec,
                engine,
                self.wiring,
                access,
                on_progress=progress,
                progress_interval=PROGRESS_INTERVAL,
                may_tag=may_tag,
                verification=policy_named(self.settings.rules_file, request.verify) if request.verify else None,
            )
        finally:
            await progress.aclose()  # no progress write may land after the job's final record


__all__ = ["RetryLater", "Worker"]
