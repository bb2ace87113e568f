"""Every JSON document and table row a job or a run is kept as has one typed shape, named where
it is made (#21): a newcomer reads the field names and their types, not guesses at keys. These
tests keep each shape true to the value it describes, and show that a row is checked as it is
made (a field a record gains cannot go unwritten), while a record keeps its documents as they
were written."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from azure.data.tables import TableEntity
from pydantic import ValidationError

from shared.azure_storage.records import Attempt, JobChange, JobRecord, WorkerInstance
from shared.azure_storage.rules import RulePass
from shared.azure_storage.runrows import RunJobRow, RunRow, header_row, job_row
from shared.azure_storage.store import AttemptRow, JobRow, attempt_of, attempt_row, record_of, row_of
from shared.engine.progress import Progress, Snapshot
from shared.importing.result import BlobCounts, ImportResult, ResultDocument
from shared.runs.model import Counts, RunChange, StoredEvent, StoredJob, Trigger
from shared.verify.report import FindingReport, VerdictReport

AT = datetime(2026, 12, 1, 8, 30, 15, 123456, tzinfo=UTC)
ROW_KEYS = {"PartitionKey", "RowKey"}


def test_the_result_document_names_every_field_of_the_result_in_its_order() -> None:
    fields = [f.name for f in dataclasses.fields(ImportResult)]
    assert list(ResultDocument.__annotations__) == [*fields, "uploadSessionsLeft"]


def test_a_result_document_is_the_fields_set_in_order() -> None:
    result = ImportResult(source="a.io/x:1", digest="sha256:" + "e" * 64, bytes=5, seconds=1.5, targets=["b.io/x:1"])
    result.blobs = BlobCounts(total=2, copied=1, mounted=0, present=1, foreign=0)
    doc = result.document()
    assert list(doc) == ["source", "digest", "targets", "blobs", "bytes", "seconds"]
    assert doc["blobs"]["copied"] == 1 and result.summary() == "a.io/x:1 -> b.io/x:1 (5 bytes, 1 blobs copied, 1.5 s)"


def test_the_progress_snapshot_is_its_shape() -> None:
    snap = Progress(blobs_total=3, bytes_moved=7).snapshot()
    assert list(snap) == list(Snapshot.__annotations__) and snap["bytesMoved"] == 7


def test_a_verdict_report_names_what_the_verifier_writes() -> None:
    assert set(VerdictReport.__annotations__) == {
        "policy", "mode", "digest", "satisfied", "verified", "warning", "error", "note"
    }  # fmt: skip
    assert set(FindingReport.__annotations__) == {
        "authority", "format", "signer", "signature", "subject", "predicateType"
    }  # fmt: skip


def test_a_job_row_has_a_column_for_every_field_of_a_record() -> None:
    assert set(JobRow.__annotations__) - ROW_KEYS == set(JobChange.model_fields)
    assert set(AttemptRow.__annotations__) - ROW_KEYS == set(Attempt.model_fields)


def test_a_run_row_has_a_column_for_every_field_of_a_run() -> None:
    expected = (set(RunChange.model_fields) - {"counts"}) | set(Counts.model_fields)
    assert set(RunRow.__annotations__) - ROW_KEYS == expected
    assert set(RunJobRow.__annotations__) - ROW_KEYS == set(StoredJob.model_fields) - {"id"}


def test_a_field_a_record_gains_without_a_column_is_refused_as_the_row_is_made() -> None:
    class Grown(JobChange):
        reviewedBy: str | None = None

    with pytest.raises(ValidationError, match="reviewedBy"):
        row_of("j1", Grown(state="running", reviewedBy="alice"))


def test_a_whole_record_and_its_attempt_go_to_rows_and_back() -> None:
    attempt = Attempt(number=2, startedAt=AT, outcome="succeeded", bytes=9, worker=WorkerInstance(host="h", pid=1))
    result = ResultDocument(source="a.io/x:1", bytes=9)
    record = JobRecord(id="j1", createdAt=AT, updatedAt=AT, lastAttempt=attempt, result=result, targets=["b.io/x:1"])
    row = row_of("j1", record, whole=True)
    assert row["state"] == "queued" and row["progress"] == "" and json.loads(row["result"]) == result
    assert record_of(TableEntity(row)) == record
    stored = attempt_row("j1", attempt)
    assert stored["RowKey"] == "j1:0002" and json.loads(stored["worker"]) == {"host": "h", "pid": 1}
    assert attempt_of(TableEntity(stored)) == attempt


def test_a_merge_writes_only_what_it_sets_and_clears_with_an_empty_string() -> None:
    row = row_of("j1", JobChange(state="failed", progress=None, attemptCount=3))
    assert row == {"PartitionKey": "job", "RowKey": "j1", "state": "failed", "attemptCount": 3, "progress": ""}


def test_a_record_keeps_its_documents_as_they_were_written() -> None:
    """A row from older code (keys in another order, one this version does not know) reads back
    and shows exactly as it was."""
    text = '{"seconds": 2, "source": "a.io/x:1", "retired": [1], "bytes": 4}'
    record = JobRecord.model_validate({"id": "j1", "result": json.loads(text), "verification": [{"z": 1}]})
    shown = record.model_dump_json(include={"result", "verification"})
    assert shown == '{"result":' + text.replace(": ", ":").replace(", ", ",") + ',"verification":[{"z":1}]}'
    with pytest.raises(ValidationError, match="valid dictionary"):
        JobRecord.model_validate({"id": "j1", "result": [1]})


def test_run_rows_are_checked_as_they_are_made() -> None:
    change = RunChange(state="running", kind="batch", trigger=Trigger(type="api"), counts=Counts(total=2), createdAt=AT)
    change.event = StoredEvent(id="e1", type="ferry.run.succeeded")
    row = header_row("r1", change)
    assert row["total"] == 2 and row["createdAt"] == AT.isoformat() and json.loads(row["trigger"]) == {"type": "api"}
    job = job_row("r1", StoredJob(id="j1", targets=["b.io/x:1"], n=3))
    assert job["RowKey"] == "job-j1" and job["targets"] == '["b.io/x:1"]' and job["n"] == 3


def test_a_rule_pass_names_what_a_pass_writes() -> None:
    assert set(RulePass.__annotations__) == {
        "kind", "selected", "upToDate", "jobs", "deferred", "lastPush", "lastPass", "lastSuccess", "behindSince"
    }  # fmt: skip
