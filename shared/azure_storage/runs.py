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
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from shared.azure_storage.store import StorageConfig, _table_service
from shared.runs.event import event_id, event_type
from shared.runs.model import ENDED, Counts, JobEnd, outcome

HEADER = "run"
JOB = "job-"
#: Operations in one entity group transaction (the Table service's limit).
BATCH = 100
#: Properties stored as JSON text.
_NESTED = ("trigger", "event", "targets")
_COUNTS = ("total", "succeeded", "failed", "cancelled", "upToDate")


def partition(run_id: str) -> str:
    return f"run-{run_id}"


def _now() -> datetime:
    return datetime.now(UTC)


def _encode(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif key in _NESTED:
            out[key] = "" if value is None else json.dumps(value)
        elif value is not None:
            out[key] = value
    return out


def _decode(entity: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in entity.items():
        if key in ("PartitionKey", "RowKey", "Timestamp") or key.startswith("odata"):
            continue
        doc[key] = (json.loads(value) if value else None) if key in _NESTED and isinstance(value, str) else value
    return doc


def counts_of(header: dict[str, Any]) -> Counts:
    return Counts(**{k: int(header.get(k) or 0) for k in _COUNTS})


@dataclass(frozen=True)
class Counted:
    """What reporting a job's end came to: the run's record as it then stands, and whether this
    report made the run end (then its event is ``pending``, for the caller to queue)."""

    run: dict[str, Any]
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

    def create(self, run_id: str, fields: dict[str, Any], jobs: list[dict[str, Any]], *, open_: bool) -> None:
        """The run's record with ``jobs`` (each ``{"id", "source", "targets"}``), in transactions of
        :data:`BATCH` rows. An open run may have jobs added (:meth:`add_job`) until :meth:`seal`."""
        at = _now()
        header = {
            **_encode({"state": "running", "createdAt": at, "updatedAt": at, **fields}),
            "PartitionKey": partition(run_id),
            "RowKey": HEADER,
            "open": open_,
            **{k: 0 for k in _COUNTS},
            "total": len(jobs),
        }
        rows = [header, *(self._member(run_id, job, n) for n, job in enumerate(jobs))]
        for at_ in range(0, len(rows), BATCH):
            self.table.submit_transaction([("create", row) for row in rows[at_ : at_ + BATCH]])

    @staticmethod
    def _member(run_id: str, job: dict[str, Any], n: int) -> dict[str, Any]:
        """A job's row: ``n`` is its place in the run (jobs made in one millisecond have ids in no order)."""
        fields = {
            "state": "queued",
            "counted": False,
            "n": n,
            "source": job.get("source", ""),
            "targets": job.get("targets"),
        }
        return {"PartitionKey": partition(run_id), "RowKey": JOB + job["id"], **_encode(fields)}

    def add_job(self, run_id: str, job: dict[str, Any]) -> None:
        """One more job in an open run: its row and the run's total, in one transaction."""

        def change(header: dict[str, Any]) -> list[tuple[Any, ...]]:
            if not header.get("open"):
                raise ValueError(f"run {run_id} is sealed: no job can be added")
            return [
                ("create", self._member(run_id, job, header["total"])),
                self._header_op(run_id, header, {"total": header["total"] + 1}),
            ]

        self._transact(run_id, None, lambda h, _m: change(h))

    def seal(self, run_id: str, up_to_date: int = 0) -> Counted:
        """No more jobs: the run ends now if every job it has has ended."""

        def change(header: dict[str, Any]) -> list[tuple[Any, ...]]:
            if not header.get("open"):
                return []
            return [self._header_op(run_id, header, self._ending({**header, "open": False, "upToDate": up_to_date}))]

        return self._transact(run_id, None, lambda h, _m: change(h))

    # -- a job's end ----------------------------------------------------------------------

    def count(self, run_id: str, job_id: str, end: dict[str, Any]) -> Counted | None:
        """Count a job's end (:func:`shared.runs.model.job_end`) once; None when the run has no
        such job (or no such run)."""
        state: JobEnd = end["state"]

        def change(header: dict[str, Any], member: dict[str, Any] | None) -> list[tuple[Any, ...]]:
            if member is None:
                raise LookupError
            if member.get("counted"):
                return []
            counts = counts_of(header).plus(state)
            fields = {
                state: getattr(counts, state),
                "bytes": int(header.get("bytes") or 0) + int(end.get("bytes") or 0),
            }
            kept = {k: v for k, v in member.items() if k not in ("id", "_etag")}
            given = {k: v for k, v in end.items() if v not in (None, "", [])}
            row = {
                "PartitionKey": partition(run_id),
                "RowKey": JOB + job_id,
                **_encode({**kept, **given, "counted": True}),
            }
            return [
                ("update", row, self._match(member, UpdateMode.REPLACE)),
                self._header_op(run_id, header, self._ending({**header, **fields})),
            ]

        try:
            return self._transact(run_id, job_id, change)
        except LookupError:
            return None

    def _ending(self, header: dict[str, Any]) -> dict[str, Any]:
        """``header``'s changes, with the run's state from its counts: when it has ended, the end
        time and its event, ``pending``."""
        state = outcome(
            counts_of(header), open_=bool(header.get("open")), cancel_requested=bool(header.get("cancelRequestedAt"))
        )
        changes = {k: v for k, v in header.items() if k in (*_COUNTS, "bytes", "open")}
        changes["state"] = state
        if state in ENDED and header.get("state") not in ENDED:
            changes["endedAt"] = _now()
            changes["event"] = {"id": event_id(header["id"]), "type": event_type(state), "state": "pending"}
        return changes

    def _header_op(self, run_id: str, header: dict[str, Any], fields: dict[str, Any]) -> tuple[Any, ...]:
        row = {"PartitionKey": partition(run_id), "RowKey": HEADER, **_encode({**fields, "updatedAt": _now()})}
        return ("update", row, self._match(header, UpdateMode.MERGE))

    @staticmethod
    def _match(row: dict[str, Any], mode: UpdateMode) -> dict[str, Any]:
        return {"mode": mode, "etag": row["_etag"], "match_condition": MatchConditions.IfNotModified}

    def _transact(
        self,
        run_id: str,
        job_id: str | None,
        change: Callable[[dict[str, Any], dict[str, Any] | None], list[tuple[Any, ...]]],
    ) -> Counted:
        """Read the run (and the job's row), apply ``change``'s operations in one transaction under
        the ETags read; on a conflict, read again and ask again."""
        for _ in range(100):
            header = self._read(run_id, HEADER)
            if header is None:
                raise LookupError(run_id)
            member = self._read(run_id, JOB + job_id) if job_id else None
            ops = change(header, member)
            if not ops:
                header.pop("_etag")
                return Counted(header, False)
            try:
                self.table.submit_transaction(ops)
            except (TableTransactionError, ResourceExistsError) as exc:
                if _conflict(exc):
                    continue
                raise
            # What this transaction wrote, not a read after it: a later writer's end is not ours.
            written: Any = next((op[1] for op in ops if op[1]["RowKey"] == HEADER), {})
            after = {**header, **_decode(dict(written))}
            after.pop("_etag")
            return Counted(after, header.get("state") not in ENDED and after.get("state") in ENDED)
        raise RuntimeError(f"run {run_id}: its record kept changing under 100 attempts to update it")

    def _read(self, run_id: str, row: str) -> dict[str, Any] | None:
        try:
            entity = self.table.get_entity(partition(run_id), row)
        except ResourceNotFoundError:
            return None
        return {**_decode(dict(entity)), "id": run_id, "_etag": entity.metadata["etag"]}

    # -- reading --------------------------------------------------------------------------

    def get(self, run_id: str) -> dict[str, Any] | None:
        """The run's record, or None."""
        found = self._read(run_id, HEADER) if run_id.isalnum() else None
        if found is not None:
            found.pop("_etag")
        return found

    def jobs(self, run_id: str) -> list[dict[str, Any]]:
        """The run's jobs as it counted them, in the order they were added."""
        query = "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi"
        rows = self.table.query_entities(query, parameters={"p": partition(run_id), "lo": JOB, "hi": "job."})
        found = [{**_decode(dict(e)), "id": str(e["RowKey"]).removeprefix(JOB)} for e in rows]
        return sorted(found, key=lambda j: int(j.pop("n", 0)))

    def list(
        self, kind: str | None, state: str | None, limit: int, continuation: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Runs newest first, ``limit`` a page, filtered by kind and state."""
        query = "PartitionKey ge 'run-' and PartitionKey lt 'run.' and RowKey eq 'run'"
        parameters: dict[str, Any] = {}
        for name, value in (("kind", kind), ("state", state)):
            if value:
                query += f" and {name} eq @{name}"
                parameters[name] = value
        pages = self.table.query_entities(query, parameters=parameters, results_per_page=limit).by_page(
            continuation_token=json.loads(continuation) if continuation else None
        )
        page: Iterator[Any] = next(pages, iter(()))
        items = [{**_decode(dict(e)), "id": str(e["PartitionKey"]).removeprefix("run-")} for e in page]
        token = getattr(pages, "continuation_token", None)
        return items, json.dumps(token) if token else None

    # -- changes to a run's record --------------------------------------------------------

    def change(self, run_id: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any] | None:
        """Merge what ``change`` makes of the run's record (None: leave it) under its ETag;
        returns the record as it then stands (None when there is no such run)."""
        for _ in range(100):
            header = self._read(run_id, HEADER)
            if header is None:
                return None
            fields = change(header)
            if fields is None:
                header.pop("_etag")
                return header
            row = {"PartitionKey": partition(run_id), "RowKey": HEADER, **_encode({**fields, "updatedAt": _now()})}
            try:
                self.table.update_entity(row, **self._match(header, UpdateMode.MERGE))
            except HttpResponseError as exc:
                if exc.status_code == 412:
                    continue
                raise
            return self.get(run_id)
        raise RuntimeError(f"run {run_id}: its record kept changing under 100 attempts to update it")

    def request_cancel(self, run_id: str) -> dict[str, Any] | None:
        """Ask the run to stop: recorded once; its jobs are cancelled one by one by the caller."""
        return self.change(run_id, lambda h: None if h.get("cancelRequestedAt") else {"cancelRequestedAt": _now()})


def _conflict(exc: Exception) -> bool:
    """An ETag that no longer matches (412), or a row another writer made first (409)."""
    status = getattr(exc, "status_code", None)
    return status in (409, 412)
