"""A service job's progress while it runs (#22: a person following a large job saw
``0.0/838.9 MB 0.0 MB/s`` throughout): the record a follower reads advances as bytes move, and
the line the CLI draws from it says so."""

from __future__ import annotations

import io
import threading
import time

import pytest
from fastapi.testclient import TestClient

from shared.progressline import ProgressLine
from shared.service.wiring import Services
from tests.conftest import Reg
from tests.harness.hostile import hostile_server
from tests.harness.service import drain
from tests.test_stop import _submit, throttled_source

pytestmark = pytest.mark.process


def test_a_running_jobs_progress_advances_while_it_copies(
    api: TestClient, svc: Services, target_reg: Reg, repo: str
) -> None:
    seen: list[int] = []
    with hostile_server(throttled_source()) as (source, _):
        location = _submit(api, source, target_reg, repo)
        worker = threading.Thread(target=drain, args=(svc,))
        worker.start()
        try:
            deadline = time.monotonic() + 30
            while len({s for s in seen if s > 0}) < 3:  # three different non-zero readings
                assert time.monotonic() < deadline, f"progress never advanced: {seen}"
                status = api.get(location).json()
                assert status["state"] in ("queued", "running"), status
                progress = status.get("progress") or {}
                seen.append(int(progress.get("bytesMoved") or 0))
                time.sleep(0.25)
            snapshot = api.get(location).json()["progress"]
        finally:
            api.post(f"{location}/cancel")
            worker.join(20)
    moving = [s for s in seen if s > 0]
    assert moving == sorted(moving) and moving[-1] < snapshot["bytesTotal"], seen
    line = io.StringIO()
    ProgressLine(line).draw(snapshot)
    drawn = line.getvalue()
    assert not drawn.split("MB")[0].split()[-1].startswith("0.0/"), drawn  # bytes done shown, not 0.0
    assert " 0.0 MB/s" not in drawn, drawn
