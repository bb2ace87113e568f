"""Telemetry (shared/telemetry): off and free by default; with the SDK's in-memory exporter and
reader, a job's span carries its attributes, its phases are children, a failure its code, the
W3C trace context crosses a queue message, and the metrics count jobs; an OTLP endpoint that
never answers does not hold up a job."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from shared import telemetry
from shared.telemetry import setup

ROOT = Path(__file__).resolve().parent.parent


class Recorded:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.tracer_provider = provider
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def metrics(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        out: dict[str, list[Any]] = {}
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    out[metric.name] = list(metric.data.data_points)
        return out


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    rec = Recorded()
    telemetry.use(rec.tracer_provider, rec.meter_provider)
    yield rec
    telemetry.use()


def test_off_without_settings_records_nothing() -> None:
    assert telemetry.configure({}) == "off" and not telemetry.enabled()
    with telemetry.job_span("j1", {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}, {}) as span:
        assert span is telemetry.NO_SPAN
        with telemetry.phase("resolve") as child:
            assert child is telemetry.NO_SPAN
    telemetry.record_job("succeeded", 0.1)  # nothing to record into, and no error
    assert telemetry.carrier() == {}


@pytest.mark.process  # a Python process
def test_off_imports_nothing_of_opentelemetry() -> None:
    """A local ``ferry import`` pays no start-up for telemetry it does not use."""
    code = "import sys, shared.telemetry, shared.importing.run; print(any(m.startswith('opentelemetry') for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert done.stdout.strip() == "False", done.stderr


RESULT = {
    "engine": "oci", "digest": "sha256:" + "a" * 64, "bytes": 1234,
    "blobs": {"copied": 2, "mounted": 1, "present": 3, "total": 6},
}  # fmt: skip


def test_a_job_span_with_its_phases_and_attributes(recorded: Recorded) -> None:
    with telemetry.job_span("j1", None, {"ferry.source": "docker.io/library/x:1", "ferry.targets": ["t/x:1"]}) as span:
        with telemetry.phase("resolve"):
            pass
        with telemetry.phase("plan", **{"ferry.manifests": 2}):
            pass
        with telemetry.phase("blob", **{"ferry.digest": "sha256:" + "b" * 64, "ferry.bytes": 10}):
            pass
        telemetry.ended(span, "succeeded", RESULT)
    spans = {s.name: s for s in recorded.spans.get_finished_spans()}
    job = spans[telemetry.JOB_SPAN]
    assert job.attributes is not None
    assert {k: job.attributes[k] for k in ("ferry.job.id", "ferry.source", "ferry.outcome", "ferry.engine")} == {
        "ferry.job.id": "j1", "ferry.source": "docker.io/library/x:1", "ferry.outcome": "succeeded", "ferry.engine": "oci",
    }  # fmt: skip
    assert tuple(job.attributes["ferry.targets"]) == ("t/x:1",)  # type: ignore[arg-type]
    assert (job.attributes["ferry.bytes"], job.attributes["ferry.blobs.copied"]) == (1234, 2)
    assert (job.attributes["ferry.blobs.mounted"], job.attributes["ferry.blobs.present"]) == (1, 3)
    assert job.status.status_code is StatusCode.OK
    for name in ("ferry.resolve", "ferry.plan", "ferry.blob"):
        parent = spans[name].parent
        assert parent is not None and parent.span_id == job.context.span_id
        assert spans[name].context.trace_id == job.context.trace_id


def test_a_failed_job_carries_its_code(recorded: Recorded) -> None:
    class Denied(Exception):
        code = "DENIED"

    with telemetry.job_span("j2", None, {}) as span:
        with pytest.raises(Denied), telemetry.phase("blob"):
            raise Denied("no")
        telemetry.ended(span, "failed", code="DENIED")
    spans = {s.name: s for s in recorded.spans.get_finished_spans()}
    for name in (telemetry.JOB_SPAN, "ferry.blob"):
        attributes = spans[name].attributes
        assert spans[name].status.status_code is StatusCode.ERROR
        assert attributes is not None and attributes["error.type"] == "DENIED"


def test_the_trace_crosses_the_queue_in_w3c_headers(recorded: Recorded) -> None:
    with telemetry.tracer().start_as_current_span("POST /api/imports") as request:
        message = {"traceparent": telemetry.carrier()}
    headers = message["traceparent"]
    assert set(headers) <= {"traceparent", "tracestate"}
    assert headers["traceparent"].split("-")[1] == f"{request.get_span_context().trace_id:032x}"
    with telemetry.job_span("j3", headers, {}):  # in another process, later: only the headers travel
        pass
    job = next(s for s in recorded.spans.get_finished_spans() if s.name == telemetry.JOB_SPAN)
    assert job.context.trace_id == request.get_span_context().trace_id
    assert job.parent is not None and job.parent.span_id == request.get_span_context().span_id


def test_no_trace_context_outside_a_span(recorded: Recorded) -> None:
    assert telemetry.carrier() == {}


def test_metrics_jobs_bytes_duration_rules_queue(recorded: Recorded) -> None:
    telemetry.record_job("succeeded", 0.4, nbytes=1000, engine="oci")
    telemetry.record_job("failed", 2.0, code="NOT_FOUND")
    telemetry.rule_status("nightly", "mirror", 1_700_000_000.0, 3)
    telemetry.watch_queue("imports", lambda: 7)
    got = recorded.metrics()
    jobs = {(p.attributes["ferry.outcome"], p.attributes.get("error.type")): p.value for p in got["ferry.jobs"]}
    assert jobs == {("succeeded", None): 1, ("failed", "NOT_FOUND"): 1}
    assert sum(p.value for p in got["ferry.copy.bytes"]) == 1000
    assert sorted(p.sum for p in got["ferry.job.duration"]) == [0.4, 2.0]
    assert 0.5 in got["ferry.job.duration"][0].explicit_bounds  # seconds, not the SDK's millisecond buckets
    behind = {p.attributes["ferry.rule"]: p.value for p in got["ferry.rule.tags_behind"]}
    assert behind["nightly"] == 3
    assert {p.attributes["ferry.rule"]: p.value for p in got["ferry.rule.last_success"]}["nightly"] == 1_700_000_000.0
    assert [p.value for p in got["ferry.queue.depth"]] == [7]


def test_a_failing_queue_probe_is_left_out(recorded: Recorded) -> None:
    def broken() -> int:
        raise ConnectionError("storage down")

    telemetry.watch_queue("imports", broken)
    assert "ferry.queue.depth" not in recorded.metrics() or recorded.metrics()["ferry.queue.depth"] == []


def test_entra_authentication_string_is_read() -> None:
    aad = {setup.AUTHENTICATION_STRING: "ClientId=abc;Authorization=AAD"}
    assert setup._aad_client_id(aad) == "abc"
    assert setup._aad_client_id({setup.AUTHENTICATION_STRING: "Authorization=AAD"}) == ""
    assert setup._aad_client_id({}) is None


class Silent:
    """A collector that takes connections and never answers them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                self.requests.append(conn.recv(200))


SCRIPT = """
import os, sys, time
from shared import telemetry
assert telemetry.configure(os.environ) == "otlp"
started = time.monotonic()
for i in range(200):
    with telemetry.job_span(f"j{i}", None, {"ferry.source": "s"}) as span:
        with telemetry.phase("blob"):
            pass
        telemetry.ended(span, "succeeded", {"bytes": 1})
    telemetry.record_job("succeeded", 0.01, nbytes=1)
print("jobs done", round(time.monotonic() - started, 3), flush=True)
time.sleep(30)
"""


@pytest.mark.process
def test_an_otlp_collector_that_never_answers_holds_up_no_job() -> None:
    collector = Silent()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.port}",
           "OTEL_BSP_SCHEDULE_DELAY": "50"}  # fmt: skip
    env.pop(setup.CONNECTION_STRING, None)
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("jobs done"), line
        for _ in range(100):  # the exporter did try, and is still waiting for an answer
            if collector.requests:
                break
            threading.Event().wait(0.05)
        assert any(r.startswith(b"POST /v1/traces") for r in collector.requests), collector.requests
    finally:
        proc.kill()
        proc.wait()
        collector.sock.close()
