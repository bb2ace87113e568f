"""Runs in the status table, and the queue their end events wait in.

Each run is a partition of its own, ``run-<run id>`` (run ids sort newest first, as job ids do):
its record (row ``run``: kind, trigger, state, counts, bytes, the event's delivery) and one row
per job (``job-<job id>``: the job's end as the run counted it). A job's end is counted in one
entity group transaction that changes both rows under their ETags: the job's row from not yet
counted to counted, the run's counts by one, and, when that makes the run end, its state and
its event (``pending``). So each job is counted once however often its end is reported, and of
two workers ending a run's last two jobs at once exactly one makes the run end: the other's
transaction fails on the run's ETag, reads again, and finds its job already counted or the run
still waiting for it. A worker that dies between a job's end and this transaction leaves the
job's row uncounted; the next report of the job's end (its message's redelivery, or a look at
the run) counts it.

The row format is :mod:`.runrows`': everything here works on the typed values.

Table operations a run adds: creating it, one transaction per 100 jobs (the first with the
run's record); per job, two point reads and one transaction when it ends (more only when two
workers collide on the run's ETag); one read and one merge per event state change.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict, cast

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, TableTransactionError, UpdateMode

from shared.azure_storage.runrows import HEADER, JOB, header_row, job_of, job_row, partition, record_of
from shared.azure_storage.store import StorageConfig, _table_service
from shared.runs.event import event_id, event_type
from shared.runs.model import (
    ENDED,
    Counts,
    JobEnd,
    RunChange,
    RunJob,
    RunKind,
    RunRecord,
    StoredEvent,
    StoredJob,
    Trigger,
    outcome,
)

#: Operations in one entity group transaction (the Table service's limit).
BATCH = 100
#: One operation of an entity group transaction.
Op = tuple[Any, ...]
#: What a change to a run comes to: the record's fields to merge, and the job's row to write.
Plan = tuple[RunChange, StoredJob | None]


def _now() -> datetime:
    return datetime.now(UTC)


class Match(TypedDict):
    """A write made only if the row is as it was read (its ETag)."""

    mode: UpdateMode
    etag: str
    match_condition: MatchConditions


@dataclass(frozen=True)
class Counted:
    """What reporting a job's end came to: the run's record as it then stands, and whether this
    report made the run end (then its event is ``pending``, for the caller to queue)."""

    run: RunRecord
    ended: bool


class RunStore:
    """The runs of the status table (see the module's docstring)."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    @classmethod
    def from_config(cls, config: StorageConfig) -> RunStore:
        return cls(_table_service(config).get_table_client(config.table_name))

    def ensure(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self.table.create_table()

    # -- making a run ----------------------------------------------------------------------

    def create(
        self,
        run_id: str,
        kind: RunKind,
        trigger: Trigger,
        jobs: list[RunJob],
        *,
        open_: bool,
        retry_of: str | None = None,
    ) -> None:
        """The run's record with ``jobs`` (their ids, sources and targets), in transactions of
        :data:`BATCH` rows. An open run may have jobs added (:meth:`add_job`) until :meth:`seal`."""
        at = _now()
        header = RunChange(
            state="running", createdAt=at, updatedAt=at, kind=kind, trigger=trigger, retryOf=retry_of,
            open=open_, counts=Counts(total=len(jobs)),
        )  # fmt: skip
        rows = [header_row(run_id, header), *(job_row(run_id, _member(job, n)) for n, job in enumerate(jobs))]
        for at_ in range(0, len(rows), BATCH):
            self.table.submit_transaction([("create", row) for row in rows[at_ : at_ + BATCH]])

    def add_job(self, run_id: str, job: RunJob) -> None:
        """One more job in an open run: its row and the run's total, in one transaction."""

        def change(header: RunRecord, _member_: StoredJob | None) -> Plan:
            if not header.open:
                raise ValueError(f"run {run_id} is sealed: no job can be added")
            counts = header.counts.model_copy(update={"total": header.counts.total + 1})
            return RunChange(counts=counts), _member(job, header.counts.total)

        self._transact(run_id, None, change)  # no read of the job's row: it is made

    def seal(self, run_id: str, up_to_date: int = 0) -> Counted:
        """No more jobs: the run ends now if every job it has has ended."""

        def change(header: RunRecord, _member_: StoredJob | None) -> Plan | None:
            if not header.open:
                return None
            counts = header.counts.model_copy(update={"upToDate": up_to_date})
            return self._ending(header, header.merged(RunChange(open=False, counts=counts))), None

        return self._transact(run_id, None, change)

    # -- a job's end ----------------------------------------------------------------------

    def count(self, run_id: str, end: RunJob) -> Counted | None:
        """Count a job's end (:func:`shared.runs.model.job_end`) once; None when the run has no
        such job (or no such run)."""
        state = cast(JobEnd, end.state)
        given = {k: v for k, v in end.model_dump(exclude={"id"}).items() if v not in (None, "", [])}

        def change(header: RunRecord, member: StoredJob | None) -> Plan | None:
            if member is None:
                raise LookupError
            if member.counted:
                return None
            after = RunChange(counts=header.counts.plus(state), bytes=header.bytes + end.bytes)
            row = member.model_copy(update={**given, "counted": True})
            return self._ending(header, header.merged(after)), row

        try:
            return self._transact(run_id, end.id, change)
        except LookupError:
            return None

    @staticmethod
    def _ending(before: RunRecord, after: RunRecord) -> RunChange:
        """The record's changes (``after``'s counts, bytes, openness), with the run's state from its
        counts: when it has ended, the end time and its event, ``pending``."""
        state = outcome(after.counts, open_=after.open, cancel_requested=after.cancelRequestedAt is not None)
        change = RunChange(counts=after.counts, bytes=after.bytes, open=after.open, state=state)
        if state in ENDED and before.state not in ENDED:
            change.endedAt = _now()
            change.event = StoredEvent(id=event_id(before.id), type=event_type(state), state="pending")
        return change

    @staticmethod
    def _match(etag: str, mode: UpdateMode) -> Match:
        return Match(mode=mode, etag=etag, match_condition=MatchConditions.IfNotModified)

    def _transact(
        self, run_id: str, job_id: str | None, change: Callable[[RunRecord, StoredJob | None], Plan | None]
    ) -> Counted:
        """Read the run (and the job's row), apply ``change``'s plan in one transaction under the
        ETags read; on a conflict, read again and ask again."""
        for _ in range(100):
            found = self._read(run_id)
            if found is None:
                raise LookupError(run_id)
            header, etag = found
            member = self._read_job(run_id, job_id) if job_id else None
            plan = change(header, member[0] if member else None)
            if plan is None:
                return Counted(header, False)
            fields, job = plan
            fields.updatedAt = _now()
            ops: list[Op] = []
            if job is not None:
                row = job_row(run_id, job)
                ops.append(("update", row, self._match(member[1], UpdateMode.REPLACE)) if member else ("create", row))
            ops.append(("update", header_row(run_id, fields), self._match(etag, UpdateMode.MERGE)))
            try:
                self.table.submit_transaction(ops)
            except (TableTransactionError, ResourceExistsError) as exc:
                if _conflict(exc):
                    continue
                raise
            # What this transaction wrote, not a read after it: a later writer's end is not ours.
            after = header.merged(fields)
            return Counted(after, header.state not in ENDED and after.state in ENDED)
        raise RuntimeError(f"run {run_id}: its record kept changing under 100 attempts to update it")

    def _read(self, run_id: str) -> tuple[RunRecord, str] | None:
        try:
            entity = self.table.get_entity(partition(run_id), HEADER)
        except ResourceNotFoundError:
            return None
        return record_of(run_id, entity), str(entity.metadata["etag"])

    def _read_job(self, run_id: str, job_id: str) -> tuple[StoredJob, str] | None:
        try:
            entity = self.table.get_entity(partition(run_id), JOB + job_id)
        except ResourceNotFoundError:
            return None
        return job_of(entity), str(entity.metadata["etag"])

    # -- reading --------------------------------------------------------------------------

    def get(self, run_id: str) -> RunRecord | None:
        """The run's record, or None."""
        found = self._read(run_id) if run_id.isalnum() else None
        return found[0] if found else None

    def jobs(self, run_id: str) -> list[StoredJob]:
        """The run's jobs as it counted them, in the order they were added."""
        query = "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi"
        rows = self.table.query_entities(query, parameters={"p": partition(run_id), "lo": JOB, "hi": "job."})
        return sorted((job_of(e) for e in rows), key=lambda j: j.n)

    def list(
        self, kind: str | None, state: str | None, limit: int, continuation: str | None
    ) -> tuple[list[RunRecord], str | None]:
        """Runs newest first, ``limit`` a page, filtered by kind and state."""
        query = "PartitionKey ge 'run-' and PartitionKey lt 'run.' and RowKey eq 'run'"
        parameters: dict[str, str] = {}
        for name, value in (("kind", kind), ("state", state)):
            if value:
                query += f" and {name} eq @{name}"
                parameters[name] = value
        pages = self.table.query_entities(query, parameters=parameters, results_per_page=limit).by_page(
            continuation_token=json.loads(continuation) if continuation else None
        )
        page: Iterator[TableEntity] = next(pages, iter(()))
        items = [record_of(str(e["PartitionKey"]).removeprefix("run-"), e) for e in page]
        token = getattr(pages, "continuation_token", None)
        return items, json.dumps(token) if token else None

    # -- changes to a run's record --------------------------------------------------------

    def change(self, run_id: str, change: Callable[[RunRecord], RunChange | None]) -> RunRecord | None:
        """Merge what ``change`` makes of the run's record (None: leave it) under its ETag;
        returns the record as it then stands (None when there is no such run)."""
        for _ in range(100):
            found = self._read(run_id)
            if found is None:
                return None
            header, etag = found
            fields = change(header)
            if fields is None:
                return header
            fields.updatedAt = _now()
            try:
                self.table.update_entity(header_row(run_id, fields), **self._match(etag, UpdateMode.MERGE))
            except HttpResponseError as exc:
                if exc.status_code == 412:
                    continue
                raise
            return self.get(run_id)
        raise RuntimeError(f"run {run_id}: its record kept changing under 100 attempts to update it")

    def request_cancel(self, run_id: str) -> RunRecord | None:
        """Ask the run to stop: recorded once; its jobs are cancelled one by one by the caller."""
        return self.change(run_id, lambda h: None if h.cancelRequestedAt else RunChange(cancelRequestedAt=_now()))


def _member(job: RunJob, n: int) -> StoredJob:
    """A job's row as it joins the run: queued, not yet counted."""
    return StoredJob(id=job.id, source=job.source, targets=job.targets, n=n, state="queued", counted=False)


def _conflict(exc: Exception) -> bool:
    """An ETag that no longer matches (412), or a row another writer made first (409)."""
    status = getattr(exc, "status_code", None)
    return status in (409, 412)
