"""Ferry's OpenTelemetry: traces and metrics that Application Insights (through the Azure Monitor
distro) or any OTLP collector understands, and nothing at all when neither is configured.

- :mod:`.setup`: which exporter, from ``APPLICATIONINSIGHTS_CONNECTION_STRING`` or
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` (learn.microsoft.com, "Use OpenTelemetry with Azure Functions":
  in Python the worker configures its exporter itself; the host exports its own).
- :mod:`.spans`: a span per job and one per phase (resolve, plan, each blob and manifest, tags);
  the W3C trace context carried in the queue message, so a job's trace continues the request's.
- :mod:`.meters`: jobs by outcome and code, bytes copied, job duration, each rule's last success
  and tags behind, queue depth.

Only the OpenTelemetry API is imported here; the SDK and exporters load only when configured.
Every call is cheap and never raises into a job: telemetry is an observer.
"""

from shared.telemetry.meters import Meters, meters, record_job, rule_status, watch_queue
from shared.telemetry.setup import configure, enabled, use
from shared.telemetry.spans import (
    JOB_SPAN,
    carrier,
    ended,
    job_span,
    phase,
    tracer,
)

__all__ = [
    "JOB_SPAN",
    "Meters",
    "carrier",
    "configure",
    "enabled",
    "ended",
    "job_span",
    "meters",
    "phase",
    "record_job",
    "rule_status",
    "tracer",
    "use",
    "watch_queue",
]
