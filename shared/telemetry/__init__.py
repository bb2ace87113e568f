"""Ferry's OpenTelemetry: traces and metrics that Application Insights (through the Azure Monitor
distro) or any OTLP collector understands, and nothing at all when neither is configured.

- :mod:`.setup`: which exporter, from ``APPLICATIONINSIGHTS_CONNECTION_STRING`` or
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` (learn.microsoft.com, "Use OpenTelemetry with Azure Functions":
  in Python the worker configures its exporter itself; the host exports its own).
- :mod:`.spans`: a span per job and one per phase (resolve, plan, each blob and manifest, tags);
  the W3C trace context carried in the queue message, so a job's trace continues the request's.
- :mod:`.meters`: jobs by outcome and code, bytes copied, job duration, each rule's last success
  and tags behind, queue depth.

This module is the facade the rest of Ferry calls. Off (the default), it imports nothing of
OpenTelemetry (a local ``ferry import`` pays no start-up for it) and each call returns at once;
on, it loads :mod:`.spans` and :mod:`.meters`. Every call is cheap and never raises into a job:
telemetry is an observer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from shared.telemetry.setup import configure, enabled, gauges, use

JOB_SPAN = "ferry.import"


class NoSpan:
    """The span of a call made while telemetry is off: takes everything, records nothing."""

    def is_recording(self) -> bool:
        return False

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        pass


NO_SPAN = NoSpan()


def tracer() -> Any:
    from shared.telemetry import spans  # noqa: PLC0415 - OpenTelemetry loads only when asked for

    return spans.tracer()


def carrier() -> dict[str, str]:
    """The current trace context as W3C headers (``traceparent``, ``tracestate``), for a queue
    message; {} when telemetry is off or no span is current."""
    if not enabled():
        return {}
    from shared.telemetry import spans  # noqa: PLC0415

    return spans.carrier()


@contextlib.contextmanager
def job_span(job_id: str, parent: Mapping[str, str] | None, attributes: Mapping[str, Any]) -> Iterator[Any]:
    """The span of one delivery of a job, continuing the trace in ``parent``; see :func:`ended`."""
    if not enabled():
        yield NO_SPAN
        return
    from shared.telemetry import spans  # noqa: PLC0415

    with spans.job_span(job_id, parent, attributes) as span:
        yield span


@contextlib.contextmanager
def phase(name: str, **attributes: Any) -> Iterator[Any]:
    """A child span for one phase of a job (``resolve``, ``plan``, ``manifest``, ``blob``, ``tags``)."""
    if not enabled():
        yield NO_SPAN
        return
    from shared.telemetry import spans  # noqa: PLC0415

    with spans.phase(name, **attributes) as span:
        yield span


def current() -> Any:
    """The span current here (the job's, inside :func:`job_span`)."""
    if not enabled():
        return NO_SPAN
    from opentelemetry import trace  # noqa: PLC0415

    return trace.get_current_span()


def ended(span: Any, outcome: str, result: Mapping[str, Any] | None = None, code: str | None = None) -> None:
    """Put a job's outcome on its span (engine, digest, bytes, blobs; or the error's code)."""
    if span is NO_SPAN or not enabled():
        return
    from shared.telemetry import spans  # noqa: PLC0415

    spans.ended(span, outcome, result, code)


def record_job(
    outcome: str, seconds: float, code: str | None = None, nbytes: int = 0, engine: str | None = None
) -> None:
    """One job attempt ended: counted by outcome and code, timed, its bytes added."""
    if not enabled():
        return
    from shared.telemetry import meters  # noqa: PLC0415

    meters.record_job(outcome, seconds, code, nbytes, engine)


def rule_status(name: str, kind: str, last_success: float | None, behind: int) -> None:
    """The latest known state of a rule, for the ``ferry.rule.*`` gauges."""
    gauges.rules[name] = (kind, last_success, behind)


def watch_queue(name: str, depth: Callable[[], int]) -> None:
    """Report ``depth()`` (an approximate message count) as the queue's depth when collected."""
    gauges.queues[name] = depth


__all__ = [
    "JOB_SPAN",
    "NO_SPAN",
    "carrier",
    "configure",
    "current",
    "enabled",
    "ended",
    "job_span",
    "phase",
    "record_job",
    "rule_status",
    "tracer",
    "use",
    "watch_queue",
]
