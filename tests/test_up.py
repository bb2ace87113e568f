"""`make up`'s stack as a user runs it (a subprocess on free ports): an import through the HTTP
API as the printed curl command does, a promotion through the local Event Grid route and its
validation handshake, an idle spell that logs nothing, and Ctrl-C leaving nothing running."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.harness.registry import free_port

pytestmark = pytest.mark.process
ROOT = Path(__file__).resolve().parent.parent


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return out


def _until(lines: queue.Queue[str], text: str, seen: list[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(line)
        if text in line:
            return
    raise AssertionError(f"{text!r} never came:\n{''.join(seen)}")


def _done(api: str, job: str) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = httpx.get(f"{api}/api/imports/{job}", timeout=10).json()
        if status["state"] in ("succeeded", "failed"):
            return dict(status)
        time.sleep(0.2)
    raise AssertionError(f"job {job} never ended")


def _closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_make_up_runs_an_import_a_promotion_and_stops_everything(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("FERRY_PORT", "FERRY_DEV_PORT", "FERRY_PROD_PORT")}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FERRY_WORKERS": "1", "FERRY_DATA_DIR": str(tmp_path / "data"),
           "FERRY_LOCAL_SETTINGS": str(tmp_path / "local.settings.json"), **{k: str(v) for k, v in ports.items()}}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "scripts.up"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    seen: list[str] = []
    try:
        lines = _lines(proc)
        _until(lines, "Ferry is up", seen)
        _until(lines, "worker polling queue", seen)
        api, dev, prod = (f"http://127.0.0.1:{ports['FERRY_PORT']}", f"127.0.0.1:{ports['FERRY_DEV_PORT']}",
                          f"127.0.0.1:{ports['FERRY_PROD_PORT']}")  # fmt: skip
        assert f"curl -s -X POST {api}/api/imports" in "".join(seen)
        doc = {"targetRegistry": prod, "source": {"registryUri": dev, "sourceImage": "team/web:1.0", "credential": "dev"},
               "targetTags": ["team/web:1.0"]}  # fmt: skip
        job = httpx.post(f"{api}/api/imports", json=doc, timeout=10).json()["id"]
        imported = _done(api, job)
        assert imported["state"] == "succeeded", imported
        digest = str(imported["result"]["digest"])  # type: ignore[index]
        assert f"ferry import --service {api} --name {prod} --source {dev}/team/web:1.0 --credential dev" in "".join(
            seen
        )
        ferry = [sys.executable, "-m", "shared.cli"]
        queued = subprocess.run([*ferry, "import", "--service", api, "--name", prod, "--source", f"{dev}/team/web:1.0",
                                 "--image", "team/web:cli", "--credential", "dev", "--no-wait"], env=env,
                                capture_output=True, text=True, check=True)  # fmt: skip
        waited = subprocess.run([*ferry, "jobs", "--service", api, "wait", json.loads(queued.stdout)["id"]], env=env,
                                capture_output=True, text=True, check=False)  # fmt: skip
        assert waited.returncode == 0 and json.loads(waited.stdout)["digest"] == digest, waited.stderr

        hook = f"{api}/runtime/webhooks/eventgrid?functionName=on_image_pushed"
        check = httpx.post(hook, json=[{"id": "v", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                                        "data": {"validationCode": "code-1"}}], timeout=10)  # fmt: skip
        assert check.json() == {"validationResponse": "code-1"}
        pushed = {"id": "e1", "eventType": "Microsoft.ContainerRegistry.ImagePushed",
                  "data": {"target": {"repository": "team/web", "tag": "1.1", "digest": digest},
                           "request": {"host": dev}}}  # fmt: skip
        promoted = httpx.post(hook, json=[pushed], headers={"aeg-event-type": "Notification"}, timeout=10).json()
        assert len(promoted["jobs"]) == 1 and _done(api, promoted["jobs"][0])["state"] == "succeeded"
        _until(lines, f"job {promoted['jobs'][0]} succeeded", seen)  # its log line, then quiet
        # the banner's signed and unsigned pushes: the promotion verifies (policy prod)
        banner = "".join(seen)
        assert "a signed push, promoted" in banner and "an unsigned push, refused" in banner
        for repository, state in (("team/web", "succeeded"), ("team/unsigned", "failed")):
            digest_of = banner.split(f'"repository": "{repository}", "tag": "1.0", "digest": "')[-1].split('"')[0]
            event = {**pushed, "id": repository, "data": {"target": {"repository": repository, "tag": "1.0",
                     "digest": digest_of}, "request": {"host": dev}}}  # fmt: skip
            jobs = httpx.post(hook, json=[event], headers={"aeg-event-type": "Notification"}, timeout=10).json()["jobs"]
            ended = _done(api, jobs[0])
            assert ended["state"] == state, ended
            if state == "failed":
                assert ended["error"]["code"] == "SIGNATURE_REQUIRED", ended  # type: ignore[index]
            else:
                verified = ended["result"]["verification"]["verified"]  # type: ignore[index]
                assert {v["authority"] for v in verified} == {"release", "ci"}
            _until(lines, f"job {jobs[0]} {state}", seen)

        time.sleep(60)  # an idle minute: the stack logs nothing (the Azure SDK once logged 21 lines a second)
        idle = []
        while not lines.empty():
            idle.append(lines.get())
        assert idle == [], "".join(idle)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    time.sleep(0.5)  # the reader thread has the last lines
    rest = ""
    while not lines.empty():
        rest += lines.get()
    assert proc.returncode == 0, rest
    assert "stopped: api, worker1, dev, prod, azurite" in rest
    assert all(_closed(port) for port in ports.values())
