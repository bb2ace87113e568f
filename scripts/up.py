"""`make up`: Ferry's local service in the foreground, as `func start` would run the function app.

Reads `local.settings.json` (made from `local.settings.example.json` on first run; git-ignored)
as the host does, then starts on 127.0.0.1, each stopped by PID on Ctrl-C:

- Azurite (queues and tables), its data under `.ferry/` (git-ignored);
- unless `REGISTRIES=0`: a "dev" registry with htpasswd auth (user `dev`, the named credential
  `dev`) and an open "prod" registry, on fixed ports (`FERRY_DEV_PORT` 5101, `FERRY_PROD_PORT`
  5102), with a sample image in dev and a rules file promoting dev's pushes to prod;
- the HTTP API on `FERRY_PORT` (7071, as `func start`), with the Event Grid trigger's local route
  and the timer's mirror pass (`functions/local.py`);
- `FERRY_WORKERS` queue workers (2);
- with `FAKE_HUB=1`: a fake Docker Hub (tests/harness/fakehub.py) in front of a third registry
  holding `library/app` under ten version tags, enforcing Docker Hub's pull limit with its headers
  and 429s (`FAKE_HUB_LIMIT` pulls, 20, per `FAKE_HUB_WINDOW` seconds, 60), and a mirror rule that
  copies it into prod: run a mirror pass and watch imports wait for the shared pull budget.

It prints the base URL and commands that work while it runs, then the processes' logs.
`FERRY_LOCAL_SETTINGS` and `FERRY_DATA_DIR` move the settings file and the data folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from shared.credentials import Secret, UsernamePassword
from shared.registry import RegistryClient, TransportOptions
from tests.harness.azurite import Azurite
from tests.harness.fakehub import FakeHub
from tests.harness.images import make_image, make_multiarch, push_image
from tests.harness.registry import RegistryProcess, free_port, htpasswd_file, wait_for_http

ROOT = Path(__file__).resolve().parent.parent
#: Where Azurite's and the registries' data live (``FERRY_DATA_DIR`` to move it; git-ignored).
DATA = Path(os.environ.get("FERRY_DATA_DIR") or ROOT / ".ferry")
DEV_USER, DEV_PASSWORD = "dev", "dev-local-password"
LOCAL = TransportOptions(allow_loopback=True)


def settings_file() -> dict[str, str]:
    """``local.settings.json``'s ``Values``, made from the example the first time."""
    path = Path(os.environ.get("FERRY_LOCAL_SETTINGS") or ROOT / "local.settings.json")
    if not path.exists():
        shutil.copy(ROOT / "local.settings.example.json", path)
        print(f"made {path.name} from local.settings.example.json (edit it; it is git-ignored)")
    values = json.loads(path.read_text()).get("Values", {})
    return {str(k): str(v) for k, v in values.items()}


def registries(env: dict[str, str]) -> tuple[RegistryProcess, RegistryProcess]:
    DATA.mkdir(parents=True, exist_ok=True)
    auth = {"htpasswd": {"realm": "dev", "path": str(htpasswd_file(DATA / "htpasswd", {DEV_USER: DEV_PASSWORD}))}}
    dev = RegistryProcess("dev", int(env.get("FERRY_DEV_PORT", "5101")), DATA / "dev", auth).start()
    prod = RegistryProcess("prod", int(env.get("FERRY_PROD_PORT", "5102")), DATA / "prod", None).start()
    return dev, prod


async def seed(dev: str) -> str:
    """A two-platform sample image in dev, as ``team/web:1.0``; its digest."""
    image = make_multiarch(["linux/amd64", "linux/arm64"], layer_sizes=(200_000, 300_000), seed="up")
    async with RegistryClient(dev, UsernamePassword(DEV_USER, Secret(DEV_PASSWORD)), LOCAL) as client:
        return str(await push_image(client, "team/web", image, "1.0"))


def local_rules(dev: str, prod: str, hub: str | None = None) -> Path:
    path = DATA / "rules.local.yaml"
    mirror = (
        "mirrors:\n"
        "  - name: hub-app\n"
        f"    source: {hub}/library/app\n"
        '    versions: ">=1"\n'
        f"    targetRegistry: {prod}\n"
        '    targetRepository: "hub/{repository}"\n'
    )
    path.write_text(
        "# Made by make up: every tag pushed to the local dev registry is promoted to prod.\n"
        "promotions:\n"
        "  - name: dev-to-prod\n"
        f"    sourceRegistry: {dev}\n"
        '    repository: "*"\n'
        f"    targetRegistry: {prod}\n"
        "    credential: dev\n"
        "    mode: Force\n" + (mirror if hub else "")
    )
    return path


def fake_hub(env: dict[str, str]) -> tuple[RegistryProcess, FakeHub]:
    """A registry with ``library/app`` under ten tags, behind a fake Docker Hub with a pull limit."""
    hub_registry = RegistryProcess("hub", free_port(), DATA / "hub", None).start()

    async def seed_hub() -> None:
        image = make_image((50_000,), seed="up-hub")
        async with RegistryClient(hub_registry.host, options=LOCAL) as client:
            await push_image(client, "library/app", image, "1.0.0")
            for minor in range(1, 10):
                await client.push_manifest("library/app", f"1.{minor}.0", image.manifest, image.media_type)

    asyncio.run(seed_hub())
    limit, window = int(env.get("FAKE_HUB_LIMIT", "20")), float(env.get("FAKE_HUB_WINDOW", "60"))
    return hub_registry, FakeHub("127.0.0.1", hub_registry.port, limit=limit, window=window).start()


def _pump(proc: subprocess.Popen[str], name: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(f"{name:8} | {line}")
        sys.stdout.flush()


def start(cmd: list[str], env: dict[str, str], name: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    threading.Thread(target=_pump, args=(proc, name), daemon=True).start()
    return proc


def banner(api: str, dev: str | None, prod: str | None, digest: str = "") -> str:
    lines = [f"Ferry is up: {api}  (Ctrl-C stops everything)", f"  API docs        {api}/api/docs"]
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
            "  or with the engine in the terminal itself:",
            f"    echo {DEV_PASSWORD} | .venv/bin/ferry import --name {prod} --source {dev}/team/web:1.0 "
            f"--username {DEV_USER} --password-stdin",
            "  a promotion, as Event Grid delivers a push:",
            f"    curl -s -X POST '{api}/runtime/webhooks/eventgrid?functionName=on_image_pushed' "
            "-H 'aeg-event-type: Notification' -H 'Content-Type: application/json' "
            f'-d \'[{{"id": "1", "eventType": "Microsoft.ContainerRegistry.ImagePushed", "data": '
            f'{{"target": {{"repository": "team/web", "tag": "1.0", "digest": "{digest}"}}, '
            f'"request": {{"host": "{dev}"}}}}}}]\'',
        ]
    return "\n".join(lines)


def hub_banner(api: str, hub: FakeHub) -> str:
    return "\n".join([
        f"  fake Docker Hub {hub.host}  ({hub.limit} pulls per {hub.window:g} s; library/app, tags 1.0.0-1.9.0)",
        "  a mirror pass over it (mirror hub-app: every import takes a pull from the shared budget, and",
        "  waits for the window when it is spent, FERRY_RATELIMIT_FLOOR kept in reserve):",
        f"    curl -s -X POST {api}/api/mirror/run",
        f"    .venv/bin/ferry rules plan {DATA / 'rules.local.yaml'}   # what a pass costs, what it would defer",
    ])  # fmt: skip


def main() -> int:
    env = {**os.environ, **settings_file()}
    procs: list[tuple[str, subprocess.Popen[str]]] = []
    azurite = Azurite(DATA / "azurite").start()
    dev = prod = hub_registry = None
    hub: FakeHub | None = None
    digest = ""
    try:
        env.update({"AzureWebJobsStorage": azurite.connection_string, "PYTHONPATH": str(ROOT)})
        if os.environ.get("REGISTRIES", "1") != "0":
            dev, prod = registries(env)
            if env.get("FAKE_HUB", "0") == "1":
                hub_registry, hub = fake_hub(env)
            digest = asyncio.run(seed(dev.host))
            env.update({"FERRY_ALLOW_LOOPBACK": "true", "FERRY_CREDENTIAL_DEV_USERNAME": DEV_USER,
                        "FERRY_CREDENTIAL_DEV_PASSWORD": DEV_PASSWORD})  # fmt: skip
            rules = env.get("FERRY_RULES_FILE", "")
            if not rules or not (ROOT / rules).exists():  # no rules of the user's: promote dev to prod
                env["FERRY_RULES_FILE"] = str(local_rules(dev.host, prod.host, hub.host if hub else None))
        port = env.get("FERRY_PORT", "7071")
        api = f"http://127.0.0.1:{port}"
        procs.append(("api", start([sys.executable, "-m", "uvicorn", "functions.local:app", "--host", "127.0.0.1",
                                    "--port", port, "--log-level", "warning"], env, "api")))  # fmt: skip
        wait_for_http(f"{api}/api/health", timeout=30)
        for n in range(int(env.get("FERRY_WORKERS", "2"))):
            name = f"worker{n + 1}"
            procs.append((name, start([sys.executable, "-m", "shared.cli", "worker"], env, name)))
        print(banner(api, dev.host if dev else None, prod.host if prod else None, digest), flush=True)
        if hub is not None:
            print(hub_banner(api, hub), flush=True)
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
        if hub is not None:
            hub.stop()
        for registry in (dev, prod, hub_registry):
            if registry is not None:
                registry.stop()
        azurite.stop()
        print(
            "stopped: "
            + ", ".join(
                [name for name, _ in procs]
                + ["dev", "prod"] * bool(dev)
                + ["fake hub", "hub"] * bool(hub)
                + ["azurite"]
            )
        )
    return 0


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
