"""Metrics: what an SLO or an alert reads.

| instrument | kind | unit | attributes |
|---|---|---|---|
| ``ferry.jobs`` | counter | ``{job}`` | ``ferry.outcome`` (succeeded, failed, cancelled, retrying), ``error.type`` |
| ``ferry.copy.bytes`` | counter | ``By`` | ``ferry.engine`` |
| ``ferry.job.duration`` | histogram | ``s`` | ``ferry.outcome`` |
| ``ferry.rule.last_success`` | gauge | ``s`` (Unix time) | ``ferry.rule``, ``ferry.rule.kind`` |
| ``ferry.rule.tags_behind`` | gauge | ``{tag}`` | ``ferry.rule``, ``ferry.rule.kind`` |
| ``ferry.queue.depth`` | gauge | ``{message}`` | ``messaging.destination.name`` |

Names and units follow OpenTelemetry's conventions (UCUM units, ``{annotations}`` for counts,
``error.type`` for the failure's code); no semantic convention names a job or a mirror, so those
are Ferry's own. The gauges are read when the exporter collects (every minute), from values the
mirror pass and the worker leave here, and a queue probe that may fail without harm.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from shared.telemetry.setup import gauges, state

log = logging.getLogger(__name__)

#: Job duration buckets in seconds: a small image takes well under a second, a big one minutes,
#: the ARM engine's limit is 30 min.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


def _last_success(options: CallbackOptions) -> Iterable[Observation]:
    return [
        Observation(last, {"ferry.rule": name, "ferry.rule.kind": kind})
        for name, (kind, last, _) in list(gauges.rules.items())
        if last is not None
    ]


def _behind(options: CallbackOptions) -> Iterable[Observation]:
    return [
        Observation(behind, {"ferry.rule": name, "ferry.rule.kind": kind})
        for name, (kind, _, behind) in list(gauges.rules.items())
    ]


def _depth(options: CallbackOptions) -> Iterable[Observation]:
    out = []
    for name, depth in list(gauges.queues.items()):
        try:
            out.append(Observation(depth(), {"messaging.destination.name": name}))
        except Exception as exc:  # storage did not answer: no point this time
            log.debug("queue depth of %s not read: %s", name, type(exc).__name__)
    return out


class Meters:
    """Ferry's instruments, made from one meter."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.jobs = meter.create_counter("ferry.jobs", unit="{job}", description="Job attempts ended, by outcome")
        self.bytes = meter.create_counter("ferry.copy.bytes", unit="By", description="Blob bytes sent to targets")
        self.duration = meter.create_histogram(
            "ferry.job.duration", unit="s", description="How long a job attempt ran",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )  # fmt: skip
        meter.create_observable_gauge(
            "ferry.rule.last_success", [_last_success], unit="s", description="When each rule last succeeded (Unix s)"
        )
        meter.create_observable_gauge(
            "ferry.rule.tags_behind", [_behind], unit="{tag}", description="Tags a rule's target lacks or has stale"
        )
        meter.create_observable_gauge("ferry.queue.depth", [_depth], unit="{message}", description="Messages waiting")


@functools.cache
def _meters(generation: int, provider: Any) -> Meters:
    return Meters(metrics.get_meter("ferry", meter_provider=provider))


def meters() -> Meters:
    return _meters(state.generation, state.meter_provider)


def record_job(
    outcome: str, seconds: float, code: str | None = None, nbytes: int = 0, engine: str | None = None
) -> None:
    """One job attempt ended: counted by outcome and code, timed, its bytes added."""
    m = meters()
    attrs = {"ferry.outcome": outcome, **({"error.type": code} if code else {})}
    m.jobs.add(1, attrs)
    m.duration.record(seconds, {"ferry.outcome": outcome})
    if nbytes:
        m.bytes.add(nbytes, {"ferry.engine": engine or "oci"})
