"""Push notifications from any registry that sends distribution's envelope (CNCF distribution, the
``registry:2`` image, Debian's ``docker-registry``, Harbor's and GitLab's registries are built on
it): ``POST /api/notifications`` with ``{"events": [...]}``, as distribution's ``notifications:
endpoints:`` send it (docs/notifications.md of distribution: ``action``, ``target.repository``,
``target.tag``, ``target.digest``, ``request.host``). Each ``push`` is promoted by the same rules as
an Event Grid ``ImagePushed``; pulls, mounts, deletes and digest-only (blob or child) pushes promote
nothing. The answer names the jobs and, per event and rule, why it matched or not."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.automation.calls import explained_event
from shared.automation.passes import PUSHED
from shared.errors import BadRequest
from shared.service.wiring import Services

#: The envelope's media types (distribution's notifications/event.go), and plain JSON for curl.
MEDIA_TYPES = (
    "application/vnd.docker.distribution.events.v1+json",
    "application/vnd.docker.distribution.events.v2+json",
    "application/json",
)


def as_event(item: dict[str, Any]) -> dict[str, Any]:
    """One distribution event in the Event Grid shape the promotions read: a ``push`` is an
    ``ImagePushed`` whose ``data`` is the event itself (ACR's data has the same fields)."""
    action = item.get("action")
    kind = PUSHED if action == "push" else f"distribution.{action}"
    return {"id": item.get("id"), "eventType": kind, "data": item}


def _envelope(raw: bytes, content_type: str) -> list[dict[str, Any]]:
    if content_type.split(";", maxsplit=1)[0].strip().lower() not in MEDIA_TYPES:
        raise BadRequest("Content-Type", f"expected {MEDIA_TYPES[0]} (distribution's envelope) or application/json")
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise BadRequest("body", f"not JSON: {exc}") from None
    events = doc.get("events") if isinstance(doc, dict) else None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise BadRequest("events", 'expected {"events": [...]}, distribution\'s notification envelope')
    return events


def add_notification_routes(app: FastAPI, get_services: Callable[[], Services]) -> None:
    @app.post("/api/notifications", responses={400: {"description": "Not distribution's envelope"}})
    async def notifications(request: Request) -> JSONResponse:
        """A registry's push notifications (distribution's envelope): each tagged push promoted
        by the rules file; the jobs, and per event and rule why it matched or not."""
        events = _envelope(await request.body(), request.headers.get("content-type", ""))
        outcomes = [await explained_event(get_services(), as_event(e)) for e in events]
        jobs = [job for o in outcomes for job in o.jobs]
        return JSONResponse({"jobs": jobs, "events": [o.as_dict() for o in outcomes]})
