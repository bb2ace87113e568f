"""The Event Grid trigger: ``ImagePushed`` on the dev registry → promotions from the rules file.
Validation handshakes are the extension's; malformed events are logged and dropped, never
retried forever."""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from functions.root import services
from shared.automation.calls import on_event

bp = func.Blueprint()  # type: ignore[no-untyped-call]
log = logging.getLogger(__name__)


def event_grid_shape(event_id: Any, event_type: Any, topic: Any, subject: Any, data: Any) -> dict[str, Any]:
    """An event in the Event Grid schema's shape, which the promotions read. A CloudEvent maps
    onto it with ``type`` as ``eventType`` and ``source`` as ``topic``."""
    return {"id": event_id, "eventType": event_type, "topic": topic, "subject": subject, "data": data}


def as_dict(event: Any) -> dict[str, Any]:
    """``func.EventGridEvent`` or ``func.CloudEvent`` as the documented JSON shape."""
    try:
        data = event.get_json()
    except ValueError:
        data = None
    return event_grid_shape(
        getattr(event, "id", None),
        getattr(event, "event_type", None) or getattr(event, "type", None),
        getattr(event, "topic", None) or getattr(event, "source", None),
        getattr(event, "subject", None),
        data,
    )


@bp.event_grid_trigger(arg_name="event")
async def on_image_pushed(event: func.EventGridEvent) -> None:
    await on_event(services(), as_dict(event))
