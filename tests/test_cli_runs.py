"""``ferry runs …`` and ``ferry import --service`` with several ``--source``, driving a real service
(the API under uvicorn, a worker with its event loop, Azurite, real registries)."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import Reg
from tests.harness.images import make_image, seed
from tests.harness.live import LiveService as Service
from tests.test_cli_service import ferry, service  # noqa: F401 - the fixture

pytestmark = pytest.mark.process


def test_several_sources_are_one_run_and_wait_exits_on_its_outcome(
    service: Service,  # noqa: F811
    open_reg: Reg,
    target_reg: Reg,
    repo: str,
) -> None:
    asyncio.run(seed(open_reg, repo, make_image((100,), seed=repo), tag="a"))
    asyncio.run(seed(open_reg, repo, make_image((120,), seed=repo + "b"), tag="b"))
    good = [f"{open_reg.host}/{repo}:a", f"{open_reg.host}/{repo}:b"]
    done = ferry("import", "-n", target_reg.host, "--source", good[0], "--source", good[1], "--service", service.url)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["kind"] == "batch" and run["state"] == "succeeded" and run["counts"]["succeeded"] == 2
    assert sorted(t["target"] for t in run["targets"]) == [f"{target_reg.host}/{repo}:a", f"{target_reg.host}/{repo}:b"]
    assert "2 succeeded, 0 failed, 0 cancelled of 2" in done.stderr

    # One source missing: the run is partial, wait exits 1, retry makes a run of the failure only.
    bad = [good[0], f"{open_reg.host}/{repo}:missing"]
    queued = ferry("import", "-n", target_reg.host, "--force", "--source", bad[0], "--source", bad[1],
                   "--service", service.url, "--no-wait")  # fmt: skip
    assert queued.returncode == 0, queued.stderr
    run_id = json.loads(queued.stdout)["id"]
    waited = ferry("runs", "wait", run_id, "--service", service.url)
    assert waited.returncode == 1 and json.loads(waited.stdout)["state"] == "partial"
    shown = json.loads(ferry("runs", "--service", service.url, "show", run_id).stdout)
    assert [j["code"] for j in shown["jobs"] if j["state"] == "failed"] == ["NOT_FOUND"]
    listed = json.loads(ferry("runs", "list", "--state", "partial", "--service", service.url).stdout)
    assert [r["id"] for r in listed["items"]] == [run_id]
    retried = ferry("runs", "retry", run_id, "--service", service.url)
    assert retried.returncode == 0, retried.stderr
    again = json.loads(retried.stdout)
    assert [j["retryOf"] for j in again["jobs"]] == [j["id"] for j in shown["jobs"] if j["state"] == "failed"]
    assert ferry("runs", "wait", again["id"], "--service", service.url).returncode == 1  # still missing

    refused = ferry("import", "-n", target_reg.host, "--source", good[0], "--source", good[1], "--image", "x:1",
                    "--service", service.url)  # fmt: skip
    assert refused.returncode == 2 and "--image and --repository name one source" in refused.stderr
    local = ferry("import", "-n", target_reg.host, "--source", good[0], "--source", good[1])
    assert local.returncode == 2 and "give --service URL" in local.stderr
    assert ferry("runs", "show", "nope", "--service", service.url).returncode == 1
