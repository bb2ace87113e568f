"""`FAKE_HUB=1 make up`: a fake Docker Hub beside the local service (#26), to watch imports wait
for the shared pull budget: a registry holding ``library/app`` under ten version tags behind
tests/harness/fakehub.py (Docker Hub's limit headers, a rolling window, 429 with Retry-After;
``FAKE_HUB_LIMIT`` pulls, 20, per ``FAKE_HUB_WINDOW`` seconds, 60), and a rules file
(``<data>/rules.hub.yaml``, made each start) with make up's promotion and a mirror of it into prod."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from shared.registry import RegistryClient, TransportOptions
from tests.harness.fakehub import FakeHub
from tests.harness.images import make_image, push_image
from tests.harness.registry import RegistryProcess, free_port

LOCAL = TransportOptions(allow_loopback=True)


@dataclass
class HubRun:
    registry: RegistryProcess
    hub: FakeHub
    rules: Path

    def stop(self) -> None:
        self.hub.stop()
        self.registry.stop()

    def banner(self, api: str) -> str:
        hub = self.hub
        return "\n".join([
            f"  fake Docker Hub {hub.host}  ({hub.limit} pulls per {hub.window:g} s; library/app, tags 1.0.0-1.9.0)",
            f"  rules file      {self.rules} (FAKE_HUB=1: make up's promotion and mirror hub-app)",
            "  a mirror pass over it: each import takes a pull from the shared budget and waits for the",
            "  window when it is spent (FERRY_RATELIMIT_FLOOR pulls kept in reserve):",
            f"    curl -s -X POST {api}/api/mirror/run",
            f"    .venv/bin/ferry rules plan {self.rules}   # what a pass costs, what it would defer",
        ])  # fmt: skip


async def _seed(host: str) -> None:
    image = make_image((50_000,), seed="up-hub")
    async with RegistryClient(host, options=LOCAL) as client:
        await push_image(client, "library/app", image, "1.0.0")
        for minor in range(1, 10):
            await client.push_manifest("library/app", f"1.{minor}.0", image.manifest, image.media_type)


def start(env: dict[str, str], data: Path, promotions: str, prod: str) -> HubRun:
    """Start the fake Hub and point ``FERRY_RULES_FILE`` at a rules file that mirrors it."""
    registry = RegistryProcess("hub", free_port(), data / "hub", None).start()
    try:
        asyncio.run(_seed(registry.host))
        limit, window = int(env.get("FAKE_HUB_LIMIT", "20")), float(env.get("FAKE_HUB_WINDOW", "60"))
        hub = FakeHub("127.0.0.1", registry.port, limit=limit, window=window).start()
    except BaseException:
        registry.stop()
        raise
    rules = data / "rules.hub.yaml"
    rules.write_text(
        promotions + "mirrors:\n  - name: hub-app\n"
        f"    source: {hub.host}/library/app\n"
        '    versions: ">=1"\n'
        f"    targetRegistry: {prod}\n"
        '    targetRepository: "hub/{repository}"\n'
    )
    env["FERRY_RULES_FILE"] = str(rules)
    return HubRun(registry, hub, rules)
