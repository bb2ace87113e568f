"""Faults around the service: a worker killed mid-import, and Azurite restarted with jobs queued."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bench.fixtures import Layer
from functions.http import create_app
from shared.oci import mediatypes as mt
from shared.oci.digest import Digest
from shared.oci.manifest import Descriptor
from tests.conftest import Reg
from tests.harness.azurite import Azurite
from tests.harness.faultproxy import FaultProxy, Rule
from tests.harness.figures import record
from tests.harness.images import make_multiarch, seed
from tests.harness.service import drain, environment, make_services

pytestmark = pytest.mark.process  # every test here starts a process

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


async def push_big(reg: Reg, repo: str, layers: int, size: int) -> tuple[str, list[str]]:
    """An image of ``layers`` random layers of ``size`` bytes, streamed in."""
    import json

    descs = []
    async with reg.client() as client:
        for i in range(layers):
            layer = Layer(size, f"{repo}-{i}")
            desc = layer.descriptor()

            async def open_at(offset: int, layer: Layer = layer) -> AsyncIterator[bytes]:
                for chunk in layer.chunks(offset):
                    yield chunk

            await client.push_blob_chunked(repo, desc, open_at)
            descs.append(desc)
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
        ).encode()
        config_desc = Descriptor(mt.OCI_CONFIG, Digest.of(config), len(config))
        await client.push_blob(repo, config_desc, config)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "config": config_desc.to_json(),
                "layers": [d.to_json() for d in descs],
            }
        ).encode()
        pushed = await client.push_manifest(repo, "v1", manifest, mt.OCI_MANIFEST)
    return str(pushed.digest), [str(d.digest) for d in descs]


def worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "worker"],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_worker_killed_mid_import(azurite: Azurite, open_reg: Reg, target_reg: Reg, repo: str) -> None:
    """SIGKILL mid-import (200 MiB): the message comes back after its lease, a second worker
    finishes, blobs already in the target are not sent again, and the tag appears once, complete."""
    digest, layers = asyncio.run(push_big(open_reg, repo, 8, 25 * MiB))
    source = FaultProxy("127.0.0.1", open_reg.proc.port).start()
    target = FaultProxy("127.0.0.1", target_reg.proc.port).start()
    source.add(Rule("GET", "/blobs/sha256:", times=1000, delay=0.4))  # a slow source: time to kill mid-way
    env = environment(azurite, FERRY_LEASE_SECONDS="5", FERRY_CONCURRENCY="2")
    svc = make_services(env)
    api = TestClient(create_app(lambda: svc))
    doc = {"targetRegistry": target.host, "source": {"registryUri": source.host, "sourceImage": f"{repo}:v1"}}
    job = api.post("/api/imports", json=doc).json()
    first = worker(env)
    second = None
    try:
        deadline = time.monotonic() + 60
        committed: list[str] = []
        while len(committed) < 2:
            assert time.monotonic() < deadline, "the first worker never got going"
            committed = [s.path for s in target.requests("PUT", "/blobs/uploads/") if s.status == 201]
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        first.wait(timeout=10)
        at_kill = len([s for s in target.requests("PUT", "/blobs/uploads/") if s.status == 201])
        assert not [s for s in target.requests("PUT", "/manifests/v1")], "tagged before the image was complete"
        second = worker(env)
        while (api.get(job["location"]).json()["state"]) != "succeeded":
            assert time.monotonic() < deadline + 60, api.get(job["location"]).json()
            time.sleep(0.2)
        recovered_at = time.monotonic()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        source.stop()
        target.stop()
    status = api.get(job["location"]).json()
    assert status["attemptCount"] == 2 and status["result"]["digest"] == digest
    commits = Counter(
        s.path.split("digest=")[1].replace("%3A", ":")
        for s in target.requests("PUT", "/blobs/uploads/")
        if s.status == 201
    )
    assert set(commits.values()) == {1} and set(layers) <= set(commits)  # nothing was committed twice
    assert status["result"]["blobs"]["present"] >= at_kill  # what the first worker finished was found, not sent
    tags = [s for s in target.requests("PUT", "/manifests/v1") if s.status == 201]
    assert len(tags) == 1
    cut_short = [s for s in target.requests("PUT", "/blobs/uploads/") if s.status != 201]  # in flight at the kill
    record(
        "worker killed mid-import (200 MiB)",
        {
            "attempts": status["attemptCount"],
            "recoverSeconds": round(recovered_at - killed_at, 1),
            "blobsCommittedBeforeKill": at_kill,
            "blobCommitsTotal": sum(commits.values()),
            "uploadsCutShortAndRestarted": len(cut_short),
            "bytesResentAtMost": sum(int(s.headers.get("Content-Length", 0)) for s in cut_short),
        },
    )


def test_no_job_lost_when_azurite_restarts(workdir: Path, open_reg: Reg, target_reg: Reg, repo: str) -> None:
    store = Azurite(workdir / f"azurite-disk-{repo.split('/')[1]}", persistent=True).start()
    try:
        env = environment(store)
        svc = make_services(env)
        api = TestClient(create_app(lambda: svc))
        jobs = []
        for i in range(3):
            asyncio.run(seed(open_reg, f"{repo}-{i}", make_multiarch(seed=f"restart-{i}")))
            doc = {
                "targetRegistry": target_reg.host,
                "source": {"registryUri": open_reg.host, "sourceImage": f"{repo}-{i}:v1"},
            }
            jobs.append(api.post("/api/imports", json=doc).json())
        store.restart()
        drain(svc)
        states = [api.get(j["location"]).json() for j in jobs]
        assert [s["state"] for s in states] == ["succeeded"] * 3
        record(
            "Azurite restarted with 3 jobs queued",
            {"queued": 3, "succeeded": 3, "lost": 0, "attempts": [s["attemptCount"] for s in states]},
        )
    finally:
        store.stop()


def test_target_registry_restarted_mid_import(workdir: Path, azurite: Azurite, open_reg: Reg, repo: str) -> None:
    """The target goes away and comes back mid-import: the job ends succeeded (retried as
    needed), the tag lands once, on the complete image."""
    import threading

    from tests.harness.registry import open_registry

    own = open_registry(workdir, f"restarting-{repo.split('/')[1]}")
    digest, _ = asyncio.run(push_big(open_reg, repo, 6, 4 * MiB))
    source = FaultProxy("127.0.0.1", open_reg.proc.port).start()
    source.add(Rule("GET", "/blobs/sha256:", times=1000, delay=0.3))
    svc = make_services(environment(azurite, FERRY_CONCURRENCY="2"))
    api = TestClient(create_app(lambda: svc))
    doc = {"targetRegistry": own.host, "source": {"registryUri": source.host, "sourceImage": f"{repo}:v1"}}
    job = api.post("/api/imports", json=doc).json()
    restarted: list[float] = []

    def restart() -> None:
        restarted.append(time.time())
        own.restart()

    restarter = threading.Timer(0.8, restart)
    restarter.start()
    try:
        drain(svc)
        restarter.join()
        status = api.get(job["location"]).json()
        if status["state"] == "queued":  # the retry delay (0) left it for one more pass
            drain(svc)
            status = api.get(job["location"]).json()
        assert status["state"] == "succeeded", status
        assert status["result"]["digest"] == digest
        from datetime import datetime

        finished = datetime.fromisoformat(status["finishedAt"]).timestamp()
        assert finished > restarted[0]  # it lived through the restart
        record(
            "target registry restarted mid-import (24 MiB)",
            {
                "attempts": status["attemptCount"],
                "secondsFromRestartToDone": round(finished - restarted[0], 1),
                "blobsCopied": status["result"]["blobs"]["copied"],
                "blobsAlreadyThere": status["result"]["blobs"]["present"],
            },
        )

        async def tagged() -> str:
            from shared.registry import RegistryClient
            from tests.conftest import FAST

            async with RegistryClient(own.host, options=FAST) as client:
                return str((await client.resolve(repo, "v1")).digest)

        assert asyncio.run(tagged()) == digest
    finally:
        source.stop()
        own.stop()
