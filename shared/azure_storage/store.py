"""The status table, on Azure Storage (``azure-data-tables``): by connection string locally
(Azurite), by identity in Azure; the queue is :mod:`.queue`.

Status records live in one partition; their row key (the job id) starts with an inverted
timestamp, so a plain query lists them newest first. The row format is this module's alone: a
job's row (:class:`JobRow`) holds the record's scalar fields as they are, its times as ISO text
and its nested values (:data:`NESTED`) as JSON text; a merge cannot remove a property, so an
empty string stands for "none". An attempt's row (:class:`AttemptRow`, partition ``attempt``, row
key ``<job id>:<attempt, 4 digits>``) likewise. A row is checked against its shape as it is made:
a field a record gains needs a column here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Required, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, TableServiceClient, UpdateMode
from pydantic import ConfigDict, TypeAdapter, with_config
from typing_extensions import TypedDict

from shared.azure_storage.records import Attempt, JobChange, JobRecord

PARTITION = "job"
IDEMPOTENCY = "idempotency"
TAGS = "tag"
#: One row per attempt of a job (``<job id>:<attempt>``), read only by ``GET`` on one job.
ATTEMPTS = "attempt"
#: The job's queue message as enqueued (its secrets sealed), kept for a retry.
MESSAGES = "message"
#: A binary property holds at most 64 KiB: a kept message is split into parts of this size.
_PART = 60_000
_MAX_MS = 10**13
_R = TypeVar("_R")


def new_job_id(at: float | None = None) -> str:
    """Sortable newest first: 13 digits of inverted milliseconds, then 8 random hex digits."""
    ms = int((time.time() if at is None else at) * 1000)
    return f"{_MAX_MS - ms:013d}{secrets.token_hex(4)}"


@dataclass(frozen=True)
class StorageConfig:
    """Where the queue and table are: a connection string, or an account reached by identity."""

    connection_string: str | None = None
    account: str | None = None
    queue_service_uri: str | None = None
    table_service_uri: str | None = None
    client_id: str | None = None
    queue_name: str = "imports"
    table_name: str = "imports"

    def credential(self) -> Any:
        from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - only in Azure, not locally

        if self.client_id:
            return DefaultAzureCredential(managed_identity_client_id=self.client_id)
        return DefaultAzureCredential()


def _table_service(config: StorageConfig) -> TableServiceClient:
    if config.connection_string:
        return TableServiceClient.from_connection_string(config.connection_string)
    url = config.table_service_uri or f"https://{config.account}.table.core.windows.net"
    return TableServiceClient(url, credential=config.credential())


# -- the row format: the one mapping between a record and a table row ---------------------------

#: Nested values are stored as JSON text (table properties are flat).
NESTED = ("progress", "result", "error", "targets", "request", "lastAttempt", "requestedBy", "verification", "waiting")
_KEYS = ("PartitionKey", "RowKey", "Timestamp")
#: An attempt's nested value (the worker instance), stored as JSON text.
_ATTEMPT_NESTED = ("worker",)
#: Rows are made from typed values: nothing to coerce, and no column left out unnoticed.
ROWS = ConfigDict(strict=True, extra="forbid")


class TableRow(TypedDict):
    """What every row has: its partition and its key in the partition."""

    PartitionKey: str
    RowKey: str


@with_config(ROWS)
class JobRow(TableRow, total=False):
    """A job's record as a row (a merge writes the columns its change sets). A row written before
    attempts had rows of their own holds ``attempts``, the count, in place of ``attemptCount``
    (:func:`record_of` reads either)."""

    state: str
    createdAt: str
    updatedAt: str
    startedAt: str
    finishedAt: str
    attemptCount: int
    lastAttempt: str
    retryOf: str
    cancelRequestedAt: str
    source: str
    targets: str
    request: str
    progress: str
    result: str
    error: str
    run: str
    requestedBy: str
    verification: str
    waiting: str


@with_config(ROWS)
class AttemptRow(TableRow, total=False):
    """One attempt at a job as a row (the worker instance as JSON text)."""

    number: Required[int]
    startedAt: Required[str]
    finishedAt: str
    outcome: str
    code: str
    message: str
    bytes: int
    worker: str


#: Each row shape's validator, made on first use.
_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def checked(shape: type[_R], row: Mapping[str, object]) -> _R:
    """``row`` as its ``shape`` (a row TypedDict configured with :data:`ROWS`) says: a column the
    shape lacks, or a value of another type, is refused (pydantic's ``ValidationError``)."""
    return _adapter(shape).validate_python(row)


def _adapter(shape: type[_R]) -> TypeAdapter[_R]:
    """The shape's validator, made once (making one takes a millisecond; using it, a microsecond)."""
    if shape not in _ADAPTERS:
        _ADAPTERS[shape] = TypeAdapter(shape)
    return _ADAPTERS[shape]


def row_of(job_id: str, change: JobChange, *, whole: bool = False) -> JobRow:
    """The row to merge for ``change`` (the fields it sets; ``whole``: every field, for a new
    record)."""
    entity: dict[str, str | int] = {"PartitionKey": PARTITION, "RowKey": job_id}
    for key, value in change.model_dump(mode="json", exclude_unset=not whole).items():
        if key == "id":
            continue
        if value is None:  # a merge cannot remove a property: an empty string stands for "none"
            if key in NESTED:
                entity[key] = ""
            continue
        entity[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
    return checked(JobRow, entity)


def _decode(entity: TableEntity, nested: tuple[str, ...]) -> dict[str, Any]:
    """A row as the JSON its record is read from (the edge where a row enters)."""
    doc = {"id": entity["RowKey"]}
    for key, value in entity.items():
        if key in _KEYS or key.startswith("odata"):
            continue
        if key in nested and isinstance(value, str):
            doc[key] = json.loads(value) if value else None
        else:
            doc[key] = value
    return doc


def record_of(entity: TableEntity) -> JobRecord:
    """The record a job's row holds (rows from before attempts were kept: the count alone)."""
    doc = _decode(entity, NESTED)
    old = doc.pop("attempts", 0)
    if doc.get("attemptCount") is None:
        doc["attemptCount"] = old if isinstance(old, int) else 0
    return JobRecord.model_validate(doc)


def attempt_row(job_id: str, attempt: Attempt) -> AttemptRow:
    doc = attempt.model_dump(mode="json", exclude_none=True)
    row = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in doc.items()}
    return checked(AttemptRow, {"PartitionKey": ATTEMPTS, "RowKey": f"{job_id}:{attempt.number:04d}", **row})


def attempt_of(entity: TableEntity) -> Attempt:
    doc = _decode(entity, _ATTEMPT_NESTED)
    doc.pop("id")
    return Attempt.model_validate(doc)


class StatusStore:
    """Job status records in the ``imports`` table."""

    def __init__(self, config: StorageConfig) -> None:
        self.table: TableClient = _table_service(config).get_table_client(config.table_name)

    def ensure(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self.table.create_table()

    def insert(self, record: JobRecord) -> None:
        self.table.create_entity(row_of(record.id, record, whole=True))

    def get(self, job_id: str) -> JobRecord | None:
        try:
            return record_of(self.table.get_entity(PARTITION, job_id))
        except ResourceNotFoundError:
            return None

    def update(self, job_id: str, change: JobChange) -> None:
        """Merge ``change`` into the record."""
        self.table.update_entity(row_of(job_id, change), mode=UpdateMode.MERGE)

    def transition(self, job_id: str, change: Callable[[JobRecord], JobChange | None]) -> JobRecord | None:
        """Change the record by what ``change`` makes of it as it stands (the fields to merge, or
        None to leave it), under its ETag: when another writer got there first, the record is read
        again and ``change`` asked again. Returns the record as it then stands (None if none)."""
        for _ in range(50):
            try:
                entity = self.table.get_entity(PARTITION, job_id)
            except ResourceNotFoundError:
                return None
            current = record_of(entity)
            fields = change(current)
            if fields is None:
                return current
            try:
                self.table.update_entity(
                    row_of(job_id, fields),
                    mode=UpdateMode.MERGE,
                    etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except ResourceModifiedError:
                continue
            return current.merged(fields)
        raise RuntimeError(f"job {job_id}: the record kept changing under 50 attempts to update it")

    def record_attempt(self, job_id: str, attempt: Attempt) -> None:
        """Merge ``attempt`` into its row of the job, made when new."""
        self.table.upsert_entity(attempt_row(job_id, attempt), mode=UpdateMode.MERGE)

    def attempts(self, job_id: str) -> list[Attempt]:
        """Every recorded attempt of the job, first first (``;`` sorts right after ``:``)."""
        query = "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi"
        found = self.table.query_entities(query, parameters={"p": ATTEMPTS, "lo": f"{job_id}:", "hi": f"{job_id};"})
        return [attempt_of(e) for e in sorted(found, key=lambda e: str(e["RowKey"]))]

    def keep_message(self, job_id: str, content: str) -> None:
        """Keep the job's queue message (compressed, in parts of a binary property's size)."""
        data = zlib.compress(content.encode())
        parts = {f"p{i}": data[at : at + _PART] for i, at in enumerate(range(0, len(data), _PART))}
        self.table.upsert_entity({"PartitionKey": MESSAGES, "RowKey": job_id, **parts}, mode=UpdateMode.REPLACE)

    def message(self, job_id: str) -> str | None:
        """The queue message kept for the job, or None (a job from before messages were kept)."""
        try:
            entity = self.table.get_entity(MESSAGES, job_id)
        except ResourceNotFoundError:
            return None
        parts, i = [], 0
        while f"p{i}" in entity:
            parts.append(bytes(entity[f"p{i}"]))
            i += 1
        return zlib.decompress(b"".join(parts)).decode()

    def list(self, state: str | None, limit: int, continuation: str | None) -> tuple[list[JobRecord], str | None]:
        query = f"PartitionKey eq '{PARTITION}'"
        parameters: dict[str, str] = {}
        if state:
            query += " and state eq @state"
            parameters["state"] = state
        pages = self.table.query_entities(query, parameters=parameters, results_per_page=limit).by_page(
            continuation_token=json.loads(continuation) if continuation else None
        )
        page: Iterator[TableEntity] = next(pages, iter(()))
        items = [record_of(e) for e in page]
        token = getattr(pages, "continuation_token", None)
        return items, json.dumps(token) if token else None

    def claim_idempotency_key(self, key: str, job_id: str, fingerprint: str) -> tuple[str, str]:
        """The job id and request fingerprint for ``key``: ``job_id`` and ``fingerprint`` when the
        key is new, else those recorded first (an empty fingerprint for keys from before it)."""
        row = hashlib.sha256(key.encode()).hexdigest()
        try:
            self.table.create_entity(
                {"PartitionKey": IDEMPOTENCY, "RowKey": row, "jobId": job_id, "fingerprint": fingerprint}
            )
            return job_id, fingerprint
        except ResourceExistsError:
            first = self.table.get_entity(IDEMPOTENCY, row)
            return str(first["jobId"]), str(first.get("fingerprint", ""))

    def claim_tag(self, tag: str, job_id: str) -> None:
        """Record ``job_id`` as the newest job asking for ``tag`` (job ids sort newest first)."""
        row = hashlib.sha256(tag.encode()).hexdigest()
        for _ in range(10):
            try:
                current = self.table.get_entity(TAGS, row)
            except ResourceNotFoundError:
                try:
                    self.table.create_entity({"PartitionKey": TAGS, "RowKey": row, "jobId": job_id, "tag": tag})
                    return
                except ResourceExistsError:
                    continue
            if str(current["jobId"]) <= job_id:
                return  # a newer job already claimed it
            try:
                self.table.update_entity(
                    {"PartitionKey": TAGS, "RowKey": row, "jobId": job_id, "tag": tag},
                    mode=UpdateMode.REPLACE,
                    etag=current.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return
            except ResourceModifiedError:
                continue

    def newest_for_tag(self, tag: str) -> str | None:
        try:
            return str(self.table.get_entity(TAGS, hashlib.sha256(tag.encode()).hexdigest())["jobId"])
        except ResourceNotFoundError:
            return None

    def healthy(self) -> bool:
        next(iter(self.table.query_entities(f"PartitionKey eq '{PARTITION}'", results_per_page=1)), None)
        return True
