"""Which exporter Ferry's traces and metrics go to, decided once per process from its settings:

- ``APPLICATIONINSIGHTS_CONNECTION_STRING``: the Azure Monitor OpenTelemetry distro
  (``configure_azure_monitor``), by Entra ID when ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING``
  says ``Authorization=AAD`` (the Bicep turns local auth off), with the identity it names;
- else ``OTEL_EXPORTER_OTLP_ENDPOINT``: OTLP over HTTP (protobuf) to that collector, the
  exporter reading the other standard ``OTEL_EXPORTER_OTLP_*`` variables itself;
- else nothing: the OpenTelemetry API's no-op tracer and meter, nothing loaded, nothing sent.

Exporters run off the job's path (a batch span processor and a periodic metric reader, each in
its own thread, with bounded queues and timeouts): an endpoint that is down loses telemetry, never
delays or fails a job. Tests hand their own providers to :func:`use` (the SDK's in-memory
exporter and reader) instead of touching the process's global ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
AUTHENTICATION_STRING = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"
OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
#: Seconds an OTLP export may take before it is given up (the exporter's thread, not a job's).
OTLP_TIMEOUT = 5.0
#: Seconds between metric exports.
METRIC_INTERVAL_MS = 60_000


@dataclass
class State:
    """The providers Ferry's tracer and meter come from: None means OpenTelemetry's global ones
    (no-op until an exporter is configured)."""

    mode: str = "off"
    tracer_provider: Any = None
    meter_provider: Any = None
    generation: int = 0


state = State()


@dataclass
class Gauges:
    """What the gauges report when collected: each rule's (kind, last success as Unix time, tags
    behind), and a probe of each queue's depth. Kept here, where no OpenTelemetry is imported."""

    rules: dict[str, tuple[str, float | None, int]] = field(default_factory=dict)
    queues: dict[str, Callable[[], int]] = field(default_factory=dict)


gauges = Gauges()


def enabled() -> bool:
    """Whether anything is recorded (spans and metrics cost nothing but a no-op call otherwise)."""
    return state.mode != "off"


def use(tracer_provider: Any = None, meter_provider: Any = None, mode: str = "test") -> None:
    """Record into these providers (tests: an in-memory exporter and reader); ``use()`` with
    none goes back to the process's global providers and the mode ``off``."""
    state.tracer_provider, state.meter_provider = tracer_provider, meter_provider
    state.mode = mode if tracer_provider is not None or meter_provider is not None else "off"
    state.generation += 1


def configure(env: Mapping[str, str], service_name: str = "ferry") -> str:
    """Set up the exporter ``env`` names, once per process; returns ``azure-monitor``, ``otlp``
    or ``off``. A failure to set up is logged and leaves telemetry off: it never stops the app."""
    if state.mode != "off":
        return state.mode
    try:
        if env.get(CONNECTION_STRING, "").strip():
            _azure_monitor(env)
            mode = "azure-monitor"
        elif env.get(OTLP_ENDPOINT, "").strip():
            _otlp(service_name)
            mode = "otlp"
        else:
            return "off"
    except Exception as exc:  # an observer must not take the service down with it
        log.warning("telemetry not set up (%s): %s", type(exc).__name__, exc)
        return "off"
    state.mode = mode
    state.generation += 1
    log.info("telemetry: %s", mode)
    return mode


def _aad_client_id(env: Mapping[str, str]) -> str | None:
    """``ClientId=<id>;Authorization=AAD`` → the identity's client id ('' for system-assigned);
    None when the string does not ask for Entra ID."""
    parts = dict(p.split("=", 1) for p in env.get(AUTHENTICATION_STRING, "").split(";") if "=" in p)
    if parts.get("Authorization", "").upper() != "AAD":
        return None
    return parts.get("ClientId", "")


def _azure_monitor(env: Mapping[str, str]) -> None:
    from azure.monitor.opentelemetry import configure_azure_monitor  # noqa: PLC0415 - loaded only when asked for

    options: dict[str, Any] = {"connection_string": env[CONNECTION_STRING].strip()}
    client_id = _aad_client_id(env)
    if client_id is not None:
        from azure.identity import ManagedIdentityCredential  # noqa: PLC0415

        options["credential"] = ManagedIdentityCredential(client_id=client_id or None)
    # The Functions host records each invocation; the worker adds Ferry's spans under it. The API's
    # request spans are Ferry's own (functions/tracing.py): the distro's FastAPI one would repeat them.
    configure_azure_monitor(instrumentation_options={"fastapi": {"enabled": False}}, **options)


def _otlp(service_name: str) -> None:
    from opentelemetry import metrics, trace  # noqa: PLC0415
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter  # noqa: PLC0415
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415
    from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader  # noqa: PLC0415
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    resource = Resource.create({"service.name": service_name})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(timeout=OTLP_TIMEOUT)))
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(timeout=OTLP_TIMEOUT), export_interval_millis=METRIC_INTERVAL_MS
    )
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
