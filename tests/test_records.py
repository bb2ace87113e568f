"""A job's record, typed: the API's JSON for finished jobs is byte-for-byte what it was before the
record had a type (fixtures captured from the untyped code, ``tests/fixtures/records/``).

Two checks: rows as the untyped code wrote them to the table read back to exactly the JSON it
served (no process); and a job run now, through Azurite and real registries, serves JSON that is
the captured JSON once the values that differ per run (ids, hosts, times) are masked."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from shared.service.wiring import Services
from tests.conftest import Reg
from tests.harness.images import make_multiarch, seed
from tests.harness.service import drain

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "records"
#: Set to rewrite the fixtures from the code as it stands (done once, before the record was typed).
CAPTURE = os.environ.get("FERRY_CAPTURE_RECORDS") == "1"
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def _masked(text: str, values: dict[str, str]) -> str:
    for value, name in values.items():
        text = text.replace(value, f"<{name}>")
    text = TIME.sub("<time>", text)
    text = re.sub(r'"seconds": ?[0-9.e-]+', '"seconds":0', text)
    return re.sub(r'"pid": ?\d+', '"pid":0', text)


def _jobs(api: TestClient, svc: Services, open_reg: Reg, target_reg: Reg, repo: str) -> dict[str, str]:
    """One job that succeeds and one that fails; their API JSON (one, and as listed)."""
    asyncio.run(seed(open_reg, repo, make_multiarch(seed="records")))
    good = {"targetRegistry": target_reg.host, "source": {"registryUri": open_reg.host, "sourceImage": f"{repo}:v1"}}
    good["targetTags"] = [f"{repo}:copied"]
    bad = {"targetRegistry": target_reg.host, "source": {"registryUri": open_reg.host, "sourceImage": f"{repo}:none"}}
    ids = [api.post("/api/imports", json=doc).json()["id"] for doc in (good, bad)]
    drain(svc)
    out = {f"job{n}": api.get(f"/api/imports/{i}").text for n, i in enumerate(ids)}
    listed = api.get("/api/imports").json()["items"]
    out.update({f"listed{n}": json.dumps(item) for n, item in enumerate(listed)})
    out["ids"] = json.dumps(ids)
    return out


def test_a_finished_jobs_json_is_what_it_was(
    api: TestClient, svc: Services, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    served = _jobs(api, svc, open_reg, target_reg, repo)
    ids = json.loads(served.pop("ids"))
    for key in ("job0", "job1"):  # each job now names its run and who asked (#23): new fields
        added = json.loads(served[key])
        assert added["run"] and added["requestedBy"] == {"kind": "api", "name": None}
    served = {k: _before_runs(v) if k != "ids" else v for k, v in served.items()}
    values = {ids[0]: "job0", ids[1]: "job1", open_reg.host: "source", target_reg.host: "target", repo: "repo"}
    values[os.uname().nodename] = "host"
    masked = {k: _masked(v, values) for k, v in served.items()}
    if CAPTURE:
        FIXTURES.mkdir(parents=True, exist_ok=True)
        (FIXTURES / "served.json").write_text(json.dumps(masked, indent=1, sort_keys=True) + "\n")
        rows = {i: _rows(svc, i) for i in ids}
        exact = {i: {"one": served[f"job{n}"], "listed": served[f"listed{1 - n}"]} for n, i in enumerate(ids)}
        (FIXTURES / "rows.json").write_text(json.dumps({"rows": rows, "served": exact}, indent=1) + "\n")
    expected = json.loads((FIXTURES / "served.json").read_text())
    assert masked == expected


def _rows(svc: Services, job_id: str) -> dict[str, Any]:
    """The job's table rows as stored: its record and its attempts."""
    table = svc.statuses.table
    record = {k: v for k, v in dict(table.get_entity("job", job_id)).items() if k != "Timestamp"}
    query = "PartitionKey eq 'attempt' and RowKey ge @lo and RowKey lt @hi"
    found = table.query_entities(query, parameters={"lo": f"{job_id}:", "hi": f"{job_id};"})
    attempts = [{k: v for k, v in dict(e).items() if k != "Timestamp"} for e in found]
    return {"record": record, "attempts": attempts}


def test_rows_written_before_the_record_was_typed_read_back_to_the_same_json() -> None:
    from shared.azure_storage.store import attempt_of, record_of
    from shared.service.models import status_of

    captured = json.loads((FIXTURES / "rows.json").read_text())
    for job_id, rows in captured["rows"].items():
        record = record_of(rows["record"])
        attempts = [attempt_of(a) for a in rows["attempts"]]
        served = captured["served"][job_id]
        assert _compact(status_of(record, attempts).model_dump_json(exclude=set(ADDED))) == _compact(served["one"])
        assert _compact(status_of(record).model_dump_json(exclude=set(ADDED))) == _compact(served["listed"])


#: Fields the API's JSON gained after the fixtures were captured (#23: a job's run, who asked).
ADDED = ("run", "requestedBy")


def _before_runs(text: str) -> str:
    """The JSON without the fields added since the capture, in the same form."""
    doc = json.loads(text)
    for key in ADDED:
        doc.pop(key, None)
    compact = '": ' not in text  # the API's own answer; else json.dumps of a listed item
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False) if compact else json.dumps(doc)


def _compact(text: str) -> str:
    return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
