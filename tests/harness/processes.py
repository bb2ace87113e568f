"""Processes the harness, the demo and the reliability run start: by PID, stopped politely."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.harness.registry import free_port, wait_for_http

ROOT = Path(__file__).resolve().parent.parent.parent


def start_process(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not gone within ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def start_api(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The HTTP API under uvicorn on a free loopback port, answering its health check."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "functions.http:fast_app", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning"]  # fmt: skip
    proc = start_process(cmd, env, log)
    api = f"http://127.0.0.1:{port}"
    wait_for_http(f"{api}/api/health", timeout=30, proc=proc)
    return proc, api


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return start_process([sys.executable, "-m", "shared.cli", "worker"], env, log)
