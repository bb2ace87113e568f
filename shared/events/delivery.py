"""Delivering one event to every destination that wants it, each on its own: attempts with a
doubling, jittered wait between them (from ``backoff_base`` to ``backoff_cap``) until one is
delivered, the destination refuses the event for good (``400``, ``413``, a refused address), or
``delivery_seconds`` have passed since the first attempt; then the outcome is reported
(``delivered`` or ``undelivered``, with the attempts made and the last status or error), so the
run records it: an event is never lost silently. A slow destination delays only itself."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

from shared.events.config import Destination, EventsConfig
from shared.events.publish import Publisher
from shared.text import clean, shorten

log = logging.getLogger(__name__)


class Outcome(TypedDict):
    """How the delivery to one destination ended: the attempts made, the last status answered
    (None: no answer), when, and the last error in words (None once delivered). The run keeps it
    as a :class:`~shared.runs.model.DestinationOutcome`."""

    attempts: int
    status: int | None
    at: str
    state: Literal["delivered", "undelivered"]
    error: str | None


#: Reports one destination's outcome: (destination name, outcome).
Report = Callable[[str, Outcome], Awaitable[None]]


def wanted(config: EventsConfig, state: str) -> list[Destination]:
    """The destinations that hear of a run that ended ``state`` (their ``EVENTS`` filter)."""
    return [d for d in config.destinations if d.wants(state)]


async def deliver(
    config: EventsConfig,
    publisher: Publisher,
    event_id: str,
    body: bytes,
    destinations: list[Destination],
    report: Report,
    *,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Outcome]:
    """Deliver to each of ``destinations`` at once; returns each one's outcome (also reported
    through ``report`` as each ends)."""

    async def one(destination: Destination) -> tuple[str, Outcome]:
        outcome = await _attempts(config, publisher, destination, event_id, body, sleep, clock)
        await report(destination.name, outcome)
        return destination.name, outcome

    return dict(await asyncio.gather(*(one(d) for d in destinations)))


async def _attempts(
    config: EventsConfig,
    publisher: Publisher,
    destination: Destination,
    event_id: str,
    body: bytes,
    sleep: Callable[[float], Awaitable[Any]],
    clock: Callable[[], float],
) -> Outcome:
    started, made = clock(), 0
    while True:
        made += 1
        attempt = await publisher.send(destination, event_id, body)
        at = datetime.now(UTC).isoformat()
        if attempt.delivered:
            log.info("event %s delivered to %s %s (attempt %d)", event_id, destination.kind, destination.name, made)
            return Outcome(attempts=made, status=attempt.status, at=at, state="delivered", error=None)
        wait = random.uniform(0.5, 1.0) * min(config.backoff_cap, config.backoff_base * 2 ** (made - 1))  # noqa: S311
        if attempt.permanent or clock() - started + wait > config.delivery_seconds:
            log.warning(
                "event %s undelivered to %s %s after %d attempts: %s",
                event_id, destination.kind, destination.name, made, attempt.error,
            )  # fmt: skip
            error = shorten(clean(attempt.error or ""), 500)
            return Outcome(attempts=made, status=attempt.status, at=at, state="undelivered", error=error)
        log.info(
            "event %s: %s %s: %s; again in %.1f s", event_id, destination.kind, destination.name, attempt.error, wait
        )
        await sleep(wait)
