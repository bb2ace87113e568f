"""Thin triggers: parse the input, make one call into ``shared``, map the result."""

from __future__ import annotations

import azure.functions as func


def register(app: func.FunctionApp) -> None:
    """Register every trigger's blueprint on ``app``. The HTTP API, queue worker, Event Grid and
    timer triggers arrive with their issues; an app without functions is valid meanwhile."""
    del app
