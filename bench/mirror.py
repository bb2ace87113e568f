"""The cost of one mirror pass: a source registry with one image under N tags (default 1,000),
an empty target, a dry pass and an enqueueing pass of a rule selecting every version tag.

Each pass is timed straight against the registries (dry and enqueueing runs interleaved after a
warm-up run; the median run reported): wall seconds, Ferry's CPU seconds, and the
CPU seconds the two ``docker-registry`` processes spent answering, then run once more through the
fake Docker Hub (tests/harness/fakehub.py, limit out of reach) to count the source's requests by
kind independently of Ferry. Planning is timed on a tag list of openjdk's size (about 18,000
tags, generated in its shapes): CPU seconds of ``Mirror.explain``. Prints a JSON document.

    PYTHONPATH=. .venv/bin/python -m bench.mirror [--tags 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from shared.automation.passes import MirrorReport, mirror_pass
from shared.automation.rules import Rules, parse_rules
from shared.credentials import Anonymous, Credential
from shared.registry import RegistryClient, TransportOptions
from shared.service.submit import Submitted
from tests.harness.fakehub import FakeHub
from tests.harness.images import make_image, push_image
from tests.harness.registry import RegistryProcess, open_registry

LOCAL = TransportOptions(allow_loopback=True)


async def seed(host: str, tags: list[str]) -> None:
    image = make_image((100,), seed="mirror-bench")
    async with RegistryClient(host, options=LOCAL) as client:
        await push_image(client, "bench/app", image, tags[0])
        for tag in tags[1:]:
            await client.push_manifest("bench/app", tag, image.manifest, image.media_type)


def cpu_of(*registries: RegistryProcess) -> float:
    """CPU seconds (user + system) the registry processes have used so far."""
    total = 0
    for reg in registries:
        assert reg.proc is not None
        fields = Path(f"/proc/{reg.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def anonymous(registry: str, name: str | None) -> Credential:
    return Anonymous()


async def enqueue(request: Any, key: str) -> Submitted:
    return Submitted("job", True, "enqueued")


def rules_for(source: str, target: str) -> Rules:
    return parse_rules(
        f'mirrors: [{{name: all, source: "{source}/bench/app", versions: ">=1", targetRegistry: "{target}"}}]',
        "rules.yaml",
    )


def timed(rules: Rules, sink: Any, registries: tuple[RegistryProcess, ...]) -> tuple[MirrorReport, dict[str, float]]:
    wall, cpu, reg_cpu = time.monotonic(), time.process_time(), cpu_of(*registries)
    report = asyncio.run(mirror_pass(rules, anonymous, LOCAL, sink))[0]
    return report, {
        "seconds": time.monotonic() - wall,
        "ferryCpuSeconds": time.process_time() - cpu,
        "registryCpuSeconds": cpu_of(*registries) - reg_cpu,
    }


def openjdk_like(count: int = 18_000) -> list[str]:
    """Tags in openjdk's shapes: ``17.0.2-jdk-slim-bullseye``, ``11-jre``, ``8u342-jdk-windowsservercore``..."""
    suffixes = ["", "-jdk", "-jre", "-jdk-slim", "-jre-slim", "-jdk-bullseye", "-jdk-slim-bullseye", "-alpine",
                "-jdk-alpine3.16", "-jdk-windowsservercore-1809", "-jdk-nanoserver", "-ea-jdk", "-oraclelinux8"]  # fmt: skip
    tags: list[str] = []
    major = 8
    while len(tags) < count:
        for minor in range(3):
            for patch in range(12):
                for build in range(2):
                    version = f"{major}.{minor}.{patch}" + (f"_{build}" if build else "")
                    tags.extend(version + s for s in suffixes)
        tags.extend(f"{major}{s}" for s in suffixes)
        major += 1
    return tags[:count]


def plan_cpu(runs: int) -> dict[str, Any]:
    tags = openjdk_like()
    mirror = parse_rules(
        'mirrors: [{name: jdk, source: docker.io/library/openjdk, versions: ">=17 <22", suffix: "jdk-slim*", '
        "newest: 5, targetRegistry: x.io}]"
    ).mirrors[0]
    out: dict[str, Any] = {"tags": len(tags), "selected": len(mirror.select(tags))}
    for label, step in (("select (a pass)", mirror.select), ("explain (ferry rules plan)", mirror.explain)):
        seconds = []
        for _ in range(runs):
            started = time.process_time()
            step(tags)
            seconds.append(time.process_time() - started)
        out[label] = {"cpuSeconds": round(min(seconds), 3), "cpuSecondsMedian": round(statistics.median(seconds), 3)}
    return out


def counted(rules: Rules, sink: Any, hub: FakeHub) -> dict[str, Any]:
    hub.heads = 0
    hub.pulls.clear()
    report = asyncio.run(mirror_pass(rules, anonymous, LOCAL, sink))[0]
    return {"HEAD manifest": hub.heads, "GET manifest (pulls)": sum(hub.pulls.values()), "ferrySays": report.cost}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    tags = [f"1.{minor}.{patch}" for minor in range(args.tags // 10 + 1) for patch in range(10)][: args.tags]
    out: dict[str, Any] = {"loadAverage": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="ferry-mirror-") as tmp:
        source, target = open_registry(Path(tmp), "source"), open_registry(Path(tmp), "target")
        hub = FakeHub("127.0.0.1", source.port, limit=10**9, window=60.0).start()
        try:
            asyncio.run(seed(source.host, tags))
            kinds = (("dry run", None), ("pass", enqueue))
            timed(rules_for(source.host, target.host), None, (source, target))  # warm: imports, first connections
            # Interleaved, so neither kind gets the registries' warm-up or a quieter minute alone.
            each: dict[str, list[Any]] = {label: [] for label, _ in kinds}
            for _ in range(args.runs):
                for label, sink in kinds:
                    each[label].append(timed(rules_for(source.host, target.host), sink, (source, target)))
            for label, sink in kinds:
                runs = each[label]
                best = sorted(runs, key=lambda r: r[1]["seconds"])[len(runs) // 2]  # the median run
                out[label] = {
                    "tags": len(tags),
                    "selected": len(best[0].selected),
                    "enqueued": len(best[0].enqueued) + len(best[0].would_enqueue),
                    **{k: round(v, 2) for k, v in best[1].items()},
                    "secondsEachRun": [round(r[1]["seconds"], 2) for r in runs],
                    "sourceRequests": counted(rules_for(hub.host, target.host), sink, hub),
                }
        finally:
            hub.stop()
            source.stop()
            target.stop()
    out["plan (openjdk-sized)"] = plan_cpu(args.runs)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
