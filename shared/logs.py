"""Logs a person reads: Ferry's own records at INFO (one line per job event, one per mirror or
promotion pass), the libraries' chatter at WARNING (the Azure SDK logs every request and
response head at INFO, httpx one line per registry request), everything at DEBUG when
``FERRY_LOG_LEVEL=DEBUG``. The core only logs; :func:`configure` is called by the processes
(the CLI's worker, the function app), which own the handlers.

Job events carry the job id, source and targets as record attributes (``extra``) too, so a
structured handler (Application Insights' custom dimensions) can index them.
"""

from __future__ import annotations

import logging
import sys

#: Loggers that speak per request: quiet unless debugging.
CHATTY = ("azure", "httpx", "httpcore", "urllib3", "uvicorn.access")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str = "INFO", *, handler: bool = True) -> None:
    """Ferry's loggers at ``level``; the chatty libraries at WARNING unless ``level`` is DEBUG.
    ``handler``: install a stderr handler (a process of Ferry's own; the Functions host has its own)."""
    if handler:
        logging.basicConfig(level=level, format=FORMAT, stream=sys.stderr)
    logging.getLogger("shared").setLevel(level)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)


def job_fields(job_id: str, source: str = "", targets: list[str] | None = None) -> dict[str, str]:
    """The structured fields of a job event (``extra=``)."""
    return {"jobId": job_id, "source": source, "targets": ", ".join(targets or ())}
