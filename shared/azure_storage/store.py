"""The import queue and the status table, on Azure Storage (``azure-storage-queue``,
``azure-data-tables``): by connection string locally (Azurite), by identity in Azure.

Queue messages are base64 text, as the Functions host's default ``messageEncoding`` expects.
Status records live in one partition; their row key (the job id) starts with an inverted
timestamp, so a plain query lists them newest first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import secrets
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode
from azure.storage.queue import (
    QueueClient,
    QueueMessage,
    QueueServiceClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

from shared.azure_storage.records import Attempt, JobChange, JobRecord

log = logging.getLogger(__name__)

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


def _queue_service(config: StorageConfig) -> QueueServiceClient:
    if config.connection_string:
        return QueueServiceClient.from_connection_string(config.connection_string)
    url = config.queue_service_uri or f"https://{config.account}.queue.core.windows.net"
    return QueueServiceClient(url, credential=config.credential())


def _table_service(config: StorageConfig) -> TableServiceClient:
    if config.connection_string:
        return TableServiceClient.from_connection_string(config.connection_string)
    url = config.table_service_uri or f"https://{config.account}.table.core.windows.net"
    return TableServiceClient(url, credential=config.credential())


@dataclass
class Received:
    id: str
    pop_receipt: str
    dequeue_count: int
    content: str


class JobQueue:
    """The ``imports`` queue and its ``imports-poison`` twin."""

    def __init__(self, config: StorageConfig) -> None:
        service = _queue_service(config)
        # base64, as the Functions host's default messageEncoding expects
        policies = {
            "message_encode_policy": TextBase64EncodePolicy(),
            "message_decode_policy": TextBase64DecodePolicy(),
        }
        self.queue: QueueClient = service.get_queue_client(config.queue_name, **policies)
        self.poison: QueueClient = service.get_queue_client(f"{config.queue_name}-poison", **policies)

    def ensure(self) -> None:
        for q in (self.queue, self.poison):
            with contextlib.suppress(ResourceExistsError):
                q.create_queue()

    def send(self, content: str, delay: float = 0) -> None:
        """Put ``content`` on the queue, hidden for ``delay`` seconds first."""
        self.queue.send_message(content, visibility_timeout=math.ceil(delay) if delay > 0 else None)

    def receive(self, lease: float) -> Received | None:
        for message in self.queue.receive_messages(max_messages=1, visibility_timeout=int(lease)):
            return _received(message)
        return None

    def extend(self, message: Received, seconds: float) -> Received:
        """Keep ``message`` hidden for ``seconds`` more (0 makes it visible at once)."""
        updated = self.queue.update_message(message.id, message.pop_receipt, visibility_timeout=int(seconds))
        return Received(message.id, updated.pop_receipt or message.pop_receipt, message.dequeue_count, message.content)

    def delete(self, message: Received) -> None:
        try:
            self.queue.delete_message(message.id, message.pop_receipt)
        except ResourceNotFoundError:
            log.info("message %s was already gone", message.id)

    def to_poison(self, message: Received) -> None:
        self.poison.send_message(message.content)
        self.delete(message)

    def peek_poison(self) -> list[str]:
        return [str(m.content) for m in self.poison.peek_messages(max_messages=32)]

    def healthy(self) -> bool:
        self.queue.get_queue_properties()
        return True


def _received(message: QueueMessage) -> Received:
    return Received(message.id, message.pop_receipt or "", message.dequeue_count or 1, str(message.content))


#: Nested values are stored as JSON text (table properties are flat).
NESTED = ("progress", "result", "error", "targets", "request", "lastAttempt", "requestedBy", "verification", "waiting")
_KEYS = ("PartitionKey", "RowKey", "Timestamp")
#: An attempt's nested value (the worker instance), stored as JSON text.
_ATTEMPT_NESTED = ("worker",)


# -- the row format: the one mapping between a record and a table row ---------------------------


def row_of(job_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A record's fields (plain JSON values, :meth:`JobChange.fields`) as the row to merge."""
    entity: dict[str, Any] = {"PartitionKey": PARTITION, "RowKey": job_id}
    for key, value in fields.items():
        if key == "id":
            continue
        if value is None:  # a merge cannot remove a property: an empty string stands for "none"
            if key in NESTED:
                entity[key] = ""
            continue
        entity[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
    return entity


def _decode(entity: Mapping[str, Any], nested: tuple[str, ...]) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": entity["RowKey"]}
    for key, value in entity.items():
        if key in _KEYS or key.startswith("odata"):
            continue
        if key in nested and isinstance(value, str):
            doc[key] = json.loads(value) if value else None
        else:
            doc[key] = value
    return doc


def record_of(entity: Mapping[str, Any]) -> JobRecord:
    """The record a job's row holds (rows from before attempts were kept: the count alone)."""
    doc = _decode(entity, NESTED)
    old = doc.pop("attempts", 0)
    if doc.get("attemptCount") is None:
        doc["attemptCount"] = old if isinstance(old, int) else 0
    return JobRecord.model_validate(doc)


def attempt_row(job_id: str, attempt: Attempt) -> dict[str, Any]:
    doc = attempt.model_dump(mode="json", exclude_none=True)
    row = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in doc.items()}
    return {"PartitionKey": ATTEMPTS, "RowKey": f"{job_id}:{attempt.number:04d}", **row}


def attempt_of(entity: Mapping[str, Any]) -> Attempt:
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
        self.table.create_entity(row_of(record.id, record.model_dump(mode="json")))

    def get(self, job_id: str) -> JobRecord | None:
        try:
            return record_of(self.table.get_entity(PARTITION, job_id))
        except ResourceNotFoundError:
            return None

    def update(self, job_id: str, change: JobChange) -> None:
        """Merge ``change`` into the record."""
        self.table.update_entity(row_of(job_id, change.fields()), mode=UpdateMode.MERGE)

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
                    row_of(job_id, fields.fields()),
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
        parameters: dict[str, Any] = {}
        if state:
            query += " and state eq @state"
            parameters["state"] = state
        pages = self.table.query_entities(query, parameters=parameters, results_per_page=limit).by_page(
            continuation_token=json.loads(continuation) if continuation else None
        )
        page: Iterator[dict[str, Any]] = next(pages, iter(()))
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
