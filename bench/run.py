"""`make bench`: Ferry's CLI against `skopeo copy --all --preserve-digests`, side by side.

Two local `docker-registry` processes (filesystem storage under a temp dir), fixtures pushed
once into the source; then, per fixture and run, a fresh empty target registry on a new port (so
no tool's cache or earlier run helps), and Ferry and skopeo timed in alternating order. The
ceiling is a raw streamed GET -> PUT of the same blobs with `curl | curl`, one blob at a time.

Reports the median wall time, MB/s and peak RSS per tool and fixture, Ferry's own engine
seconds (from its JSON result), and the ratio Ferry/skopeo. `--runs N` (default 5), `--only a,b`.
Results go to stdout as a Markdown table and to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fixtures import FIXTURES, Fixture, push_fixture
from tests.harness.registry import RegistryProcess, free_port
from tests.harness.skopeo import copy_command

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Sample:
    seconds: float
    rss_kib: int
    engine_seconds: float | None = None


@dataclass
class Row:
    fixture: str
    mbytes: float
    runs: dict[str, list[Sample]] = field(default_factory=dict)

    def median(self, tool: str) -> float:
        return statistics.median(s.seconds for s in self.runs[tool])

    def rss(self, tool: str) -> int:
        return max(s.rss_kib for s in self.runs[tool])


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[Sample, str]:
    """Run ``cmd``; its wall time and standard output."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return Sample(seconds, 0), out.decode()


def timed_rss(cmd: list[str], env: dict[str, str] | None = None) -> tuple[Sample, str]:
    """Like :func:`timed`, with the peak RSS read from GNU time's ``%M`` (KiB)."""
    with tempfile.NamedTemporaryFile("r") as report:
        sample, out = timed(["/usr/bin/time", "-f", "%M", "-o", report.name, *cmd], env)
        sample.rss_kib = int(report.read().strip().splitlines()[-1])
    return sample, out


#: Ferry runs as deployed: from a virtualenv with requirements.txt only (``make bench`` makes it),
#: not the dev one, whose extra packages (rich, via import-linter) slow ``import httpx``.
PYTHON = os.environ.get("FERRY_BENCH_PYTHON") or str(ROOT / ".venv-runtime" / "bin" / "python")


def ferry(src: str, dst: str, ref: str, target_repo: str) -> Sample:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [
        PYTHON,
        "-m",
        "shared.cli",
        "import",
        "--name",
        dst,
        "--source",
        f"{src}/{ref}",
        "--image",
        f"{target_repo}:bench",
    ]
    sample, out = timed_rss(cmd, env)
    sample.engine_seconds = json.loads(out)["seconds"]
    return sample


def skopeo(src: str, dst: str, ref: str, target_repo: str) -> Sample:
    return timed_rss(copy_command(f"{src}/{ref}", f"{dst}/{target_repo}:bench"))[0]


def curl_ceiling(src: str, dst: str, fixture: Fixture, target_repo: str) -> Sample:
    """Every blob streamed GET -> PUT through two curls, no tool around them."""
    import httpx

    started = time.perf_counter()
    for digest, size in fixture.blob_list:
        location = httpx.post(f"http://{dst}/v2/{target_repo}/blobs/uploads/").headers["location"]
        put = httpx.URL(location).copy_merge_params({"digest": digest})
        get = subprocess.Popen(
            ["curl", "-sSf", f"http://{src}/v2/{fixture.repo}/blobs/{digest}"], stdout=subprocess.PIPE
        )
        # -T - streams standard input; the explicit length stops curl from chunking it.
        subprocess.run(
            [
                "curl",
                "-sSf",
                "-X",
                "PUT",
                "-T",
                "-",
                "-H",
                "Content-Type: application/octet-stream",
                "-H",
                f"Content-Length: {size}",
                "-H",
                "Transfer-Encoding:",
                str(put),
            ],
            stdin=get.stdout,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        get.wait()
    return Sample(time.perf_counter() - started, 0)


def fresh_target(workdir: Path, n: int) -> RegistryProcess:
    return RegistryProcess(f"target-{n}", free_port(), workdir / f"target-{n}", None).start()


def bench_fixture(fixture: Fixture, source: RegistryProcess, workdir: Path, runs: int) -> Row:
    row = Row(fixture.name, fixture.unique_bytes / 1e6)
    tools = ["ferry", "skopeo"]
    for i in range(runs):
        order = tools if i % 2 == 0 else tools[::-1]
        for tool in order:
            if fixture.same_registry:
                dst, target = source, None
            else:
                target = fresh_target(workdir, len(list(workdir.glob("target-*"))))
                dst = target
            try:
                target_repo = f"bench/{tool}-{i}"
                if fixture.again:  # the target already has the image: seed it first, untimed
                    skopeo(source.host, dst.host, fixture.ref, target_repo)
                run = ferry if tool == "ferry" else skopeo
                row.runs.setdefault(tool, []).append(run(source.host, dst.host, fixture.ref, target_repo))
            finally:
                if target is not None:
                    target.stop()
                    subprocess.run(["rm", "-rf", str(target.workdir)], check=True)
        print(
            f"  {fixture.name} run {i + 1}/{runs}: " + ", ".join(f"{t} {row.runs[t][-1].seconds:.2f}s" for t in tools),
            file=sys.stderr,
        )
    if fixture.ceiling:
        target = fresh_target(workdir, 999)
        try:
            row.runs["curl"] = [curl_ceiling(source.host, target.host, fixture, "bench/curl")]
        finally:
            target.stop()
            subprocess.run(["rm", "-rf", str(target.workdir)], check=True)
    return row


def table(rows: list[Row]) -> str:
    lines = [
        "| fixture | MB | ferry s (engine s) | skopeo s | ferry/skopeo | ferry MB/s | skopeo MB/s "
        "| ferry RSS MiB | skopeo RSS MiB | curl ceiling s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        f, s = r.median("ferry"), r.median("skopeo")
        engine = statistics.median(x.engine_seconds or 0 for x in r.runs["ferry"])
        curl = f"{r.runs['curl'][0].seconds:.2f}" if "curl" in r.runs else "-"
        lines.append(
            f"| {r.fixture} | {r.mbytes:.0f} | {f:.2f} ({engine:.2f}) | {s:.2f} | {f / s:.2f} | "
            f"{r.mbytes / f:.0f} | {r.mbytes / s:.0f} | {r.rss('ferry') / 1024:.0f} | "
            f"{r.rss('skopeo') / 1024:.0f} | {curl} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated fixture names")
    args = parser.parse_args()
    wanted = [f for f in FIXTURES if not args.only or f.name in args.only.split(",")]
    with tempfile.TemporaryDirectory(prefix="ferry-bench-", dir=os.environ.get("FERRY_BENCH_DIR")) as tmp:
        workdir = Path(tmp)
        source = RegistryProcess("source", free_port(), workdir / "source", None).start()
        try:
            pushed: dict[str, Fixture] = {}
            for fixture in wanted:
                if fixture.ref not in pushed:
                    print(f"pushing fixture {fixture.ref} ...", file=sys.stderr)
                    asyncio.run(push_fixture(source.host, fixture))
                    pushed[fixture.ref] = fixture
                fixture.blob_list = pushed[fixture.ref].blob_list
            rows = [bench_fixture(f, source, workdir, args.runs) for f in wanted]
        finally:
            source.stop()
    report = table(rows)
    print(report)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    doc: dict[str, Any] = {
        "runs": args.runs,
        "skopeo": subprocess.run(["skopeo", "--version"], capture_output=True, text=True, check=False).stdout.strip(),
        "rows": [
            {"fixture": r.fixture, "mbytes": r.mbytes, **{t: [s.__dict__ for s in v] for t, v in r.runs.items()}}
            for r in rows
        ],
        "table": report,
    }
    (out / "latest.json").write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
