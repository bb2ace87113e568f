"""Many import jobs from a fake Docker Hub with a small pull limit, run by several worker
processes that share one pull budget (the status table in Azurite): the test of #26 and its
benchmark (``bench/hub.py``) both run this.

Each job imports a single-platform image, which costs exactly one pull (its manifest ``GET``; the
``HEAD`` that resolves the tag is free). Figures: jobs succeeded and failed, pulls the fake Hub let
through and refused (429), the most pulls it saw in any one window, jobs that waited and how many
waits, and the time taken against the ideal (the windows the pulls need at the budget's rate).
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.importing.request import ImportRequest
from shared.registry import RegistryClient, TransportOptions
from shared.service.wiring import Services, build
from shared.settings import Settings
from tests.harness.azurite import Azurite
from tests.harness.fakehub import FakeHub
from tests.harness.images import make_image, push_image
from tests.harness.processes import ROOT, start_worker, stop_process
from tests.harness.registry import RegistryProcess

LOCAL = TransportOptions(allow_loopback=True)
IMAGES = 10


@dataclass
class HubLoad:
    jobs: int
    workers: int
    limit: int
    window: float
    reserve: int


async def seed(host: str) -> None:
    async with RegistryClient(host, options=LOCAL) as client:
        for i in range(IMAGES):
            await push_image(client, f"hub/app{i}", make_image((2_000,), seed=f"hub-{i}"), "v1")


def environment(azurite: Azurite, reserve: int, suffix: str) -> dict[str, str]:
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "FERRY_QUEUE": f"q{suffix}",
        "FERRY_TABLE": f"t{suffix}",
        "FERRY_ALLOW_LOOPBACK": "true",
        "FERRY_RETRY_DELAY_SECONDS": "1",
        "FERRY_LEASE_SECONDS": "30",
        "FERRY_RATELIMIT_FLOOR": str(reserve),
    }


def submit_all(svc: Services, hub: FakeHub, target: RegistryProcess, jobs: int) -> list[str]:
    ids = []
    for n in range(jobs):
        request = ImportRequest.model_validate(
            {
                "targetRegistry": target.host,
                "source": {"registryUri": hub.host, "sourceImage": f"hub/app{n % IMAGES}:v1"},
                "targetTags": [f"jobs/j{n}:v1"],
                "mode": "Force",
            }
        )
        ids.append(svc.submitter.submit(request)[0].id)
    return ids


def wait_all(svc: Services, ids: list[str], deadline: float) -> dict[str, Any]:
    pending, done = set(ids), {}
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            record = svc.statuses.get(job_id)
            if record is not None and record.state in ("succeeded", "failed", "cancelled"):
                done[job_id] = record
                pending.discard(job_id)
        time.sleep(0.5)
    return done


def run(
    load: HubLoad, azurite: Azurite, source: RegistryProcess, target: RegistryProcess, work: Path
) -> dict[str, Any]:
    """Run ``load`` and return its figures. Worker logs go to ``work/worker.log``."""
    asyncio.run(seed(source.host))
    hub = FakeHub("127.0.0.1", source.port, limit=load.limit, window=load.window).start()
    env = environment(azurite, load.reserve, os.urandom(5).hex())
    svc = build(Settings.from_env(env))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ids = submit_all(svc, hub, target, load.jobs)
        started = time.monotonic()
        child_env = {**os.environ, "PYTHONPATH": str(ROOT), **env, "FERRY_LOG_LEVEL": "INFO"}
        procs = [start_worker(child_env, work / "worker.log") for _ in range(load.workers)]
        done = wait_all(svc, ids, started + 600)
        elapsed = time.monotonic() - started
        attempts = {job_id: svc.statuses.attempts(job_id) for job_id in ids}
    finally:
        for proc in procs:
            stop_process(proc, timeout=20)
        hub.stop()
    return figures(load, hub, done, attempts, elapsed)


def figures(
    load: HubLoad, hub: FakeHub, done: dict[str, Any], attempts: dict[str, list[Any]], elapsed: float
) -> dict[str, Any]:
    pulls = sum(hub.pulls.values())
    per_window = load.limit - min(load.reserve, load.limit - 1)
    ideal = (math.ceil(pulls / per_window) - 1) * load.window if pulls else 0.0
    waits = {j: sum(a.outcome == "waiting" for a in rows) for j, rows in attempts.items()}
    failed_for_limit = [
        j for j, rows in attempts.items() if any(a.outcome == "failed" and a.code == "TOOMANYREQUESTS" for a in rows)
    ]
    return {
        "jobs": load.jobs, "workers": load.workers,
        "limit": f"{load.limit} pulls per {load.window:g} s, {load.reserve} in reserve",
        "succeeded": sum(r.state == "succeeded" for r in done.values()),
        "failed": sum(r.state == "failed" for r in done.values()),
        "unfinished": load.jobs - len(done),
        "failedAttemptsForTheLimit": len(failed_for_limit),
        "pulls": pulls, "refusedByTheLimit": sum(hub.refused.values()),
        "mostPullsInAnyWindow": hub.most_in_any_window(), "heads": hub.heads,
        "jobsThatWaited": sum(1 for n in waits.values() if n), "waits": sum(waits.values()),
        "seconds": round(elapsed, 1), "idealSeconds": round(ideal, 1),
        "example": next(([a.model_dump(mode="json") for a in rows] for rows in attempts.values()
                         if any(a.outcome == "waiting" for a in rows)), None),
    }  # fmt: skip
