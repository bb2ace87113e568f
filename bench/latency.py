"""`make latency`: the service's own overhead, as a number. On `make up`'s stack (a subprocess on
free ports, one worker), the time from `POST /api/imports` to the job observed `succeeded` for
a small image (3 layers of 1 MiB, into a fresh repository each time), beside the engine's own
seconds (the job's `result.seconds`) and `skopeo copy` of the same image in the same run.

Two ways in: `idle` waits `--gap` seconds and a random part of one more (default 3, longer than
the worker's longest wait between polls; the random part keeps the imports from falling in step
with the polls) before each import, so each lands on a worker that has backed off; `busy` posts
each import as soon as the last one succeeded. Each job is split by its own record: `queue`
(created → picked up), `engine`, and the rest (`status`: the writes around the run and the
client's poll, every 10 ms). Results: a Markdown table on stdout, bench/results/latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

from shared.credentials import Secret, UsernamePassword
from shared.registry import RegistryClient, TransportOptions
from tests.harness.images import make_image, push_image
from tests.harness.registry import free_port
from tests.harness.skopeo import copy_command

ROOT = Path(__file__).resolve().parent.parent
REPO = "bench/small"


def _stack(data: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    ports = {name: str(free_port()) for name in ("FERRY_PORT", "FERRY_DEV_PORT", "FERRY_PROD_PORT")}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FERRY_WORKERS": "1", "FERRY_DATA_DIR": str(data),
           "FERRY_LOCAL_SETTINGS": str(data / "local.settings.json"), **ports}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "scripts.up"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout or ():
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline, seen = time.monotonic() + 120, ""
    while "worker polling queue" not in seen:
        if time.monotonic() > deadline:
            proc.terminate()
            raise SystemExit(f"make up did not come up:\n{seen}")
        try:
            seen += lines.get(timeout=0.5)
        except queue.Empty:
            continue
    return proc, ports


async def _seed(dev: str) -> None:
    image = make_image((1 << 20, 1 << 20, 1 << 20), seed="latency")
    async with RegistryClient(
        dev, UsernamePassword("dev", Secret("dev-local-password")), TransportOptions(allow_loopback=True)
    ) as c:
        await push_image(c, REPO, image, "1")


def _when(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def one(api: httpx.Client, dev: str, prod: str, n: int) -> dict[str, float]:
    doc = {"targetRegistry": prod, "source": {"registryUri": dev, "sourceImage": f"{REPO}:1", "credential": "dev"},
           "targetTags": [f"bench/run{n}-{time.time_ns()}:1"]}  # fmt: skip
    started = time.perf_counter()
    job = api.post("/api/imports", json=doc).json()
    while True:
        status = api.get(job["location"]).json()
        if status["state"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.01)
    total = time.perf_counter() - started
    if status["state"] != "succeeded":
        raise SystemExit(f"import {n} {status['state']}: {status.get('error')}")
    engine = float(status["result"]["seconds"])
    queued = _when(status["attempts"][-1]["startedAt"]) - _when(status["createdAt"])
    return {"total": total, "engine": engine, "queue": queued, "status": total - engine - queued}


def skopeo_seconds(dev: str, prod: str, runs: int) -> list[float]:
    out = []
    for n in range(runs):
        cmd = copy_command(f"{dev}/{REPO}:1", f"{prod}/bench/skopeo{n}-{time.time_ns()}:1", "dev:dev-local-password")
        started = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        out.append(time.perf_counter() - started)
    return out


def _q(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


def table(results: dict[str, list[dict[str, float]]], skopeo: list[float]) -> str:
    rows = [
        "| mode | imports | POST → succeeded p50 s | p95 s | queue wait p50 s | engine p50 s | status and polling p50 s "
        "| service overhead p50 s | skopeo copy p50 s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, samples in results.items():
        col = {k: [s[k] for s in samples] for k in samples[0]}
        overhead = [s["total"] - s["engine"] for s in samples]
        rows.append(
            f"| {mode} | {len(samples)} | {_q(col['total'], 50):.3f} | {_q(col['total'], 95):.3f} | "
            f"{_q(col['queue'], 50):.3f} | {_q(col['engine'], 50):.3f} | {_q(col['status'], 50):.3f} | "
            f"{_q(overhead, 50):.3f} | {statistics.median(skopeo):.3f} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--imports", type=int, default=50)
    parser.add_argument("--gap", type=float, default=3.0, help="seconds before each idle-mode import")
    parser.add_argument("--modes", default="idle,busy")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ferry-latency-") as tmp:
        proc, ports = _stack(Path(tmp))
        try:
            dev, prod = f"127.0.0.1:{ports['FERRY_DEV_PORT']}", f"127.0.0.1:{ports['FERRY_PROD_PORT']}"
            asyncio.run(_seed(dev))
            results: dict[str, list[dict[str, float]]] = {}
            rng = random.Random(16)
            with httpx.Client(base_url=f"http://127.0.0.1:{ports['FERRY_PORT']}", timeout=30) as api:
                for n in range(3):  # warm-up: imports, connections, the worker's first job
                    one(api, dev, prod, -n - 1)
                for mode in args.modes.split(","):
                    results[mode] = []
                    for n in range(args.imports):
                        if mode == "idle":
                            time.sleep(args.gap + rng.random())
                        results[mode].append(one(api, dev, prod, n))
            skopeo = skopeo_seconds(dev, prod, 10)
        finally:
            proc.send_signal(2)
            proc.wait(30)
    print(table(results, skopeo))
    out = ROOT / "bench" / "results" / "latency.json"
    out.write_text(json.dumps({"results": results, "skopeo": skopeo, "args": vars(args)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
