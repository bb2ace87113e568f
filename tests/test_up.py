"""`make up`'s stack as a user runs it (a subprocess on free ports): an import through the HTTP
API as the printed curl command does, a promotion through the local Event Grid route and its
validation handshake, an idle spell that logs nothing, and Ctrl-C leaving nothing running."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from scripts.up import DEV_PASSWORD
from tests.harness.registry import free_port
from tests.harness.skopeo import raw_manifest

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
    rules = tmp_path / "rules.yaml"  # never the rules.yaml of the person running the tests
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FERRY_WORKERS": "1", "FERRY_DATA_DIR": str(tmp_path / "data"),
           "FERRY_LOCAL_SETTINGS": str(tmp_path / "local.settings.json"), "FERRY_RULES_FILE": str(rules),
           **{k: str(v) for k, v in ports.items()}}  # fmt: skip
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
        assert f"status page     {api}/api/control" in "".join(seen)  # the control room's URL
        page = httpx.get(f"{api}/api/control", timeout=10)
        assert page.status_code == 200 and "<title>Ferry" in page.text
        assert f"rules file      {rules}  (1 promotions, 0 mirrors, loaded " in "".join(seen)  # the file it reads
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
        assert promoted["events"][0]["rules"] == [
            {"rule": "dev-to-prod", "matched": True, "why": f"matches registry {dev}, repository '*', tag /.*/",
             "job": promoted["jobs"][0]}
        ]  # fmt: skip
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

        # A real push into dev: the registry's own notification promotes it, no hand-written event.
        creds = f"dev:{DEV_PASSWORD}"
        push = ["skopeo", "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", creds,
                "--dest-creds", creds, f"docker://{dev}/team/web:1.0", f"docker://{dev}/team/web:pushed"]  # fmt: skip
        subprocess.run(push, check=True, capture_output=True)
        _until(lines, f"push of {dev}/team/web:pushed: 1 imports enqueued; rule dev-to-prod -> job", seen)
        _until(lines, "succeeded", seen)
        assert raw_manifest(prod, "team/web:pushed") == raw_manifest(prod, "team/web:1.0")

        # A bad edit: the last good rules stay, the error is logged once and /api/health names it.
        good = rules.read_text()
        rules.write_text(good.replace("mode: Force", "mode: force"))
        health = httpx.get(f"{api}/api/health", timeout=10).json()
        assert health["status"] == "degraded" and health["rules"]["promotions"] == 1, health
        assert (
            f"{rules}: promotions[0] (dev-to-prod).mode: Input should be 'NoForce' or 'Force'"
            in health["rules"]["error"]
        )
        again = httpx.post(hook, json=[{**pushed, "id": "e2"}], timeout=10).json()
        assert again["events"][0]["rules"][0]["matched"], again  # still promoting with the last good rules
        _until(lines, "keeping the rules loaded at", seen)
        rules.write_text(good.replace('repository: "*"', 'repository: "other/*"'))
        health = httpx.get(f"{api}/api/health", timeout=10).json()
        assert health["status"] == "ok" and "error" not in health["rules"], health
        missed = httpx.post(hook, json=[{**pushed, "id": "e3"}], timeout=10).json()
        assert missed == {"jobs": [], "events": [{"id": "e3", "jobs": [], "push": f"{dev}/team/web:1.1", "rules": [
            {"rule": "dev-to-prod", "matched": False, "why": "repository team/web does not match 'other/*'"}]}]}  # fmt: skip
        _until(lines, "event e3: push of", seen)
        assert sum("keeping the rules loaded at" in line for line in seen) == 1, "".join(seen)  # logged once

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


def test_a_bad_rules_file_stops_make_up_naming_file_rule_and_field(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("FERRY_PORT", "FERRY_DEV_PORT", "FERRY_PROD_PORT")}
    rules = tmp_path / "rules.yaml"
    rules.write_text("promotions:\n  - name: web\n    sourceRegistry: 127.0.0.1:5101\n    targetRegistry: 127.0.0.1:5102\n"
                     "    mode: force\n")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FERRY_DATA_DIR": str(tmp_path / "data"),
           "FERRY_LOCAL_SETTINGS": str(tmp_path / "local.settings.json"), "FERRY_RULES_FILE": str(rules),
           **{k: str(v) for k, v in ports.items()}}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "scripts.up"], cwd=ROOT, env=env, text=True, capture_output=True, check=False,
                          timeout=60)  # fmt: skip
    assert done.returncode != 0, done.stdout
    assert f"make up: {rules}:\n  promotions[0] (web).mode: Input should be 'NoForce' or 'Force'" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout and "Ferry is up" not in done.stdout
    assert all(_closed(port) for port in ports.values())


def test_a_bad_rules_file_stops_the_api(tmp_path: Path) -> None:
    """The API itself (functions/local.py, as function_app.py) refuses to start, naming it."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("mirrors: [{name: m, source: nginx, targetRegistry: y.io, tag: ['1']}]")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FERRY_RULES_FILE": str(rules),
           "AzureWebJobsStorage": "UseDevelopmentStorage=true"}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", "import functions.local"], cwd=ROOT, env=env, text=True, check=False,
                          capture_output=True, timeout=60)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == f"ferry: {rules}: mirrors[0] (m).tag: unknown field; did you mean 'tags'?"


def test_make_up_reads_the_environment_before_the_files_in_the_checkout(tmp_path: Path) -> None:
    """A person's own local.settings.json and rules.yaml in the checkout do not leak into a run
    that names its own (as ``func start``, the environment wins over local.settings.json)."""
    from scripts.up import settings

    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "local.settings.json").write_text(
        json.dumps({"Values": {"FERRY_RULES_FILE": "rules.yaml", "FERRY_PORT": "7071", "FERRY_LOG_LEVEL": "DEBUG"}})
    )
    (checkout / "rules.yaml").write_text("promotions: [{name: mine, mode: force}]")
    ours = tmp_path / "ours.yaml"
    env = settings({"FERRY_RULES_FILE": str(ours), "FERRY_PORT": "7999"}, checkout)
    assert env["FERRY_RULES_FILE"] == str(ours) and env["FERRY_PORT"] == "7999"
    assert env["FERRY_LOG_LEVEL"] == "DEBUG"  # what the environment does not set still comes from the file
    assert settings({}, checkout)["FERRY_RULES_FILE"] == str(checkout / "rules.yaml")  # relative to the checkout


def test_make_up_keeps_the_jobs_across_a_restart(tmp_path: Path) -> None:
    """Azurite's data lives under .ferry/ (FERRY_DATA_DIR): a job recorded before a restart is there after."""
    from scripts.up import storage
    from shared.importing.request import ImportRequest
    from tests.harness.service import environment, make_services

    azurite = storage(tmp_path / "data").start()
    try:
        env = environment(azurite)
        request = ImportRequest.model_validate(
            {"targetRegistry": "127.0.0.1:5102", "source": {"registryUri": "127.0.0.1:5101", "sourceImage": "a/b:1"}}
        )
        job = make_services(env).submitter.submit(request, None)[0].id
        azurite.stop()
        azurite = storage(tmp_path / "data").start()  # new ports, the same data
        env.update(AzureWebJobsStorage=azurite.connection_string)
        assert make_services(env).statuses.get(job) is not None
    finally:
        azurite.stop()


def test_make_up_does_not_install_checkov(tmp_path: Path) -> None:
    """checkov (291 MB) is for make test's infra checks: bootstrap without --test, as make up
    and make demo run it, leaves it out; make test asks for it."""
    dry = {t: subprocess.run(["make", "-n", t], cwd=ROOT, capture_output=True, text=True, check=True).stdout
           for t in ("up", "demo", "test")}  # fmt: skip
    assert "bootstrap.sh --test" not in dry["up"] + dry["demo"] and "bootstrap.sh --test" in dry["test"]
    # A checkout whose virtualenv and npm packages are in place, without checkov.
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "bootstrap.sh", checkout / "scripts")
    for name in ("requirements.txt", "requirements-dev.txt", "requirements-checkov.txt", "pyproject.toml",
                 "package-lock.json"):  # fmt: skip
        shutil.copy2(ROOT / name, checkout / name)
        os.utime(checkout / name, (0, 0))  # older than what is installed: nothing is installed again
    for name in (".venv", "node_modules", "shared", "functions", "function_app.py"):
        (checkout / name).symlink_to(ROOT / name)
    done = subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=checkout, capture_output=True, text=True, check=False,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "checkov" not in done.stderr and not (checkout / ".venv-checkov").exists()


def test_a_bad_rules_file_stops_the_function_app(tmp_path: Path) -> None:
    """function_app.py, as the Functions host loads it, fails naming the file, rule and field."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("promotions: [{name: web, sourceRegistry: dev.io, targetRegistry: prod.io, mode: force}]")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FERRY_RULES_FILE": str(rules), "FUNCTIONS_WORKER_RUNTIME": "python",
           "AzureWebJobsStorage": "UseDevelopmentStorage=true"}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", "import function_app"], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1
    assert f"RulesError: {rules}: promotions[0] (web).mode: Input should be 'NoForce' or 'Force'" in done.stderr
    rules.write_text("promotions: [{name: web, sourceRegistry: dev.io, targetRegistry: prod.io}]")
    fine = subprocess.run([sys.executable, "-c", "import function_app"], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=60, check=False)  # fmt: skip
    assert fine.returncode == 0, fine.stderr
