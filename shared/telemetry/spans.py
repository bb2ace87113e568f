"""Spans: one per job (a consumer span under the trace that made the job), one per phase under it.

The trace crosses the queue as the W3C trace context (``traceparent``, ``tracestate``; w3.org
"Trace Context") in the job's message: :func:`carrier` takes it from the span current where the
job is made (the HTTP request, the Event Grid delivery, the timer), :func:`job_span` continues it.
Attribute names follow OpenTelemetry's semantic conventions where one exists (``error.type``,
``messaging.*``); Ferry's own are under ``ferry.``. No attribute holds a secret: references,
digests, codes and counts only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.telemetry.setup import state

JOB_SPAN = "ferry.import"
_W3C = TraceContextTextMapPropagator()


def tracer() -> trace.Tracer:
    return trace.get_tracer("ferry", tracer_provider=state.tracer_provider)


def carrier() -> dict[str, str]:
    """The current trace context as W3C headers, for a queue message ({} when there is none)."""
    out: dict[str, str] = {}
    if trace.get_current_span().get_span_context().is_valid:
        _W3C.inject(out)
    return out


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "code", None) or type(exc).__name__)


@contextlib.contextmanager
def job_span(job_id: str, parent: Mapping[str, str] | None, attributes: Mapping[str, Any]) -> Iterator[Span]:
    """The span of one delivery of a job, continuing the trace in ``parent`` (the message's W3C
    headers). Its outcome is set by :func:`ended`."""
    context = _W3C.extract(dict(parent)) if parent else None
    attrs = {"ferry.job.id": job_id, "messaging.operation.type": "process", **_plain(attributes)}
    with tracer().start_as_current_span(
        JOB_SPAN, context=context, kind=SpanKind.CONSUMER, attributes=attrs,
        record_exception=False, set_status_on_exception=False,
    ) as span:  # fmt: skip
        try:
            yield span
        except BaseException as exc:
            if span.is_recording() and "ferry.outcome" not in getattr(span, "attributes", {}):
                span.set_status(Status(StatusCode.ERROR, _code(exc)))
                span.set_attribute("error.type", _code(exc))
            raise


@contextlib.contextmanager
def phase(name: str, **attributes: Any) -> Iterator[Span]:
    """A child span for one phase of a job (``resolve``, ``plan``, ``blob``, ``manifest``,
    ``tags``); an exception leaving it marks it failed with the error's code."""
    with tracer().start_as_current_span(
        f"ferry.{name}", attributes=_plain(attributes), record_exception=False, set_status_on_exception=False
    ) as span:
        try:
            yield span
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, _code(exc)))
            span.set_attribute("error.type", _code(exc))
            raise


def ended(span: Span, outcome: str, result: Mapping[str, Any] | None = None, code: str | None = None) -> None:
    """Put the job's outcome on its span: engine, digest, bytes and blob counts from the result, or
    the error's code (``error.type``) for a failure."""
    if not span.is_recording():
        return
    attrs: dict[str, Any] = {"ferry.outcome": outcome}
    if result:
        found = result.get("blobs")
        blobs: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        attrs.update({
            "ferry.engine": result.get("engine"), "ferry.digest": result.get("digest"),
            "ferry.bytes": result.get("bytes"), "ferry.blobs.copied": blobs.get("copied"),
            "ferry.blobs.mounted": blobs.get("mounted"), "ferry.blobs.present": blobs.get("present"),
            "ferry.up_to_date": result.get("upToDate"),
        })  # fmt: skip
    if code:
        attrs["error.type"] = code
        span.set_status(Status(StatusCode.ERROR, code))
    elif outcome == "succeeded":
        span.set_status(Status(StatusCode.OK))
    span.set_attributes(_plain(attrs))


def _plain(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute values OpenTelemetry takes: None left out, lists of text kept, others as text."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, (bool, int, float, str)):
            out[key] = value
        elif isinstance(value, (list, tuple)):
            out[key] = [str(v) for v in value]
        else:
            out[key] = str(value)
    return out
