"""A run's rows in the status table: the one mapping between a run (and its jobs) and table rows,
:mod:`.runs`' alone. :func:`header_row` / :func:`record_of` for the run's record
(:class:`~shared.runs.model.RunRecord`, row ``run``), :func:`job_row` / :func:`job_of` for a job's
row (:class:`~shared.runs.model.StoredJob`, row ``job-<job id>``), all in the run's partition
(:func:`partition`); everything above works on the typed values. A row is checked against its
shape as it is made: a field a run gains needs a column here."""

from __future__ import annotations

import json
from datetime import datetime

from azure.data.tables import TableEntity
from pydantic import with_config

from shared.azure_storage.store import ROWS, TableRow, checked
from shared.runs.model import Counts, RunChange, RunRecord, StoredEvent, StoredJob

HEADER = "run"
JOB = "job-"
_KEYS = ("PartitionKey", "RowKey", "Timestamp")


def partition(run_id: str) -> str:
    return f"run-{run_id}"


@with_config(ROWS)
class RunRow(TableRow, total=False):
    """A run's record as a row (a merge writes the columns its change sets): times as ISO text,
    the trigger and the event as JSON text (empty: none), the counts one column each."""

    kind: str
    state: str
    trigger: str
    retryOf: str
    open: bool
    total: int
    succeeded: int
    failed: int
    cancelled: int
    upToDate: int
    bytes: int
    createdAt: str
    updatedAt: str
    endedAt: str
    cancelRequestedAt: str
    event: str


@with_config(ROWS)
class RunJobRow(TableRow, total=False):
    """A job's row in its run (row key ``job-<job id>``): its targets as JSON text."""

    state: str
    source: str
    targets: str
    code: str
    message: str
    bytes: int
    digest: str
    endedAt: str
    n: int
    counted: bool


def header_row(run_id: str, change: RunChange) -> RunRow:
    """A run's fields as its record's row to merge."""
    row: dict[str, str | int | bool] = {"PartitionKey": partition(run_id), "RowKey": HEADER}
    for name in change.model_fields_set:
        value = getattr(change, name)
        if name == "counts" and value is not None:
            row.update(value.model_dump())
        elif name == "trigger":
            row[name] = "" if value is None else json.dumps(value.model_dump(mode="json", exclude_none=True))
        elif name == "event":
            row[name] = "" if value is None else _event_text(value)
        elif isinstance(value, datetime):
            row[name] = value.isoformat()
        elif value is not None:
            row[name] = value
    return checked(RunRow, row)


def _event_text(event: StoredEvent) -> str:
    doc = event.model_dump(mode="json", exclude_none=True)
    for name, outcome_ in event.destinations.items():  # an outcome keeps its cleared fields
        doc["destinations"][name] = outcome_.model_dump(mode="json")
    if not event.destinations:
        doc.pop("destinations")
    return json.dumps(doc)


def record_of(run_id: str, entity: TableEntity) -> RunRecord:
    """The run a record's row holds."""
    doc = {k: v for k, v in entity.items() if k not in _KEYS and not k.startswith("odata")}
    for name in ("trigger", "event"):
        text = doc.pop(name, "")
        if text:
            doc[name] = json.loads(text)
    doc["counts"] = Counts(**{k: int(doc.pop(k, 0) or 0) for k in Counts.model_fields})
    doc["bytes"] = int(doc.get("bytes") or 0)
    return RunRecord.model_validate({**doc, "id": run_id})


def job_row(run_id: str, job: StoredJob) -> RunJobRow:
    """A job's row in its run."""
    doc = job.model_dump(mode="json", exclude_none=True, exclude={"id"})
    doc["targets"] = json.dumps(job.targets)
    return checked(RunJobRow, {"PartitionKey": partition(run_id), "RowKey": JOB + job.id, **doc})


def job_of(entity: TableEntity) -> StoredJob:
    doc = {k: v for k, v in entity.items() if k not in _KEYS and not k.startswith("odata")}
    text = doc.pop("targets", "")
    return StoredJob.model_validate(
        {**doc, "id": str(entity["RowKey"]).removeprefix(JOB), "targets": json.loads(text) if text else []}
    )
