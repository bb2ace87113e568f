"""Runs as the service keeps them: opening one, counting each job's end into it (and queueing
its event when that ends it), looking at one (and repairing what a dead worker left uncounted).

Every job belongs to exactly one run. A job's end is counted when the worker records it
(:meth:`Runs.job_ended`); a worker that dies between the two leaves the job uncounted until its
message comes back (the worker then finds the job finished and counts it) or until someone looks
at the run (:meth:`Runs.look` counts every job it finds ended). Counting is idempotent
(:mod:`shared.azure_storage.runs`): the run ends, and its event is queued, once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol, cast

from shared.azure_storage.records import JobRecord, Requester
from shared.azure_storage.runs import Counted, RunStore
from shared.runs.model import (
    ENDED,
    MESSAGE_CHARS,
    Run,
    RunChange,
    RunJob,
    RunKind,
    RunRecord,
    StoredJob,
    Trigger,
    job_end,
)

log = logging.getLogger(__name__)

#: A ``pending`` event older than this is queued again by a look at its run: the worker that
#: ended the run died before it could queue it.
PENDING_GRACE = timedelta(seconds=30)
#: Job states that are ends.
JOB_ENDS = ("succeeded", "failed", "cancelled")


class Sender(Protocol):
    def send(self, content: str) -> None: ...


def run_of(record: RunRecord, jobs: list[StoredJob] | None = None) -> Run:
    """The API's view of a run's record (and its jobs)."""
    return record.view(jobs)


class Runs:
    """Opening runs and counting their jobs' ends; queueing their events."""

    def __init__(self, records: RunStore, events: Sender, job: Callable[[str], JobRecord | None]) -> None:
        self.records = records
        self.events = events
        #: A job's status record by id (to repair a run from its jobs' records).
        self.job = job
        #: Called (from any thread) when an event is queued: this process's event loop looks at
        #: once instead of at its next poll.
        self.on_queued: Callable[[], None] | None = None

    def open(
        self,
        run_id: str,
        kind: RunKind,
        trigger: Trigger,
        jobs: list[RunJob] | None = None,
        *,
        open_: bool = False,
        retry_of: str | None = None,
    ) -> None:
        """A new run with ``jobs`` (their ids, sources and targets); an ``open_`` one takes more
        jobs (:meth:`add`) until :meth:`seal`."""
        self.records.create(run_id, kind, trigger, jobs or [], open_=open_, retry_of=retry_of)

    def add(self, run_id: str, job: RunJob) -> None:
        self.records.add_job(run_id, job)

    def seal(self, run_id: str, up_to_date: int = 0) -> None:
        self._after(self.records.seal(run_id, up_to_date))

    def job_ended(self, run_id: str, job_id: str, record: JobRecord) -> None:
        """Count the job's end (from its status record) into its run; idempotent."""
        end = RunJob.model_validate({**job_end(job_id, record.model_dump(mode="json")), "id": job_id})
        counted = self.records.count(run_id, end)
        if counted is None:
            log.warning("job %s names run %s, which does not list it", job_id, run_id)
            return
        self._after(counted, repair=not counted.ended)

    def _after(self, counted: Counted, *, repair: bool = False) -> None:
        """Queue the run's event when it has just ended; when ``repair``, also an event left
        ``pending`` by a worker that died before queueing it."""
        run = counted.run
        if counted.ended or (repair and run.event is not None and run.event.state == "pending"):
            self.queue_event(run.id)

    def queue_event(self, run_id: str) -> None:
        self.events.send(json.dumps({"run": run_id}))
        if self.on_queued is not None:
            self.on_queued()
        self.records.change(run_id, _queued)
        log.info("run %s ended; its event is queued", run_id)

    def look(self, run_id: str) -> Run | None:
        """The run with its jobs; any job the run has not counted but whose record shows it ended
        is counted now (a worker died between the two), and a long-``pending`` event queued."""
        header = self.records.get(run_id)
        if header is None:
            return None
        jobs = self.records.jobs(run_id)
        repaired, states = False, {}
        for job in jobs:
            if job.counted:
                continue
            record = self.job(job.id)
            if record is not None and record.state in JOB_ENDS:
                self.job_ended(run_id, job.id, record)
                repaired = True
            elif record is not None:
                states[record.id] = record.state
        if repaired:
            header, jobs = self.records.get(run_id) or header, self.records.jobs(run_id)
        elif _stale(header):
            self.queue_event(run_id)
        view = header.view(jobs)
        for member in view.jobs:  # jobs not yet ended: their state as their records say
            member.state = states.get(member.id, member.state)
        return view


def trigger(kind: str, requested_by: Requester | None, **more: str | None) -> Trigger:
    """A run's trigger from who asked (a job's :class:`Requester`) and what (rule, event id)."""
    who = requested_by.name or requested_by.kind if requested_by else None
    return Trigger.model_validate({"type": kind, "requestedBy": who, **{k: v for k, v in more.items() if v}})


class RunSlot:
    """The run new jobs go into, made with its first job: a run of one (``open_`` False), or an
    open run its creator adds jobs to and then seals (a mirror pass of one rule, a promotion). A
    slot that never gets a job makes no run."""

    def __init__(
        self, runs: Runs, new_id: Callable[[], str], kind: str, trigger: Trigger, *, open_: bool = True,
        retry_of: str | None = None,
    ) -> None:  # fmt: skip
        self.runs, self.new_id, self.trigger = runs, new_id, trigger
        self.kind = cast(RunKind, kind)  # checked when the run is written (RunChange's kind)
        self.open_, self.retry_of = open_, retry_of
        self.id: str | None = None
        self.made = False
        self._making = threading.Lock()

    def reserve(self) -> str:
        """The run's id (chosen now; the run is made with its first job)."""
        if self.id is None:
            self.id = self.new_id()
        return self.id

    def add(self, job: JobRecord) -> None:
        """The job into the run (a pass may submit several jobs at once: one makes the run)."""
        member = RunJob(id=job.id, source=job.source, targets=job.targets)
        with self._making:
            if not self.made:
                run = self.reserve()
                self.runs.open(run, self.kind, self.trigger, [member], open_=self.open_, retry_of=self.retry_of)
                self.made = True
                return
        self.runs.add(self.reserve(), member)

    def seal(self, up_to_date: int = 0) -> None:
        if self.made and self.open_ and self.id is not None:
            self.runs.seal(self.id, up_to_date)


def _queued(header: RunRecord) -> RunChange | None:
    event = header.event
    if event is None or event.state != "pending":
        return None
    return RunChange(event=event.model_copy(update={"state": "queued"}))


def _stale(header: RunRecord) -> bool:
    event, ended = header.event, header.endedAt
    if header.state not in ENDED or event is None or event.state != "pending" or ended is None:
        return False
    return bool(datetime.now(UTC) - ended > PENDING_GRACE)


__all__ = ["MESSAGE_CHARS", "Runs", "run_of"]
