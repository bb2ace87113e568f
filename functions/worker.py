"""The queue trigger: one import per message, under the function app's managed identity.

The host retries a message whose function raised, and after ``maxDequeueCount`` (host.json)
moves it to ``imports-poison``; :class:`RetryLater` is how the worker asks for that.
"""

from __future__ import annotations

import azure.functions as func

from functions.root import services

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.queue_trigger(arg_name="msg", queue_name="%FERRY_QUEUE%", connection="AzureWebJobsStorage")
async def import_worker(msg: func.QueueMessage) -> None:
    await services().worker.handle(msg.get_body().decode("utf-8"), msg.dequeue_count or 1)
