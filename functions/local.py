"""The function app as ``func start`` would serve it, for ``make up``: the HTTP API, the Event Grid
trigger on the route the Functions host gives it locally, and the timer's mirror pass on its
schedule. Not registered in Azure (``function_app.py`` does that with the real triggers).

- ``POST /runtime/webhooks/eventgrid?functionName=on_image_pushed``: Event Grid schema (an array
  of events, ``aeg-event-type: Notification``) or CloudEvents (one event or a batch); the
  subscription validation handshake of both (``SubscriptionValidationEvent`` →
  ``validationResponse``; CloudEvents' ``OPTIONS`` → ``WebHook-Allowed-Origin``).
- the mirror pass at each time ``FERRY_MIRROR_SCHEDULE`` (NCRONTAB, six fields, UTC) names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from functions.events import event_grid_shape
from functions.http import create_app
from functions.root import services
from shared import environment, logs
from shared.automation.calls import explained_event, rules_at_startup, run_mirrors
from shared.errors import ConfigurationError
from shared.settings import Settings

log = logging.getLogger(__name__)
VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
FUNCTION = "on_image_pushed"


def _field(text: str, low: int, high: int) -> set[int]:
    """One NCRONTAB field: ``*``, ``*/n``, ``a-b``, ``a,b``, numbers."""
    values: set[int] = set()
    for item in text.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if span in ("*", ""):
            first, last = low, high
        elif "-" in span:
            first, last = (int(x) for x in span.split("-", 1))
        else:
            first = last = int(span)
        values.update(range(first, last + 1, step))
    return values


def next_run(schedule: str, after: datetime) -> datetime:
    """The first second after ``after`` that the NCRONTAB ``schedule`` names (within a year)."""
    sec, minute, hour, day, month, weekday = schedule.split()
    fields = (_field(sec, 0, 59), _field(minute, 0, 59), _field(hour, 0, 23), _field(day, 1, 31),
              _field(month, 1, 12), _field(weekday, 0, 6))  # fmt: skip
    moment = after.replace(microsecond=0) + timedelta(seconds=1)
    for _ in range(366 * 24 * 60):  # a minute at a time, seconds within it
        day_fits = moment.month in fields[4] and moment.day in fields[3] and (moment.isoweekday() % 7) in fields[5]
        if day_fits and moment.hour in fields[2] and moment.minute in fields[1]:
            seconds = sorted(s for s in fields[0] if s >= moment.second)
            if seconds:
                return moment.replace(second=seconds[0])
        moment = (moment + timedelta(minutes=1)).replace(second=0)
    raise ValueError(f"schedule {schedule!r} names no time within a year")


async def _timer(schedule: str) -> None:
    while True:
        now = datetime.now(UTC)
        await asyncio.sleep((next_run(schedule, now) - now).total_seconds())
        try:
            reports = await run_mirrors(services())
            log.info("mirror pass: %s", "; ".join(f"{r['name']}: {len(r['enqueued'])} enqueued" for r in reports))
        except Exception as exc:  # the next pass tries again, as the host's timer does
            log.warning("mirror pass failed: %s", exc)


def _events(body: Any, request: Request) -> list[dict[str, Any]]:
    """The events of a delivery, in the Event Grid schema's shape (CloudEvents mapped onto it)."""
    items = body if isinstance(body, list) else [body]
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if "specversion" in item:  # CloudEvents 1.0
            out.append(event_grid_shape(*(item.get(k) for k in ("id", "type", "source", "subject", "data"))))
        else:
            out.append(item)
    return out


def add_local_routes(app: FastAPI) -> None:
    @app.options("/runtime/webhooks/eventgrid")
    async def cloudevents_handshake(request: Request) -> Response:
        origin = request.headers.get("webhook-request-origin", "*")
        return Response(status_code=200, headers={"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "120"})

    @app.post("/runtime/webhooks/eventgrid")
    async def eventgrid(request: Request, functionName: str = FUNCTION) -> Any:
        if functionName != FUNCTION:
            problem = {"code": "NOT_FOUND", "message": f"no function {functionName!r}"}
            return JSONResponse(status_code=404, content=problem)
        events = _events(await request.json(), request)
        for event in events:
            if event.get("eventType") == VALIDATION:
                return {"validationResponse": (event.get("data") or {}).get("validationCode")}
        outcomes = [await explained_event(services(), event) for event in events]
        jobs = [job for outcome in outcomes for job in outcome.jobs]
        return {"jobs": jobs, "events": [outcome.as_dict() for outcome in outcomes]}


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    schedule = os.environ.get("FERRY_MIRROR_SCHEDULE", "").strip()
    task = asyncio.create_task(_timer(schedule)) if schedule and os.environ.get("FERRY_RULES_FILE") else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()


logs.configure(environment.log_level(os.environ))  # this process's own log: one line per job event
try:  # as the function app does: a bad setting or rules file stops the service here, named
    rules_at_startup(Settings.from_env(os.environ).rules_file)
except ConfigurationError as exc:
    sys.exit(f"ferry: {exc}")
app = create_app()
app.router.lifespan_context = lifespan
add_local_routes(app)
