"""`python -m bench.runs`: what runs cost and how soon their event arrives.

1. **Event latency.** A run of ``--jobs`` (200) small imports (one small image, each job to a tag of
   its own) submitted with ``POST /api/runs``, worked by ``--workers`` (4) local worker processes
   (``python -m shared.cli worker``: jobs, and each one's event loop beside them), against Azurite
   and two real registries, with a webhook receiver on loopback that checks each delivery's
   signature. Measured per run: from the last job's end (the latest ``finishedAt`` of its jobs) to
   the event's arrival at the receiver, and the two steps inside it (the last job's end to the run's
   ``endedAt``; ``endedAt`` to arrival). Repeated ``--runs`` times: p50 and p95 over them.
2. **Table operations per job.** The same kind of run, smaller (``--count-jobs``, 20), worked in
   this process with every call on the run store's table client counted, by operation.

Results: a Markdown table on stdout and bench/results/runs.json.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from functions.http import create_app
from shared.credentials import Anonymous
from shared.service.wiring import Services
from tests.conftest import Reg
from tests.harness.azurite import Azurite
from tests.harness.images import make_image, seed
from tests.harness.registry import open_registry
from tests.harness.service import drain, environment, make_services
from tests.harness.webhooks import WebhookReceiver

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
REPO = "bench/runs"


def _batch(src: str, dst: str, jobs: int, tag: str) -> dict[str, Any]:
    item = {"targetRegistry": dst, "source": {"registryUri": src, "sourceImage": f"{REPO}:v1"}}
    return {"imports": [{**item, "targetTags": [f"{REPO}:{tag}-{n}"]} for n in range(jobs)]}


def _times(svc: Services, run_id: str) -> tuple[float, float]:
    """The last job's end and the run's end, as Unix times."""
    run = svc.runs.look(run_id)
    assert run is not None and run.endedAt is not None, run
    ends = []
    for job in run.jobs:
        record = svc.statuses.get(job.id)
        assert record is not None and record.finishedAt is not None
        ends.append(record.finishedAt.timestamp())
    return max(ends), run.endedAt.timestamp()


def latency(
    env: dict[str, str], svc: Services, src: str, dst: str, args: argparse.Namespace, hook: WebhookReceiver
) -> list[dict[str, float]]:
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "worker"],
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT), "FERRY_LOG_LEVEL": "WARNING"},
            stdout=subprocess.DEVNULL,
        )
        for _ in range(args.workers)
    ]
    api, samples = TestClient(create_app(lambda: svc)), []
    try:
        for n in range(args.runs):
            started = time.time()
            answer = api.post("/api/runs", json=_batch(src, dst, args.jobs, f"r{n}"))
            assert answer.status_code == 202, answer.text
            run_id = answer.json()["id"]
            events = hook.wait_for(n + 1, timeout=args.timeout)
            assert len(events) == n + 1 and events[-1]["subject"] == run_id, "the run's event did not arrive"
            arrived = hook.requests[-1]["at"]
            last, ended = _times(svc, run_id)
            sample = {"jobs": args.jobs, "runSeconds": ended - started, "lastEndToEvent": arrived - last,
                      "lastEndToRunEnd": ended - last, "runEndToEvent": arrived - ended}  # fmt: skip
            print(f"run {n + 1}: {json.dumps({k: round(v, 3) for k, v in sample.items()})}", file=sys.stderr)
            samples.append(sample)
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            proc.wait(timeout=30)
    return samples


class Counting:
    """A table client whose calls are counted by name (what a run adds to the table)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: collections.Counter[str] = collections.Counter()

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.inner, name)
        if not callable(found):
            return found

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return found(*args, **kwargs)

        return call


def operations(svc: Services, src: str, dst: str, jobs: int) -> dict[str, Any]:
    store = svc.runs.records
    counting = Counting(store.table)
    store.table = counting  # type: ignore[assignment]  # counts the calls it passes on
    api = TestClient(create_app(lambda: svc))
    run_id = api.post("/api/runs", json=_batch(src, dst, jobs, "ops")).json()["id"]
    submitted = dict(counting.calls)
    drain(svc)
    record = store.get(run_id)
    state = record.state if record is not None else None
    total = dict(counting.calls)
    ended = {k: total[k] - submitted.get(k, 0) for k in total}
    return {"jobs": jobs, "state": state, "atSubmit": submitted, "asJobsEnd": ended,
            "perJob": round(sum(ended.values()) / jobs, 2), "atSubmitPerJob": round(sum(submitted.values()) / jobs, 2)}  # fmt: skip


def _quantiles(values: list[float]) -> tuple[float, float]:
    if len(values) == 1:
        return values[0], values[0]
    cuts = statistics.quantiles(values, n=20, method="inclusive")
    return statistics.median(values), cuts[18]


def report(samples: list[dict[str, float]], ops: dict[str, Any], args: argparse.Namespace) -> str:
    rows = ["| measure | p50 | p95 |", "|---|---|---|"]
    for key, label in (("lastEndToEvent", "last job's end → event delivered"), ("lastEndToRunEnd", "last job's end → run ended"),
                       ("runEndToEvent", "run ended → event delivered"), ("runSeconds", f"whole run ({args.jobs} imports)")):  # fmt: skip
        p50, p95 = _quantiles([s[key] for s in samples])
        rows.append(f"| {label} | {p50:.3f} s | {p95:.3f} s |")
    rows += ["", f"{args.runs} runs of {args.jobs} imports, {args.workers} worker processes, Azurite and two local registries.",
             f"Table operations a run adds per job: {ops['atSubmitPerJob']} when submitted (batched), "
             f"{ops['perJob']} as jobs end: {ops['asJobsEnd']} for {ops['jobs']} jobs."]  # fmt: skip
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.runs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--count-jobs", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        azurite = Azurite(Path(tmp) / "azurite").start()
        src, dst = open_registry(Path(tmp) / "src"), open_registry(Path(tmp) / "dst")
        hook = WebhookReceiver(SECRET).start()
        try:
            asyncio.run(seed(Reg(src, Anonymous()), REPO, make_image((1024,), seed="bench-runs")))
            env = environment(azurite, FERRY_WEBHOOK_BENCH_URL=hook.url, FERRY_WEBHOOK_BENCH_SECRET=SECRET,
                              FERRY_LEASE_SECONDS="60", FERRY_MAX_POLLING_SECONDS="0.5")  # fmt: skip
            samples = latency(env, make_services(env), src.host, dst.host, args, hook)
            ops = operations(make_services(environment(azurite)), src.host, dst.host, args.count_jobs)
        finally:
            hook.stop()
            src.stop()
            dst.stop()
            azurite.stop()
    text = report(samples, ops, args)
    print(text)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    doc = {"at": datetime.now().isoformat(timespec="seconds"), "samples": samples, "operations": ops, "table": text}
    (out / "runs.json").write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
