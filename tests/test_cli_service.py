"""``ferry import --service`` and ``ferry jobs``: the command line driving a real service (the
API under uvicorn on loopback, a worker, Azurite, real registries), compared with a local run."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Reg
from tests.harness.azurite import Azurite
from tests.harness.images import make_multiarch, seed
from tests.harness.live import LiveService as Service
from tests.harness.service import environment, make_services

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.process


@pytest.fixture
def service(azurite: Azurite) -> Iterator[Service]:
    running = Service(make_services(environment(azurite))).start()
    yield running
    running.stop()


def ferry(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


#: What differs between two runs of the same import: how long it took.
PER_RUN = {"seconds"}


def _same(local: dict[str, Any], remote: dict[str, Any]) -> None:
    assert set(local) == set(remote), set(local) ^ set(remote)
    assert {k: v for k, v in local.items() if k not in PER_RUN} == {k: v for k, v in remote.items() if k not in PER_RUN}


def test_no_wait_then_wait_gives_the_json_of_a_local_run(
    service: Service, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    index = make_multiarch(seed="cli-service")
    asyncio.run(seed(open_reg, repo, index))
    source = f"{open_reg.host}/{repo}:v1"
    local = ferry("import", "--name", target_reg.host, "--source", source, "--image", f"{repo}-local:v1")
    assert local.returncode == 0, local.stderr
    queued = ferry(
        "import", "--name", target_reg.host, "--source", source, "--image", f"{repo}-remote:v1",
        "--service", service.url, "--no-wait",
    )  # fmt: skip
    assert queued.returncode == 0, queued.stderr
    job = json.loads(queued.stdout)
    assert job["state"] == "queued" and job["location"] == f"{service.url}/api/imports/{job['id']}"
    assert f"ferry jobs wait {job['id']}" in queued.stderr
    waited = ferry("jobs", "--service", service.url, "wait", job["id"])
    assert waited.returncode == 0, waited.stderr
    remote, here = json.loads(waited.stdout), json.loads(local.stdout)
    assert remote["status"] == "succeeded" and remote["digest"] == str(index.digest)
    here["targets"] = [t.replace("-local", "-remote") for t in here["targets"]]
    _same(here, remote)
    shown = json.loads(ferry("jobs", "--service", service.url, "show", job["id"]).stdout)
    assert shown["state"] == "succeeded" and [a["outcome"] for a in shown["attempts"]] == ["succeeded"]
    listed = json.loads(ferry("jobs", "--service", service.url, "list", "--state", "succeeded").stdout)
    assert [i["id"] for i in listed["items"]] == [job["id"]]


def test_a_followed_import_fails_as_a_local_one_does(
    service: Service, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    """Same flags, same exit code and error document; the service's 400 fields named as flags."""
    args = ["import", "--name", target_reg.host, "--source", f"{open_reg.host}/{repo}:nothing-here"]
    local, remote = ferry(*args), ferry(*args, env={"FERRY_SERVICE_URL": service.url})
    assert local.returncode == remote.returncode == 1, remote.stderr
    mine, theirs = json.loads(local.stdout), json.loads(remote.stdout)
    assert mine["error"]["code"] == theirs["error"]["code"] == "NOT_FOUND"
    assert mine["error"]["message"] == theirs["error"]["message"]
    bad = ferry(
        "import", "--name", target_reg.host, "--source", f"{open_reg.host}/{repo}:v1", "--image", f"{repo}:ok",
        "--image", "Bad Tag!", "--platform", "linux", "--service", service.url,
    )  # fmt: skip
    assert bad.returncode == 2, bad.stdout + bad.stderr
    error = json.loads(bad.stdout)["error"]
    flags = [f["flag"] for f in error["fields"]]
    assert error["code"] == "BAD_INPUT" and "--image (2nd)" in flags and "--platform (1st)" in flags, error
    assert "Traceback" not in bad.stderr and bad.stderr.startswith("ferry: --image (2nd): ")


def test_jobs_cancel_retry_and_their_refusals(service: Service, open_reg: Reg, target_reg: Reg, repo: str) -> None:
    asyncio.run(seed(open_reg, repo, make_multiarch(seed="cli-jobs")))
    service.stop_worker()  # the job stays queued
    api = service
    queued = ferry(
        "import", "--name", target_reg.host, "--source", f"{open_reg.host}/{repo}:v1", "--no-wait",
        env={"FERRY_SERVICE_URL": api.url},
    )  # fmt: skip
    job = json.loads(queued.stdout)
    cancelled = ferry("jobs", "cancel", job["id"], env={"FERRY_SERVICE_URL": api.url})
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["state"] == "cancelled", cancelled.stderr
    retried = ferry("jobs", "retry", job["id"], env={"FERRY_SERVICE_URL": api.url})
    assert retried.returncode == 0, retried.stderr
    again = json.loads(retried.stdout)
    assert again["id"] != job["id"] and again["state"] == "queued"
    refused = ferry("jobs", "retry", again["id"], env={"FERRY_SERVICE_URL": api.url})
    assert refused.returncode == 1 and json.loads(refused.stdout)["error"]["state"] == "queued"
    missing = ferry("jobs", "show", "0000000000000deadbeef", env={"FERRY_SERVICE_URL": api.url})
    assert missing.returncode == 1 and json.loads(missing.stdout)["error"]["code"] == "NOT_FOUND"


def test_ctrl_c_while_following_stops_following_not_the_job(
    service: Service, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    service.stop_worker()  # the job stays queued while we follow it
    asyncio.run(seed(open_reg, repo, make_multiarch(seed="cli-follow")))
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "import", "--name", target_reg.host,
         "--source", f"{open_reg.host}/{repo}:v1", "--service", service.url],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    first = proc.stderr.readline()  # "ferry: job ID queued at URL"
    job_id = first.split()[2]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, first + err
    assert f"stopped following job {job_id}" in err and f"ferry jobs cancel {job_id}" in err and "Traceback" not in err
    status = httpx.get(f"{service.url}/api/imports/{job_id}").json()
    assert status["state"] == "queued" and status["cancelRequestedAt"] is None  # the job goes on


def test_jobs_list_is_a_table_on_a_terminal_and_takes_service_after_the_subcommand(
    service: Service, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    import pty

    asyncio.run(seed(open_reg, repo, make_multiarch(seed=repo), "v1"))
    done = ferry(
        "import", "--service", service.url, "--name", target_reg.host, "--source", f"{open_reg.host}/{repo}:v1"
    )
    assert done.returncode == 0, done.stderr
    # --service after the subcommand, as az takes its options; json when not on a terminal.
    listed = ferry("jobs", "list", "--service", service.url)
    assert listed.returncode == 0, listed.stderr
    job = json.loads(listed.stdout)["items"][0]
    table = ferry("jobs", "list", "--service", service.url, "-o", "table")
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATE", "CREATED", "TRIES", "SOURCE", "TARGETS", "ERROR"], table.stdout
    assert lines[2].split()[:2] == [job["id"], "succeeded"] and f"{target_reg.host}/{repo}:v1" in lines[2]
    assert len(lines) == 3  # a line a job, not ~50 lines of JSON
    main, child = pty.openpty()  # on a terminal, the table is the default
    try:
        subprocess.run([sys.executable, "-m", "shared.cli", "jobs", "--service", service.url, "list"], stdout=child,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True, timeout=60)  # fmt: skip
        shown = os.read(main, 65536).decode()
    finally:
        os.close(main)
        os.close(child)
    assert shown.splitlines()[0].split()[:2] == ["ID", "STATE"] and job["id"] in shown


def test_what_the_cli_prints_of_jobs_and_runs_is_the_services_json(
    service: Service, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    """The client reads each answer as the API's model and prints it again: the same bytes as the
    answer it got printed as JSON (what the CLI printed before its answers had types), and a
    followed import prints the job's result as a local run does."""
    asyncio.run(seed(open_reg, repo, make_multiarch(seed=repo), "v1"))
    followed = ferry(
        "import", "--service", service.url, "--name", target_reg.host, "--source", f"{open_reg.host}/{repo}:v1"
    )
    assert followed.returncode == 0, followed.stderr
    job = httpx.get(f"{service.url}/api/imports").json()["items"][0]
    assert followed.stdout == json.dumps({**job["result"], "status": "succeeded"}, indent=2) + "\n"
    for command, path in (
        (("jobs", "show", job["id"]), f"/api/imports/{job['id']}"),
        (("jobs", "list", "-o", "json"), "/api/imports"),
        (("runs", "show", job["run"]), f"/api/runs/{job['run']}"),
        (("runs", "list"), "/api/runs"),
    ):
        printed = ferry(*command, "--service", service.url)
        assert printed.returncode == 0, printed.stderr
        assert printed.stdout == json.dumps(httpx.get(service.url + path).json(), indent=2) + "\n", command
