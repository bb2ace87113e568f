"""`make up`: Ferry's local service in the foreground, as `func start` would run the function app.

Reads `local.settings.json` (made from `local.settings.example.json` on first run; git-ignored)
as the host does, then starts on 127.0.0.1, each stopped by PID on Ctrl-C:

- Azurite (queues and tables), its data under `.ferry/` (git-ignored; kept across restarts,
  `rm -rf .ferry` starts clean);
- unless `REGISTRIES=0`: a "dev" registry with htpasswd auth (user `dev`, the named credential
  `dev`) and an open "prod" registry, on fixed ports (`FERRY_DEV_PORT` 5101, `FERRY_PROD_PORT`
  5102), with a sample image in dev, signed, and an unsigned one (scripts/up_signing.py); dev
  sends its pushes to Ferry (distribution's notifications, ``POST /api/notifications``);
- the rules file ``FERRY_RULES_FILE`` (``rules.yaml``), made promoting dev's pushes to prod when
  it does not exist (when they are signed: policy ``prod``); a bad one stops make up before
  anything starts;
- the HTTP API on `FERRY_PORT` (7071, as `func start`), with the Event Grid trigger's local route
  and the timer's mirror pass (`functions/local.py`);
- `FERRY_WORKERS` queue workers (2);
- with `FAKE_HUB=1`, a fake Docker Hub with a pull limit and a mirror of it (scripts/fakehub_up.py).

It prints the base URL and commands that work while it runs, then the processes' logs.
`FERRY_LOCAL_SETTINGS` and `FERRY_DATA_DIR` move the settings file and the data folder.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from scripts import fakehub_up, up_signing
from shared.automation.live import LiveRules
from shared.automation.rules import RulesError
from shared.credentials import Secret, UsernamePassword
from shared.errors import ConfigurationError
from shared.registry import RegistryClient, TransportOptions
from tests.harness.azurite import Azurite
from tests.harness.images import make_multiarch, push_image
from tests.harness.registry import RegistryProcess, htpasswd_file

ROOT = Path(__file__).resolve().parent.parent
#: Where Azurite's and the registries' data live (``FERRY_DATA_DIR`` to move it; git-ignored).
DATA = Path(os.environ.get("FERRY_DATA_DIR") or ROOT / ".ferry")
DEV_USER, DEV_PASSWORD = "dev", "dev-local-password"
LOCAL = TransportOptions(allow_loopback=True)


def settings_file(environ: Mapping[str, str], root: Path = ROOT) -> dict[str, str]:
    """``local.settings.json``'s ``Values``, made from the example the first time."""
    path = Path(environ.get("FERRY_LOCAL_SETTINGS") or root / "local.settings.json")
    if not path.exists():
        shutil.copy(root / "local.settings.example.json", path)
        print(f"made {path.name} from local.settings.example.json (edit it; it is git-ignored)")
    values = json.loads(path.read_text()).get("Values", {})
    return {str(k): str(v) for k, v in values.items()}


def settings(environ: Mapping[str, str], root: Path = ROOT) -> dict[str, str]:
    """The processes' environment: ``local.settings.json`` under the variables already set, as
    ``func start`` does (it skips a value the environment defines), the rules file made absolute."""
    env = {**settings_file(environ, root), **environ}
    rules = env.get("FERRY_RULES_FILE", "").strip() or "rules.yaml"
    env["FERRY_RULES_FILE"] = str(root / rules)  # absolute stays absolute
    return env


def rules_file(env: dict[str, str], dev: str | None, prod: str | None) -> Path:
    """The rules file the service reads, made when it does not exist (promoting dev's pushes to
    prod, or empty without registries): the file the banner tells a person to edit is this one."""
    path = Path(env["FERRY_RULES_FILE"])
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(local_rules(dev, prod))
        print(f"made {path} (edit it: the service reads it again when it changes)")
    try:
        LiveRules.load(path)
    except RulesError as exc:
        raise SystemExit(f"make up: {exc.source}:\n" + "\n".join(f"  {p}" for p in exc.problems)) from None
    except ConfigurationError as exc:
        raise SystemExit(f"make up: {exc}") from None
    return path


def storage(data: Path) -> Azurite:
    """Azurite with its data on disk under ``data`` (jobs outlive a restart; delete it to start clean)."""
    return Azurite(data / "azurite", persistent=True)


def notifications(api: str) -> dict[str, Any]:
    """distribution's ``notifications:`` for the dev registry: each push is sent to Ferry's
    ``/api/notifications`` (pulls and blobs are not: only a tagged manifest push promotes)."""
    endpoint = {
        "name": "ferry", "url": f"{api}/api/notifications", "timeout": "5s", "threshold": 3, "backoff": "1s",
        "ignoredmediatypes": ["application/octet-stream"], "ignore": {"actions": ["pull"]},
    }  # fmt: skip
    return {"notifications": {"endpoints": [endpoint]}}


def registries(env: dict[str, str], api: str) -> tuple[RegistryProcess, RegistryProcess, tuple[str, str]]:
    """dev (htpasswd, seeded with ``team/web:1.0`` signed and ``team/unsigned:1.0``, then sending
    its pushes to ``api``) and prod; the samples' digests."""
    DATA.mkdir(parents=True, exist_ok=True)
    auth = {"htpasswd": {"realm": "dev", "path": str(htpasswd_file(DATA / "htpasswd", {DEV_USER: DEV_PASSWORD}))}}
    dev = RegistryProcess("dev", int(env.get("FERRY_DEV_PORT", "5101")), DATA / "dev", auth).start()
    samples = asyncio.run(seed(dev.host))  # before notifications: the samples are not promoted at start
    dev.stop()
    dev.extra = notifications(api)
    dev.start()
    prod = RegistryProcess("prod", int(env.get("FERRY_PROD_PORT", "5102")), DATA / "prod", None).start()
    return dev, prod, samples


async def seed(dev: str) -> tuple[str, str]:
    """A two-platform sample image in dev, as ``team/web:1.0``, signed by this run's keys (under
    ``.ferry/keys``), and an unsigned ``team/unsigned:1.0``; their digests."""
    image = make_multiarch(["linux/amd64", "linux/arm64"], layer_sizes=(200_000, 300_000), seed="up")
    async with RegistryClient(dev, UsernamePassword(DEV_USER, Secret(DEV_PASSWORD)), LOCAL) as client:
        digest = str(await push_image(client, "team/web", image, "1.0"))
        return digest, await up_signing.sign_samples(client, dev, digest, DATA / "keys")


def local_rules(dev: str | None, prod: str | None) -> str:
    if not (dev and prod):
        return (
            "# Made by make up. Your promotions and mirrors (see rules.example.yaml, docs/rules.md).\npromotions: []\n"
        )
    return (
        "# Made by make up: every tag pushed to the local dev registry is promoted to prod, if it is\n"
        "# signed by the release key with CI's provenance (policy prod, docs/signing.md).\n"
        "# Edit it (rules.example.yaml, docs/rules.md): the service reads it again when it changes.\n"
        + up_signing.rules(DATA / "keys")
        + "promotions:\n"
        "  - name: dev-to-prod\n"
        f"    sourceRegistry: {dev}\n"
        '    repository: "*"\n'
        f"    targetRegistry: {prod}\n"
        "    credential: dev\n"
        "    mode: Force\n"
        "    verify: prod\n"
    )


def _pump(proc: subprocess.Popen[str], name: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(f"{name:8} | {line}")
        sys.stdout.flush()


def start(cmd: list[str], env: dict[str, str], name: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    threading.Thread(target=_pump, args=(proc, name), daemon=True).start()
    return proc


def _rules_line(rules: dict[str, Any] | None) -> list[str]:
    if not rules:
        return ["  rules file      none (FERRY_RULES_FILE is not set)"]
    line = (
        f"  rules file      {rules['file']}  ({rules.get('promotions', 0)} promotions,"
        f" {rules.get('mirrors', 0)} mirrors, loaded {rules.get('loadedAt', '?')}; edit it: read again when it changes)"
    )
    return [line] + ([f"  RULES REFUSED   {rules['error']}"] if rules.get("error") else [])


def banner(
    api: str,
    dev: str | None,
    prod: str | None,
    digest: str = "",
    rules: dict[str, Any] | None = None,
    unsigned: str = "",
) -> str:
    lines = [
        f"Ferry is up: {api}  (Ctrl-C stops everything)",
        f"  API docs        {api}/api/docs",
        f"  status page     {api}/api/control  (in Azure: add ?code=<function key>)",
        *_rules_line(rules),
    ]
    if dev and prod:
        body = json.dumps({"targetRegistry": prod, "source": {"registryUri": dev, "sourceImage": "team/web:1.0",
                           "credential": "dev"}, "targetTags": ["team/web:1.0"]})  # fmt: skip
        lines += [
            f"  dev registry    {dev}  (user {DEV_USER}, password {DEV_PASSWORD}; credential name: dev)",
            f"  prod registry   {prod}  (open)",
            "  import dev -> prod:",
            f"    curl -s -X POST {api}/api/imports -H 'Content-Type: application/json' -d '{body}'",
            f"    curl -s {api}/api/imports            # the jobs, newest first",
            "  the same from a terminal, through this service (--no-wait returns at once):",
            f"    .venv/bin/ferry import --service {api} --name {prod} --source {dev}/team/web:1.0 --credential dev",
            f"    .venv/bin/ferry jobs --service {api} list      # also: show, cancel, retry, wait ID",
            "  runs (every import is in one: a batch, a mirror pass, a promotion, one POST /api/imports):",
            f"    .venv/bin/ferry runs --service {api} list      # also: show, wait, cancel, retry ID",
            f'    curl -s {api}/api/runs                # POST {{"imports": [...]}} submits a batch as one run',
            "  or with the engine in the terminal itself:",
            f"    echo {DEV_PASSWORD} | .venv/bin/ferry import --name {prod} --source {dev}/team/web:1.0 "
            f"--username {DEV_USER} --password-stdin",
            "  a promotion: push into dev (the dev registry notifies Ferry, the rules file promotes it), e.g.",
            f"    skopeo copy --all --dest-tls-verify=false --dest-creds {DEV_USER}:{DEV_PASSWORD} "
            f"docker://docker.io/library/alpine:3.20 docker://{dev}/team/alpine:3.20",
            f"    .venv/bin/ferry rules match {dev}/team/alpine:3.20     # which rules match a push, and why",
            "  or as Event Grid delivers a push:",
            f"    curl -s -X POST '{api}/runtime/webhooks/eventgrid?functionName=on_image_pushed' "
            "-H 'aeg-event-type: Notification' -H 'Content-Type: application/json' "
            f'-d \'[{{"id": "1", "eventType": "Microsoft.ContainerRegistry.ImagePushed", "data": '
            f'{{"target": {{"repository": "team/web", "tag": "1.0", "digest": "{digest}"}}, '
            f'"request": {{"host": "{dev}"}}}}}}]\'',
        ]
        lines += up_signing.banner(api, dev, digest, unsigned) if unsigned else []
    lines += _webhook_lines()
    return "\n".join(lines)


def _webhook_lines() -> list[str]:
    """How to see each run's end event: a local receiver, and the two settings that point at it."""
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    return [
        "  run events to a local webhook receiver (signed as Standard Webhooks; docs/events.md):",
        f"    .venv/bin/python -m scripts.receiver --port 8099 --secret {secret}",
        '    then in local.settings.json, and restart: "FERRY_WEBHOOK_LOCAL_URL": "http://127.0.0.1:8099/",',
        f'      "FERRY_WEBHOOK_LOCAL_SECRET": "{secret}"',
    ]


def main() -> int:
    env = settings(os.environ)
    with_registries = env.get("REGISTRIES", "1") != "0"
    port = env.get("FERRY_PORT", "7071")
    api = f"http://127.0.0.1:{port}"
    dev_host = f"127.0.0.1:{env.get('FERRY_DEV_PORT', '5101')}" if with_registries else None
    prod_host = f"127.0.0.1:{env.get('FERRY_PROD_PORT', '5102')}" if with_registries else None
    hub = None
    if dev_host and prod_host and env.get("FAKE_HUB", "0") == "1":
        DATA.mkdir(parents=True, exist_ok=True)
        hub = fakehub_up.start(env, DATA, local_rules(dev_host, prod_host), prod_host)
    if with_registries:
        up_signing.make_keys(DATA / "keys")  # the rules made below name the public keys
    try:
        rules = rules_file(env, dev_host, prod_host)  # a bad rules file stops make up before anything starts
    except SystemExit:
        if hub is not None:
            hub.stop()
        raise
    procs: list[tuple[str, subprocess.Popen[str]]] = []
    azurite = storage(DATA).start()
    dev = prod = None
    digest = unsigned = ""
    try:
        env.update({"AzureWebJobsStorage": azurite.connection_string, "PYTHONPATH": str(ROOT)})
        if with_registries:
            dev, prod, (digest, unsigned) = registries(env, api)
            unsigned = unsigned if "verify: prod" in rules.read_text() else ""  # a rules file of yours: no demo
            env.update({"FERRY_ALLOW_LOOPBACK": "true", "FERRY_CREDENTIAL_DEV_USERNAME": DEV_USER,
                        "FERRY_CREDENTIAL_DEV_PASSWORD": DEV_PASSWORD})  # fmt: skip
        api_proc = start([sys.executable, "-m", "uvicorn", "functions.local:app", "--host", "127.0.0.1",
                          "--port", port, "--log-level", "warning"], env, "api")  # fmt: skip
        procs.append(("api", api_proc))
        _wait_for_api(api, api_proc)
        for n in range(int(env.get("FERRY_WORKERS", "2"))):
            name = f"worker{n + 1}"
            procs.append((name, start([sys.executable, "-m", "shared.cli", "worker"], env, name)))
        health = httpx.get(f"{api}/api/health", timeout=10).json()
        print(
            banner(api, dev.host if dev else None, prod.host if prod else None, digest, health.get("rules"), unsigned),
            flush=True,
        )
        if hub is not None:
            print(hub.banner(api), flush=True)
        _wait_for_a_signal()
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for _, proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for registry in (dev, prod):
            if registry is not None:
                registry.stop()
        if hub is not None:
            hub.stop()
        azurite.stop()
        stopped = [name for name, _ in procs] + ["dev", "prod"] * bool(dev) + ["fake hub"] * bool(hub)
        print("stopped: " + ", ".join([*stopped, "azurite"]))
    return 0


def _wait_for_api(api: str, proc: subprocess.Popen[str]) -> None:
    """Until the API answers; if it exits first (a bad setting or rules file), its reason."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            time.sleep(0.2)  # its last lines reach the log
            raise SystemExit(f"make up: the API exited with {proc.returncode} (its reason is above)")
        try:
            httpx.get(f"{api}/api/health", timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"make up: {api} did not answer within 30 s")


def _wait_for_a_signal() -> None:
    stop = threading.Event()

    def handle(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    while not stop.wait(0.5):
        pass
    time.sleep(0)


if __name__ == "__main__":
    sys.exit(main())
