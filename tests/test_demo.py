"""`make demo` runs in CI: the same script, end to end, through the API, the queue and a worker
process, against Azurite and two registries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.process  # every test here starts a process

ROOT = Path(__file__).resolve().parent.parent


def test_demo_imports_end_to_end() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "scripts.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "succeeded  attempts 1" in done.stdout
    assert "digests match" in done.stdout
    assert "stopped the worker, the API, both registries and Azurite" in done.stdout
