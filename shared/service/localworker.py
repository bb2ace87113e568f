"""``python -m shared.cli worker``: the queue trigger's job outside the Functions host, with the
host's rules (Azure Functions queue trigger, "Poison messages" and "Peek lock"):

- a message is received hidden for ``lease`` seconds, and kept hidden while it runs;
- on success it is deleted; on :class:`RetryLater` it becomes visible again after
  ``retry_delay`` seconds, unless this was delivery ``max_dequeue_count``: then it moves to
  ``<queue>-poison``;
- SIGTERM stops the loop; the message in hand is made visible again at once;
- an empty queue is polled as the host polls it (the queue trigger's "polling algorithm"):
  again at once after a message, then after 0.1 s, doubling with jitter up to
  ``FERRY_MAX_POLLING_SECONDS`` (host.json's ``maxPollingInterval``).

Several workers may run at once: the queue hands each message to one of them at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from collections.abc import Callable

from shared.azure_storage.queue import Received
from shared.service.jobs import RetryLater
from shared.service.runevents import serve_events
from shared.service.wiring import Services, event_sender

log = logging.getLogger(__name__)


class _Lease:
    """A message in hand, kept hidden while its job runs: the queue hands back a new receipt
    each time the lease is renewed, so ``message`` is always the latest one."""

    def __init__(self, services: Services, message: Received) -> None:
        self.services = services
        self.message = message

    async def keep(self) -> None:
        lease = self.services.settings.lease
        while True:
            await asyncio.sleep(lease / 2)
            self.message = await asyncio.to_thread(self.services.queue.extend, self.message, lease)


async def process(services: Services, message: Received) -> None:
    """Run one received message to its end, as the host would."""
    settings, queue = services.settings, services.queue
    if message.dequeue_count > settings.max_dequeue_count:
        await asyncio.to_thread(queue.to_poison, message)
        return
    lease = _Lease(services, message)
    keeper = asyncio.create_task(lease.keep())
    try:
        await services.worker.handle(message.content, message.dequeue_count)
    except RetryLater:
        keeper.cancel()
        if message.dequeue_count >= settings.max_dequeue_count:
            await asyncio.to_thread(queue.to_poison, lease.message)
        else:
            await asyncio.to_thread(queue.extend, lease.message, settings.retry_delay)
        return
    except asyncio.CancelledError:
        keeper.cancel()
        with contextlib.suppress(Exception):
            await asyncio.shield(asyncio.to_thread(queue.extend, lease.message, 0))
        raise
    finally:
        keeper.cancel()
    await asyncio.to_thread(queue.delete, lease.message)


class Polling:
    """How long to wait before the next look at the queue: none after a message, then from
    ``first`` doubling, each wait jittered by ±20 %, never over ``maximum``."""

    def __init__(self, maximum: float, first: float = 0.1, jitter: Callable[[], float] = random.random) -> None:
        self.maximum = maximum
        self.first = min(first, maximum)
        self._jitter = jitter
        self._next = self.first

    def found(self) -> None:
        self._next = self.first

    def empty(self) -> float:
        """The wait after an empty look."""
        wait = min(self.maximum, self._next * (0.8 + 0.4 * self._jitter()))
        self._next = min(self.maximum, self._next * 2)
        return wait


async def serve(services: Services, *, idle: float | None = None, once: bool = False) -> None:
    """Poll until SIGTERM/SIGINT (or, with ``once``, until the queue is empty); ``idle`` caps
    the wait between polls (default ``FERRY_MAX_POLLING_SECONDS``)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    log.info("worker polling queue %s", services.settings.queue_name)
    polling = Polling(idle if idle is not None else services.settings.max_polling)
    sender = event_sender(services)  # run events, beside the jobs: a slow subscriber holds no job
    wake = asyncio.Event()  # a run this process ends has its event looked for at once

    def woken() -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to wake
            loop.call_soon_threadsafe(wake.set)

    services.runs.on_queued = woken
    lease = services.settings.lease
    events = asyncio.create_task(
        serve_events(services.events, sender, stop, lease=lease, poll=polling.maximum, wake=wake)
    )
    try:
        await _jobs(services, stop, polling, once)
    finally:
        stop.set()
        services.runs.on_queued = None
        await events
        await sender.publisher.aclose()
    log.info("worker stopped")


async def _jobs(services: Services, stop: asyncio.Event, polling: Polling, once: bool) -> None:
    while not stop.is_set():
        message = await asyncio.to_thread(services.queue.receive, services.settings.lease)
        if message is None:
            if once:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), polling.empty())
            continue
        polling.found()
        task = asyncio.create_task(process(services, message))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            log.info("worker stopped; message %s is visible again", message.id)
            return
        task.result()
