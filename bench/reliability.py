"""`make reliability`: Ferry under load and faults, with figures, written to bench/RELIABILITY.md.

1. Load: N import jobs (default 200) through the HTTP API (uvicorn) to 4 worker processes
   (`python -m shared.cli worker`), against Azurite and two local registries. A mix of images
   (single-platform and multi-arch, sharing layers); a quarter of the jobs target one of a few
   shared tags. Checks: every job ends in a terminal state, none lost or run twice, each shared
   tag ends on the image of the newest job that asked for it. Reports jobs per minute and the
   p50/p95 job latency (queued to finished).
2. The fault and hostile-input tests (tests/test_faults.py, test_reliability.py, test_hostile.py,
   test_hostile_registry.py, test_exchange.py, the h11 oracle, schemathesis, test_service.py's
   retry/poison/SIGTERM cases), run here, with their outcome and duration; the hostile
   registries as a table (CLI seconds and peak RSS, the worker's code and attempts) and the
   SSRF refusals as a list.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from shared.registry import RegistryClient, TransportOptions
from tests.harness.azurite import Azurite
from tests.harness.images import make_image, make_multiarch, push_image
from tests.harness.processes import start_api, start_worker, stop_process
from tests.harness.registry import open_registry

ROOT = Path(__file__).resolve().parent.parent
LOCAL = TransportOptions(allow_loopback=True)


async def seed(host: str, images: int) -> list[tuple[str, str]]:
    """(repository, digest) of ``images`` images, half multi-arch; shared layers across them."""
    out = []
    async with RegistryClient(host, options=LOCAL) as client:
        for i in range(images):
            image: Any = (
                make_multiarch(["linux/amd64", "linux/arm64"], layer_sizes=(200_000, 300_000), seed=f"load-{i % 3}-{i}")
                if i % 2
                else make_image((100_000, 150_000), seed=f"load-{i}")
            )
            repo = f"load/app{i}"
            out.append((repo, str(await push_image(client, repo, image, "v1"))))
    return out


def load(jobs: int, workers: int, work: Path) -> dict[str, Any]:
    azurite = Azurite(work / "azurite").start()
    source, target = open_registry(work, "source"), open_registry(work, "target")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        images = asyncio.run(seed(source.host, 20))
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "AzureWebJobsStorage": azurite.connection_string,
            "FERRY_ALLOW_LOOPBACK": "true",
            "FERRY_RETRY_DELAY_SECONDS": "1",
            "FERRY_LEASE_SECONDS": "30",
        }
        api_proc, api = start_api(env, work / "api.log")
        procs.append(api_proc)
        rng = random.Random(7)
        submitted: list[dict[str, Any]] = []
        newest_for_tag: dict[str, str] = {}
        started = time.monotonic()
        with httpx.Client(timeout=30) as http:
            for n in range(jobs):
                repo, digest = rng.choice(images)
                shared_tag = n % 4 == 0
                tag = f"shared/t{n % 5}:live" if shared_tag else f"jobs/j{n}:v1"
                doc = {
                    "targetRegistry": target.host,
                    "source": {"registryUri": source.host, "sourceImage": f"{repo}:v1"},
                    "targetTags": [tag],
                    "mode": "Force",
                }
                job = http.post(f"{api}/api/imports", json=doc).json()
                submitted.append({"id": job["id"], "tag": tag, "digest": digest})
                if shared_tag:
                    newest_for_tag[tag] = digest
            for _ in range(workers):
                procs.append(start_worker(env, work / "worker.log"))
            deadline = time.monotonic() + 1800
            states: dict[str, dict[str, Any]] = {}
            while time.monotonic() < deadline:
                for job in submitted:
                    if job["id"] not in states or states[job["id"]]["state"] not in ("succeeded", "failed"):
                        states[job["id"]] = http.get(f"{api}/api/imports/{job['id']}").json()
                if all(s["state"] in ("succeeded", "failed") for s in states.values()):
                    break
                time.sleep(1)
        elapsed = time.monotonic() - started

        async def tags() -> dict[str, str]:
            async with RegistryClient(target.host, options=LOCAL) as client:
                return {t: str((await client.resolve(t.split(":")[0], "live")).digest) for t in newest_for_tag}

        final = asyncio.run(tags())
        latencies = sorted(
            (datetime.fromisoformat(s["finishedAt"]) - datetime.fromisoformat(s["createdAt"])).total_seconds()
            for s in states.values()
            if s.get("finishedAt")
        )
        return {
            "jobs": jobs, "workers": workers,
            "succeeded": sum(s["state"] == "succeeded" for s in states.values()),
            "failed": sum(s["state"] == "failed" for s in states.values()),
            "lost": jobs - len([s for s in states.values() if s["state"] in ("succeeded", "failed")]),
            "ranTwice": sum(s.get("attemptCount", 0) > 1 for s in states.values()),
            "sharedTagsRight": sum(final[t] == d for t, d in newest_for_tag.items()), "sharedTags": len(newest_for_tag),
            "seconds": round(elapsed, 1), "jobsPerMinute": round(jobs / elapsed * 60, 1),
            "p50": round(statistics.median(latencies), 2) if latencies else None,
            "p95": round(latencies[int(len(latencies) * 0.95) - 1], 2) if latencies else None,
        }  # fmt: skip
    finally:
        for proc in procs:
            stop_process(proc, timeout=20)
        source.stop()
        target.stop()
        azurite.stop()


FAULT_TESTS = [
    "tests/test_reliability.py",
    "tests/test_faults.py",
    "tests/test_hostile.py",
    "tests/test_malicious.py",
    "tests/test_fault_imports.py",
    "tests/test_hostile_registry.py",
    "tests/test_exchange.py",
    "tests/test_wire_oracle.py",
    "tests/test_api_schema.py",
    "tests/test_service.py::test_retryable_failure_succeeds_on_second_delivery",
    "tests/test_service.py::test_poison_after_five_deliveries",
    "tests/test_job_control.py",
    "tests/test_service.py::test_local_worker_releases_its_message_on_sigterm",
    "tests/test_service.py::test_the_newest_job_for_a_tag_wins_whatever_finishes_last",
    "tests/test_import.py::test_corrupting_proxy_fails_and_leaves_the_tag",
    "tests/test_import.py::test_connection_cut_mid_blob_completes_without_resending",
    "tests/test_stop.py",
]
#: What each of FAULT_TESTS is, where its name does not say.
NAMED = {"tests/test_api_schema.py": " (schemathesis: the API against its OpenAPI document)"}


def faults(figures_file: Path) -> list[tuple[str, str, float]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FERRY_RELIABILITY_OUT": str(figures_file)}
    out = []
    for target in FAULT_TESTS:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", target],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        summary = (done.stdout.strip().splitlines() or ["?"])[-1]
        out.append((target, summary, round(time.monotonic() - started, 1)))
    return out


_CLI, _WORKER, _SSRF = "hostile registry (CLI): ", "hostile registry (worker): ", "SSRF refused: "


def _hostile_table(figures: list[dict[str, Any]]) -> list[str]:
    """One row per hostile registry: the CLI's outcome, seconds, peak RSS, requests; the worker's."""
    worker = {f["scenario"].removeprefix(_WORKER): f for f in figures if f["scenario"].startswith(_WORKER)}
    rows = [
        "| case | outcome | CLI s | CLI peak RSS MiB | requests | worker | worker attempts |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for f in figures:
        if not f["scenario"].startswith(_CLI):
            continue
        name = f["scenario"].removeprefix(_CLI)
        w = worker.get(name, {})
        rows.append(
            f"| {name} | {f['outcome']} | {f['seconds']} | {f['peakRssMiB']} | {f['requests']} | "
            f"{w.get('outcome', '—')} | {w.get('attempts', '—')} |"
        )
    return rows


def _ssrf_lines(figures: list[dict[str, Any]]) -> list[str]:
    return [
        f"- `{f['scenario'].removeprefix(_SSRF)}`: {f['reason']}" for f in figures if f["scenario"].startswith(_SSRF)
    ]


BOUNDS = [
    "| bound | default | setting |",
    "|---|---|---|",
    "| body of a challenge, token, redirect, 401 or error answer (any status from 300 up, a blob `GET`'s too) "
    "| 64 KiB (cut there, the connection closed); a cancelled upload's answer is not read | — |",
    "| manifest | 4 MiB | — |",
    "| page of a tag list or of referrers | 4 MiB; 1,000 pages; 200,000 tags | — |",
    "| stall floor | 32 KiB/s over any 30 s spent waiting on the peer | `FERRY_STALL_FLOOR_BYTES`, "
    "`FERRY_STALL_WINDOW_SECONDS` |",
    "| informational (1xx) answers | 5, all within one read timeout (60 s) | — |",
    "| descriptors per import | 20,000 (manifests, configs and layers) | `FERRY_MAX_DESCRIPTORS` |",
    "| manifests per import | 50 | `FERRY_MAX_MANIFESTS` |",
    "| attempts per operation | 5 within 120 s, full jitter, `Retry-After` as a floor | `FERRY_RETRY_ATTEMPTS`, "
    "`FERRY_RETRY_BUDGET_SECONDS` |",
    "| deliveries per job | 5 (queue redelivery, the only loop outside an operation) | `FERRY_MAX_DEQUEUE_COUNT` |",
    "| a cancel reaching a running job, or Ctrl-C | looked for every 1 s (a cancel); every upload body ends at "
    "once and its session is deleted; 2.5 s later the engine is cancelled outright (a second Ctrl-C: at once); "
    "once the tags are moving, neither: the import finishes | — (`CANCEL_CHECK`, `shared.stopping.GRACE`) |",
    "| an answer of the Ferry service to the CLI (`--service`, `ferry jobs`) | 4 MiB, within 60 s, each read "
    "within 30 s | — |",
    "| wait between polls of an empty queue (local worker) | 0.1 s doubling to 0.5 s, as host.json's "
    "`maxPollingInterval` | `FERRY_MAX_POLLING_SECONDS` |",
]


def _figure_line(figures: dict[str, Any]) -> str:
    figures = dict(figures)
    scenario, test = figures.pop("scenario"), figures.pop("test", "")
    line = f"- **{scenario}**: " + ", ".join(f"{k} {v}" for k, v in figures.items())
    return line + (f" — `.venv/bin/python -m pytest '{test}'`" if test else "")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ferry-reliability-") as tmp:
        figures = load(args.jobs, args.workers, Path(tmp))
    figures_file = Path(tempfile.mkstemp(prefix="ferry-figures-")[1])
    outcomes = faults(figures_file)
    recorded = [json.loads(line) for line in figures_file.read_text().splitlines() if line.strip()]
    figures_file.unlink()
    special = (_CLI, _WORKER, _SSRF)
    scenario_figures = [f for f in recorded if not f["scenario"].startswith(special)]
    lines = [
        "# Reliability", "",
        f"Regenerated by `make reliability` on {datetime.now().strftime('%Y-%m-%d %H:%M')} (2 cores).", "",
        f"## Load: {figures['jobs']} jobs through the HTTP API, {figures['workers']} worker processes", "",
        "| jobs | succeeded | failed | lost | ran twice | shared tags on the newest job's image | seconds | jobs/min | p50 s | p95 s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {figures['jobs']} | {figures['succeeded']} | {figures['failed']} | {figures['lost']} | {figures['ranTwice']} | "
        f"{figures['sharedTagsRight']}/{figures['sharedTags']} | {figures['seconds']} | {figures['jobsPerMinute']} | "
        f"{figures['p50']} | {figures['p95']} |", "",
        "Latency is queued to finished, so it includes the time a job waited in the queue behind the others "
        "(all jobs are submitted before the workers start).", "",
        "## Fault figures", "",
        "Each scenario's figures as its test measured them in this run, and the command that runs it alone.", "",
        *[_figure_line(f) for f in scenario_figures], "",
        "## Hostile registries", "",
        "Each case is a raw answer from a registry on loopback (tests/test_hostile_registry.py), through the CLI "
        "(a process of its own: one JSON document, no traceback, exit code) and through the worker (the job's "
        "code; a failure worth retrying is retried, to the last of 2 deliveries here). Limits are set small by "
        "settings (stall window 1 s, 2 attempts) so each case ends in seconds; the defaults are below.", "",
        *_hostile_table(recorded), "",
        "## SSRF: destinations refused", "",
        "Refused at validation and again where each connection is made (the addresses a name resolves to), "
        "also through a proxy (literal addresses in every `inet_aton` spelling):", "",
        *_ssrf_lines(recorded), "",
        "## Bounds", "", *BOUNDS, "",
        "So one import makes at most 5 attempts of each operation within 120 s, and a job at most 5 deliveries.", "",
        "## Faults and hostile input", "", "| tests | outcome | seconds |", "|---|---|---:|",
        *[f"| `{t}`{NAMED.get(t, '')} | {s} | {d} |" for t, s, d in outcomes], "",
        "## How an upload ends on a stop", "",
        "A blob over 1 MiB streams in one `PATCH` of no stated length, then a bodyless `PUT ?digest=`. Asked to "
        "stop (Ctrl-C, a cancel), that body ends at once, even while its source is slow; the registry answers it "
        "and the session is deleted (`DELETE`). A blob of up to 1 MiB is read whole first (a stop ends that wait "
        "and deletes its session, which holds nothing yet), then sent from memory in one `PUT` of stated length, "
        "which a stop lets finish: milliseconds, into a blob no manifest references (garbage collection removes "
        "it), as does a finishing `PUT` already sent. No stop leaves a session holding data. A session a registry would not delete is named, without its "
        "query, in the CLI's output and in the job's `result.uploadSessionsLeft`. Once the import commits (right "
        "before its first tag moves) a stop waits for the last tag (tests/test_stop.py).", "",
        "Reproduce: `make reliability` (or `PYTHONPATH=. .venv/bin/python -m bench.reliability --jobs 200 --workers 4`).", "",
    ]  # fmt: skip
    (ROOT / "bench" / "RELIABILITY.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return (
        0
        if figures["lost"] == 0 and figures["failed"] == 0 and figures["sharedTagsRight"] == figures["sharedTags"]
        else 1
    )


if __name__ == "__main__":
    sys.exit(main())
