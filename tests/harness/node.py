"""One ``node`` call over a whole batch: the script reads a JSON value on stdin and writes one
on stdout. The differential tests ask npm's ``semver`` and Renovate's ``docker`` versioning this
way, a grid at a time (a node start costs ~50 ms; a call per case would cost minutes)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_node(script: str, payload: object, *, cwd: Path = ROOT, timeout: float = 60) -> object:
    node = shutil.which("node")
    assert node is not None, "node is not installed: run scripts/bootstrap.sh"
    done = subprocess.run(
        [node, "-e", script], input=json.dumps(payload), capture_output=True, text=True, cwd=cwd,
        timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"node failed ({done.returncode}): {done.stderr[-2000:]}"
    return json.loads(done.stdout)
