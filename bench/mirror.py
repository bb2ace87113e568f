"""The cost of one mirror pass: a source registry with one image under N tags (default 1,000),
an empty target, a dry pass and a real pass of a rule selecting every version tag; counts the
source's requests by kind through a recording proxy and times the pass. Prints a JSON document.

    PYTHONPATH=. .venv/bin/python -m bench.mirror [--tags 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from shared.automation.passes import mirror_pass
from shared.automation.rules import parse_rules
from shared.credentials import Anonymous, Credential
from shared.registry import RegistryClient, TransportOptions
from shared.service.submit import Submitted
from tests.harness.faultproxy import FaultProxy
from tests.harness.images import make_image, push_image
from tests.harness.registry import open_registry

LOCAL = TransportOptions(allow_loopback=True)


async def seed(host: str, tags: list[str]) -> None:
    image = make_image((100,), seed="mirror-bench")
    async with RegistryClient(host, options=LOCAL) as client:
        await push_image(client, "bench/app", image, tags[0])
        for tag in tags[1:]:
            await client.push_manifest("bench/app", tag, image.manifest, image.media_type)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tags", type=int, default=1000)
    args = parser.parse_args()
    tags = [f"1.{minor}.{patch}" for minor in range(args.tags // 10 + 1) for patch in range(10)][: args.tags]
    with tempfile.TemporaryDirectory(prefix="ferry-mirror-") as tmp:
        source, target = open_registry(Path(tmp), "source"), open_registry(Path(tmp), "target")
        proxy = FaultProxy("127.0.0.1", source.port).start()
        try:
            asyncio.run(seed(source.host, tags))
            rules = parse_rules(
                f'mirrors: [{{name: all, source: "{proxy.host}/bench/app", versions: ">=1", targetRegistry: '
                f'"{target.host}"}}]',
                "rules.yaml",
            )

            def anonymous(registry: str, name: str | None) -> Credential:
                return Anonymous()

            async def submit(request: Any, key: str) -> Submitted:
                return Submitted("job", True, "enqueued")

            out = {}
            for label, sink in (("dry run", None), ("pass", submit)):
                proxy.seen.clear()
                started = time.monotonic()
                report = asyncio.run(mirror_pass(rules, anonymous, LOCAL, sink))[0]
                seconds = time.monotonic() - started
                kinds = Counter(
                    f"{s.method} {'tags/list' if '/tags/list' in s.path else 'manifest'}" for s in proxy.seen
                )
                out[label] = {"tags": len(tags), "selected": len(report.selected), "seconds": round(seconds, 2),
                              "sourceRequests": dict(kinds)}  # fmt: skip
            print(json.dumps(out, indent=2))
        finally:
            proxy.stop()
            source.stop()
            target.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
