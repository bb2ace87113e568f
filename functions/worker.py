"""The queue trigger: one import per message, under the function app's managed identity.

The host retries a message whose function raised, and after ``maxDequeueCount`` (host.json)
moves it to ``imports-poison``; :class:`RetryLater` is how the worker asks for that.
"""

from __future__ import annotations

import functools

import azure.functions as func

from functions.root import services
from shared.service.runevents import EventSender
from shared.service.wiring import event_sender

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.queue_trigger(arg_name="msg", queue_name="%FERRY_QUEUE%", connection="AzureWebJobsStorage")
async def import_worker(msg: func.QueueMessage) -> None:
    await services().worker.handle(msg.get_body().decode("utf-8"), msg.dequeue_count or 1)


@bp.queue_trigger(arg_name="msg", queue_name="%FERRY_QUEUE%-events", connection="AzureWebJobsStorage")
async def run_events(msg: func.QueueMessage) -> None:
    """A run's end event, delivered off the jobs' path (shared/service/runevents.py)."""
    await _sender().handle(msg.get_body().decode("utf-8"))


@functools.cache
def _sender() -> EventSender:
    return event_sender(services())
