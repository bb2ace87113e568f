"""The status page's first paint with a real history: 10,000 jobs in the status table.

On `make up`'s stack without registries or workers (Azurite and the API under uvicorn,
`functions.local:app`, on free loopback ports: nothing changes the table while it is measured),
the table is filled with 10,000 job records (9,000 succeeded, 700 failed of which 300 in the last
day, 200 queued, 100 running with progress), then Debian's chromium (Playwright, the tests' flags)
opens `/api/control` afresh for each view, `--runs` times. Two figures per view, from the page's
own performance timeline: first contentful paint (the page's frame: it needs no storage) and the
moment the view's data is on screen (`performance.mark("ferry:data")`, set by the page's first
successful refresh: the API's paged reads from the table). Results: a Markdown table on stdout,
bench/results/page.json.

    .venv/bin/python -m bench.page [--jobs 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from shared.azure_storage.records import Attempt, JobError, JobRecord, now
from shared.azure_storage.store import StatusStore, StorageConfig, new_job_id, row_of
from shared.engine.progress import Progress
from shared.importing.result import BlobCounts, ResultDocument
from tests.harness.azurite import Azurite
from tests.harness.browser import DESKTOP, Watched, chromium
from tests.harness.registry import free_port

ROOT = Path(__file__).resolve().parent.parent
VIEWS = ("now", "jobs", "failures", "rules")


def _record(i: int, jobs: int) -> JobRecord:
    at = now() - timedelta(seconds=(jobs - i) * 20)  # a job every 20 s: 10,000 jobs over two days
    state = (
        "succeeded" if i < jobs * 0.9 else "failed" if i < jobs * 0.97 else "queued" if i < jobs * 0.99 else "running"
    )
    record = JobRecord(id=new_job_id(at.timestamp()), state=state, createdAt=at, updatedAt=at, attemptCount=1,
                       source=f"docker.io/library/app{i % 50}:{i}", targets=[f"prodacr.azurecr.io/app{i % 50}:{i}"])  # fmt: skip
    if state != "queued":
        record.startedAt = at
        record.lastAttempt = Attempt(number=1, startedAt=at, outcome="running" if state == "running" else state)
    if state in ("succeeded", "failed"):
        record.finishedAt = at + timedelta(seconds=2)
    if state == "failed":
        codes = ("NOT_FOUND", "DENIED", "RATE_LIMITED", "UNAVAILABLE")
        record.error = JobError(code=codes[i % 4], message=f"source registry docker.io: app{i % 50} failed ({i})")
    if state == "succeeded":
        blobs = BlobCounts(total=3, copied=3, mounted=0, present=0, foreign=0)
        record.result = ResultDocument(digest="sha256:" + "a" * 64, bytes=1 << 20, blobs=blobs)
    if state == "running":
        done = Progress(blobs_total=10, bytes_total=100 << 20, blobs_copied=i % 10, bytes_moved=(i % 100) << 20)
        record.progress = done.snapshot()
    return record


def fill(store: StatusStore, jobs: int) -> float:
    """Insert ``jobs`` records in batches of 100 (one partition, one transaction each)."""
    started = time.monotonic()
    rows = [row_of(r.id, r) for r in (_record(i, jobs) for i in range(jobs))]
    for at in range(0, len(rows), 100):
        store.table.submit_transaction([("upsert", row) for row in rows[at : at + 100]])
    return time.monotonic() - started


def _api(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "functions.local:app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning"], cwd=ROOT, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the API did not come up")


def measure(url: str, runs: int, shots: Path) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {}
    with chromium() as browser:
        for view in VIEWS:
            figures: dict[str, list[float]] = {"fcp": [], "data": []}
            for _ in range(runs):
                watched = Watched(browser, DESKTOP, shots)
                watched.page.goto(f"{url}/api/control#{view}")
                watched.page.wait_for_selector("#live:not(:text('…'))", timeout=60_000)
                timing: Any = watched.page.evaluate(
                    "[performance.getEntriesByName('first-contentful-paint')[0]?.startTime,"
                    " performance.getEntriesByName('ferry:data')[0]?.startTime]"
                )
                figures["fcp"].append(float(timing[0] or 0))
                figures["data"].append(float(timing[1] or 0))
                assert not watched.errors, watched.errors
                watched.close()
            out[view] = figures
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ferry-page-") as tmp:
        azurite = Azurite(Path(tmp) / "azurite").start()
        try:
            env = {**os.environ, "PYTHONPATH": str(ROOT), "AzureWebJobsStorage": azurite.connection_string,
                   "FERRY_ALLOW_LOOPBACK": "true", "FERRY_RULES_FILE": str(ROOT / "rules.example.yaml")}  # fmt: skip
            store = StatusStore(StorageConfig(connection_string=azurite.connection_string))
            store.ensure()
            filled = fill(store, args.jobs)
            port = free_port()
            api = _api(env, port)
            try:
                results = measure(f"http://127.0.0.1:{port}", args.runs, Path(tmp))
            finally:
                api.terminate()
                api.wait(10)
        finally:
            azurite.stop()
    print(f"{args.jobs} jobs in the table (filled in {filled:.1f} s); {args.runs} runs per view, milliseconds\n")
    print("| view | first contentful paint p50 | max | data on screen p50 | max |\n|---|---|---|---|---|")
    for view, f in results.items():
        print(f"| {view} | {statistics.median(f['fcp']):.0f} | {max(f['fcp']):.0f} | "
              f"{statistics.median(f['data']):.0f} | {max(f['data']):.0f} |")  # fmt: skip
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "page.json").write_text(json.dumps({"jobs": args.jobs, "runs": args.runs, "views": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
