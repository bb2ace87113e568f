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


def as_dict(event: Any) -> dict[str, Any]:
    """``func.EventGridEvent`` or ``func.CloudEvent`` as the documented JSON shape."""
    try:
        data = event.get_json()
    except ValueError:
        data = None
    return {
        "id": getattr(event, "id", None),
        "eventType": getattr(event, "event_type", None) or getattr(event, "type", None),
        "topic": getattr(event, "topic", None) or getattr(event, "source", None),
        "subject": getattr(event, "subject", None),
        "data": data,
    }


@bp.event_grid_trigger(arg_name="event")
async def on_image_pushed(event: func.EventGridEvent) -> None:
    await on_event(services(), as_dict(event))
