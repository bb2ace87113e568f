"""One attempt at a job, as the worker keeps it: the attempt's record, how a delivery changes
the job's record, the look-out for a cancel request, and progress written off the event loop."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

from shared import stopping
from shared.azure_storage.records import FINISHED, Attempt, JobChange, JobRecord, Statuses, WorkerInstance, now
from shared.engine.progress import Progress, Snapshot
from shared.logs import job_fields

log = logging.getLogger(__name__)

#: Seconds between a running job's looks at its record for a cancel request (the engine then
#: has :data:`shared.stopping.GRACE` seconds to stop at a safe point).
CANCEL_CHECK = 1.0


class JobCancelled(Exception):
    """A cancel was asked for while the job ran: it stopped before any tag moved. ``left``:
    upload sessions the target registry would not delete."""

    def __init__(self, left: list[str] | None = None) -> None:
        super().__init__()
        self.left = left or []


def new_attempt(number: int) -> Attempt:
    """A new attempt, running on this worker instance."""
    return Attempt(number=number, startedAt=now(), worker=WorkerInstance(host=socket.gethostname(), pid=os.getpid()))


def begin(current: JobRecord, attempt: Attempt, earlier: list[Attempt]) -> JobChange | None:
    """How a delivery changes the record: a finished job stays as it is (None); a job whose
    cancel was asked for is ``cancelled`` without running; else it is ``running`` this attempt.
    An earlier attempt the record still shows running ended unrecorded: it goes to ``earlier``."""
    if current.state in FINISHED:
        return None
    at = now()
    if current.cancelRequestedAt:
        return JobChange(state="cancelled", finishedAt=at, updatedAt=at)
    earlier.clear()
    last = current.lastAttempt
    if last is not None and last.outcome == "running" and last.number < attempt.number:
        message = "the worker stopped before the attempt ended"
        earlier.append(last.model_copy(update={"outcome": "abandoned", "message": message}))
    return JobChange(
        state="running",
        attemptCount=attempt.number,
        startedAt=current.startedAt or at,
        updatedAt=at,
        lastAttempt=attempt,
        waiting=None,  # a job that waited for the pull budget waits no more
    )


def not_run(job_id: str, record: JobRecord | None) -> None:
    """Say why a delivered job was not run; its message is consumed."""
    if record is None:
        log.error("job %s has no status record; its message is dropped", job_id)
    elif record.state == "cancelled":
        log.info("job %s is cancelled; its message is consumed without running", job_id, extra=job_fields(job_id))
    else:
        log.info("job %s is already %s; redelivery ignored", job_id, record.state, extra=job_fields(job_id))


class Watch:
    """A running job's look-out for a cancel request, every :data:`CANCEL_CHECK` seconds until
    the tags are about to move (:meth:`commit`): from then on the job finishes, and a cancel
    comes too late. Asked, it stops the engine at its next safe point (:mod:`shared.stopping`:
    upload sessions closed cleanly); an engine still going :data:`stopping.GRACE` seconds later (an
    upload of stated length in flight, the ARM engine) is cancelled outright."""

    def __init__(self, statuses: Statuses, job_id: str) -> None:
        self._statuses = statuses
        self._job_id = job_id
        self._lock = asyncio.Lock()
        self.stop = stopping.Stop()
        self.committed = False

    async def _asked(self) -> bool:
        try:
            record = await asyncio.to_thread(self._statuses.get, self._job_id)
        except Exception:  # the table did not answer: look again next time
            log.warning("job %s: could not look for a cancel request", self._job_id)
            return False
        return bool(record and record.cancelRequestedAt)

    async def run(self, engine: asyncio.Task[Any]) -> None:
        while not self.committed:
            await asyncio.sleep(CANCEL_CHECK)
            if await self._asked() and not self.committed:
                if self.stop.ask():  # not once the engine committed: then it finishes its tags
                    await asyncio.wait({engine}, timeout=stopping.GRACE)
                    self.stop.cancel(engine)
                return

    async def commit(self) -> None:
        """A last look before the first tag moves; after it, no more cancelling."""
        async with self._lock:
            if self.committed:
                return
            if await self._asked():
                raise JobCancelled
            self.committed = True


class ProgressWriter:
    """Progress to the status table off the event loop (the table client is synchronous, and in
    the Functions host several messages share one loop): one write at a time in a thread; the
    engine's :class:`~shared.engine.progress.Reporter` alone throttles."""

    def __init__(self, statuses: Statuses, job_id: str) -> None:
        self._statuses = statuses
        self._job_id = job_id
        self._task: asyncio.Task[None] | None = None
        self._progress: Progress | None = None
        self.latest: Snapshot | None = None

    def now(self) -> Snapshot | None:
        """The progress as it stands (not as last reported), or None before the copy began."""
        return self._progress.snapshot() if self._progress is not None else None

    def __call__(self, p: Progress) -> None:
        self._progress = p
        self.latest = p.snapshot()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._write(self.latest))

    async def _write(self, snapshot: Snapshot) -> None:
        try:
            change = JobChange(progress=snapshot, updatedAt=now())
            await asyncio.to_thread(self._statuses.update, self._job_id, change)
        except Exception:  # progress is best effort: never fail an import over it
            log.warning("job %s: could not record progress", self._job_id)

    async def aclose(self) -> None:
        if self._task is not None:
            await self._task
