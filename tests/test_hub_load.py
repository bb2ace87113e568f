"""#26 end to end: import jobs from a fake Docker Hub with a small pull limit, run by four worker
processes that share one pull budget in Azurite's table. None fails for the limit, the fake Hub
refuses no request (no worker sent a pull the budget did not allow), no window holds more pulls
than the limit less the reserve, and the jobs that waited say so in their attempts. The
benchmark (bench/hub.py) runs the same with 500 jobs."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Reg
from tests.harness.azurite import Azurite
from tests.harness.hubload import HubLoad, run


def test_jobs_across_four_workers_wait_for_the_shared_budget_and_all_succeed(
    azurite: Azurite, open_reg: Reg, target_reg: Reg, tmp_path: Path
) -> None:
    # Scaled down from the benchmark's 500 jobs and 50 pulls: the budget (8 pulls per 5 s) must
    # be slower than four local workers (about 2 jobs/s on this machine), so that jobs wait.
    load = HubLoad(jobs=32, workers=4, limit=10, window=5.0, reserve=2)
    figures = run(load, azurite, open_reg.proc, target_reg.proc, tmp_path)
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert figures["succeeded"] == 32, (figures, log[-3000:])
    assert figures["failed"] == 0 and figures["failedAttemptsForTheLimit"] == 0
    assert figures["pulls"] == 32 and figures["refusedByTheLimit"] == 0
    assert figures["mostPullsInAnyWindow"] <= 10 - 2
    assert figures["jobsThatWaited"] > 0 and figures["waits"] >= figures["jobsThatWaited"]
    waited = figures["example"]
    assert any(a["outcome"] == "waiting" and "rate limit (until " in a["message"] for a in waited)
    assert waited[-1]["outcome"] == "succeeded"
    assert "waiting: rate limit (until " in log
