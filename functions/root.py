"""The composition root: the process's services, from app settings, built once (a bad setting
fails here, naming it)."""

from __future__ import annotations

import functools
import os

from shared import environment, logs
from shared.automation.calls import rules_at_startup
from shared.service.wiring import Services, build, observe
from shared.settings import Settings

__all__ = ["Services", "services"]


@functools.cache
def services() -> Services:
    built = build(Settings.from_env(os.environ))
    observe(built, os.environ)  # telemetry as the app settings say: Application Insights, OTLP or none
    return built


def check_at_startup() -> None:
    """Under the Functions host, read the settings as the app loads, so a missing or bad one
    stops the app at start-up with a message naming it (not at the first request), and so does a
    bad rules file (naming the file, rule and field); the
    libraries' per-request logs are quieted (the host owns the handlers)."""
    if os.environ.get("FUNCTIONS_WORKER_RUNTIME"):
        logs.configure(environment.log_level(os.environ), handler=False)
        rules_at_startup(Settings.from_env(os.environ).rules_file)
