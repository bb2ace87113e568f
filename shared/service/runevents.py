"""Run events off the jobs' path: a run that ends puts a message on ``<queue>-events``
(:meth:`shared.service.runs.Runs.queue_event`); this module takes it from there. A slow or dead
subscriber holds only its own event's delivery, never a job.

:class:`EventSender` handles one message: it claims the event on the run's record (so a repeated
message does not deliver it twice while the first is at work), builds the CloudEvent from the run
as it stands (:mod:`shared.runs.event`), delivers it to each destination that wants it
(:mod:`shared.events.delivery`) and records each outcome on the run: ``delivered``, or
``undelivered`` with the attempts and the last error. :func:`serve_events` is the loop the local
worker runs beside its jobs; in Azure the ``run_events`` queue trigger calls :meth:`handle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from shared.azure_storage.queue import Received
from shared.azure_storage.runs import RunStore
from shared.events.config import EventsConfig
from shared.events.delivery import Outcome, deliver, wanted
from shared.events.publish import Publisher
from shared.runs.event import cloud_event, encode
from shared.runs.model import DestinationOutcome, RunChange, RunRecord, StoredEvent

log = logging.getLogger(__name__)

#: Events delivered at once by one worker.
CONCURRENCY = 16
#: Seconds a stopping worker lets a delivery already under way end before cutting it.
STOP_GRACE = 5.0


class EventQueue(Protocol):
    def receive(self, lease: float) -> Received | None: ...
    def extend(self, message: Received, seconds: float) -> Received: ...
    def delete(self, message: Received) -> None: ...


def _now() -> datetime:
    return datetime.now(UTC)


class EventBusy(Exception):
    """Another worker is delivering this event: the message comes back later (after its lease),
    and by then the other has finished, or died and its claim has lapsed."""


class EventSender:
    """Delivers one run's event (see the module's docstring)."""

    def __init__(self, records: RunStore, config: EventsConfig, publisher: Publisher, claim: float = 120.0) -> None:
        self.records = records
        self.config = config
        self.publisher = publisher
        #: Seconds a claim on an event holds unless renewed (it is, every third of it, while the
        #: event is delivered): a dead worker's claim lapses this long after its death.
        self.claim = claim

    async def handle(self, content: str) -> None:
        """Deliver the event the message names; :class:`EventBusy` when another worker is at it."""
        try:
            run_id = str(json.loads(content)["run"])
        except (ValueError, KeyError, TypeError):
            log.error("dropping a malformed event message")
            return
        token = secrets.token_hex(8)
        claim = asyncio.ensure_future(asyncio.to_thread(self.records.change, run_id, lambda h: self._claim(h, token)))
        try:
            header = await asyncio.shield(claim)
            event = header.event if header is not None else None
            if header is None or event is None or event.state not in ("delivering", "pending", "queued"):
                return  # no such run, or its event is done
            if event.claimedBy != token:
                raise EventBusy(f"run {run_id}: its event is being delivered by another worker")
            renew = asyncio.create_task(self._renew(run_id, token))
            sending = asyncio.ensure_future(self._deliver(run_id, header, event))
            try:
                await _despite_a_stop(sending)
            finally:
                renew.cancel()
        except asyncio.CancelledError:  # stopped mid-way: another worker may take it at once
            with contextlib.suppress(Exception):
                await asyncio.shield(self._release(claim, run_id, token))
            raise
        await asyncio.to_thread(self.records.change, run_id, _finished)

    async def _deliver(self, run_id: str, header: RunRecord, event: StoredEvent) -> None:
        run = header.view(await asyncio.to_thread(self.records.jobs, run_id))
        done = {n for n, o in event.destinations.items() if o.state in ("delivered", "undelivered")}
        todo = [d for d in wanted(self.config, run.state) if d.name not in done]
        document = cloud_event(run, self.config.source)

        async def report(name: str, outcome: Outcome) -> None:
            await asyncio.to_thread(
                self.records.change, run_id, _outcome(name, DestinationOutcome.model_validate(outcome))
            )

        await deliver(self.config, self.publisher, document["id"], encode(document), todo, report)

    def _claim(self, header: RunRecord, token: str) -> RunChange | None:
        event = header.event
        if event is None or event.state not in ("pending", "queued", "delivering"):
            return None
        if event.state == "delivering" and event.claimedUntil is not None and event.claimedUntil > _now():
            return None  # held by another worker
        until = _now() + timedelta(seconds=self.claim)
        return RunChange(
            event=event.model_copy(update={"state": "delivering", "claimedBy": token, "claimedUntil": until})
        )

    async def _renew(self, run_id: str, token: str) -> None:
        def extend(header: RunRecord) -> RunChange | None:
            event = header.event
            if event is None or event.claimedBy != token:
                return None
            return RunChange(event=event.model_copy(update={"claimedUntil": _now() + timedelta(seconds=self.claim)}))

        while True:
            await asyncio.sleep(self.claim / 3)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.records.change, run_id, extend)

    async def _release(self, claim: asyncio.Future[RunRecord | None], run_id: str, token: str) -> None:
        """Give the claim up, once it has landed (the claim's write may still be under way)."""
        with contextlib.suppress(Exception):
            await claim
        await asyncio.to_thread(self.records.change, run_id, lambda h: _unclaimed(h, token))


async def _despite_a_stop(sending: asyncio.Future[None]) -> None:
    """Await a delivery; on a stop, let a request already on its way end (for at most
    :data:`STOP_GRACE` seconds) rather than cut it: a subscriber that got the event before the cut
    would get it again from the next worker. Cancelled (so released) only if it does not end."""
    try:
        await asyncio.shield(sending)
    except asyncio.CancelledError:
        done, _ = await asyncio.wait({sending}, timeout=STOP_GRACE)
        if not done or sending.cancelled() or sending.exception() is not None:
            sending.cancel()
            raise
        # delivered: the stop is honoured once the event is recorded as done (the caller goes on)


def _unclaimed(header: RunRecord, token: str) -> RunChange | None:
    event = header.event
    if event is None or event.claimedBy != token:
        return None
    return RunChange(event=event.model_copy(update={"state": "queued", "claimedBy": None, "claimedUntil": None}))


def _outcome(name: str, outcome: DestinationOutcome) -> Callable[[RunRecord], RunChange | None]:
    def change(header: RunRecord) -> RunChange | None:
        event = header.event
        if event is None:
            return None
        return RunChange(event=event.model_copy(update={"destinations": {**event.destinations, name: outcome}}))

    return change


def _finished(header: RunRecord) -> RunChange | None:
    """The event's state from its destinations': ``none`` when no destination wanted it."""
    event = header.event
    if event is None:
        return None
    outcomes = [o.state for o in event.destinations.values()]
    state = "none" if not outcomes else "delivered" if all(s == "delivered" for s in outcomes) else "undelivered"
    return RunChange(event=event.model_copy(update={"state": state, "claimedBy": None, "claimedUntil": None}))


async def serve_events(
    queue: EventQueue,
    sender: EventSender,
    stop: asyncio.Event,
    *,
    lease: float,
    poll: float,
    wake: asyncio.Event | None = None,
) -> None:
    """Take event messages until ``stop``: each delivered in a task of its own (at most
    :data:`CONCURRENCY`), its message kept hidden while it runs and deleted when it is done."""
    gate = asyncio.Semaphore(CONCURRENCY)
    tasks: set[asyncio.Task[None]] = set()
    while not stop.is_set():
        await gate.acquire()
        message = await asyncio.to_thread(queue.receive, lease)
        if message is None:
            gate.release()
            await _idle(stop, wake, poll)
            continue
        if stop.is_set():  # taken while stopping: given back at once
            gate.release()
            await asyncio.to_thread(queue.extend, message, 0)
            break
        task = asyncio.create_task(_one(queue, sender, message, lease, gate))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.sleep(0)  # every task makes its first step: one cancelled before it cleans nothing up
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _idle(stop: asyncio.Event, wake: asyncio.Event | None, poll: float) -> None:
    """Wait ``poll`` seconds, or less: until a stop, or a wake-up (this process queued an event)."""
    waits = [asyncio.ensure_future(stop.wait())] + ([asyncio.ensure_future(wake.wait())] if wake else [])
    await asyncio.wait(waits, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
    for waiting in waits:
        waiting.cancel()
    if wake is not None:
        wake.clear()


async def _one(
    queue: EventQueue, sender: EventSender, message: Received, lease: float, gate: asyncio.Semaphore
) -> None:
    held = message

    async def keep() -> None:
        nonlocal held
        while True:
            await asyncio.sleep(lease / 2)
            held = await asyncio.to_thread(queue.extend, held, lease)

    keeper = asyncio.create_task(keep())
    try:
        await sender.handle(message.content)
    except asyncio.CancelledError:  # the worker stops: the message is visible again at once
        keeper.cancel()
        with contextlib.suppress(Exception):
            await asyncio.shield(asyncio.to_thread(queue.extend, held, 0))
        raise
    except EventBusy as exc:
        log.info("%s; the message comes back after its lease", exc)
        return
    except Exception:
        log.exception("event message %s failed; it comes back after its lease", message.id)
        return
    finally:
        keeper.cancel()
        gate.release()
    await asyncio.to_thread(queue.delete, held)
