"""What telemetry costs a job: real imports (a multi-arch image of 3 platforms, 3 layers each, one shared, into
a fresh repository each time, between two local `docker-registry` processes) run with
`run_import` inside a job span, as the worker runs them, in four modes interleaved:

- `off`: no exporter configured (the default: the OpenTelemetry API's no-op tracer and meter);
- `sdk`: the SDK recording every span and metric, exporting nowhere (the cost of recording);
- `otlp`: the SDK with the batch span processor and periodic metric reader exporting over
  OTLP/HTTP to a local collector stand-in that answers 200 at once;
- `otlp-down`: the same, the collector's port closed (the exporter's retries, off the job's path).

Per import: wall seconds and the process's CPU seconds (`time.process_time`, which includes the
exporter threads' work). Results: a Markdown table on stdout, bench/results/telemetry.json.

    .venv/bin/python -m bench.telemetry [--imports 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from shared import telemetry
from shared.credentials import Anonymous
from shared.importing.run import run_import
from shared.importing.spec import build_spec
from shared.registry import RegistryClient, TransportOptions
from tests.harness.images import make_multiarch, push_image
from tests.harness.registry import free_port, open_registry

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = TransportOptions(allow_loopback=True)


class Sink(BaseHTTPRequestHandler):
    """A collector stand-in: reads the export, answers 200 with an empty protobuf body."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Nowhere(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _providers(mode: str, endpoint: str) -> tuple[Any, Any]:
    if mode == "off":
        return None, None
    tracer = TracerProvider()
    if mode == "sdk":
        tracer.add_span_processor(BatchSpanProcessor(Nowhere()))
        return tracer, MeterProvider(metric_readers=[InMemoryMetricReader()])
    tracer.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=5)))
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics", timeout=5), export_interval_millis=1000
    )
    return tracer, MeterProvider(metric_readers=[reader])


async def one(source: str, target: str, n: int, mode: str) -> tuple[float, float]:
    spec = build_spec(f"{source}/bench/tel:1", target, [f"bench/tel{mode}{n}-{time.time_ns()}:1"])
    wall, cpu = time.perf_counter(), time.process_time()
    async with RegistryClient(source, Anonymous(), OPTIONS) as src, RegistryClient(target, Anonymous(), OPTIONS) as dst:
        with telemetry.job_span(f"job{n}", None, {"ferry.source": str(spec.source)}) as span:
            result = await run_import(spec, src, dst, concurrency=8)
            telemetry.ended(span, "succeeded", result.document())
        telemetry.record_job("succeeded", time.perf_counter() - wall, nbytes=result.bytes or 0)
    return time.perf_counter() - wall, time.process_time() - cpu


def run(imports: int, work: Path) -> dict[str, dict[str, list[float]]]:
    source, target = open_registry(work, "tel-src"), open_registry(work, "tel-dst")
    sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    endpoints = {"otlp": f"http://127.0.0.1:{sink.server_address[1]}", "otlp-down": f"http://127.0.0.1:{free_port()}"}
    modes = ("off", "sdk", "otlp", "otlp-down")
    out: dict[str, dict[str, list[float]]] = {m: {"wall": [], "cpu": []} for m in modes}
    try:
        image = make_multiarch(seed="telemetry-bench")

        async def seed() -> None:
            async with RegistryClient(source.host, Anonymous(), OPTIONS) as c:
                await push_image(c, "bench/tel", image, "1")

        asyncio.run(seed())
        providers = {m: _providers(m, endpoints.get(m, "")) for m in modes}
        for n in range(imports + 2):  # the first two rounds warm up, not counted
            for mode in modes:
                telemetry.use(*providers[mode], mode="bench") if mode != "off" else telemetry.use()
                wall, cpu = asyncio.run(one(source.host, target.host, n, mode))
                if n >= 2:
                    out[mode]["wall"].append(wall)
                    out[mode]["cpu"].append(cpu)
        telemetry.use()
        for tracer, meter in providers.values():
            for provider in (tracer, meter):
                shutdown: Callable[[], Any] | None = getattr(provider, "shutdown", None)
                if shutdown is not None:
                    threading.Thread(target=shutdown, daemon=True).start()  # a down collector may not hold the bench
    finally:
        sink.shutdown()
        source.stop()
        target.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imports", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ferry-telemetry-") as tmp:
        results = run(args.imports, Path(tmp))
    base = {k: statistics.median(v) for k, v in results["off"].items()}
    print(f"{args.imports} imports per mode (multi-arch: 3 platforms, 3 layers each), milliseconds\n")
    print("| mode | wall p50 | wall p95 | CPU p50 | CPU over off (p50) |\n|---|---|---|---|---|")
    for mode, f in results.items():
        walls = sorted(f["wall"])
        p95 = walls[min(len(walls) - 1, int(len(walls) * 0.95))]
        cpu = statistics.median(f["cpu"])
        print(f"| {mode} | {statistics.median(walls) * 1000:.1f} | {p95 * 1000:.1f} | {cpu * 1000:.1f} | "
              f"{(cpu - base['cpu']) * 1000:+.1f} |")  # fmt: skip
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "telemetry.json").write_text(json.dumps({"imports": args.imports, "modes": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
