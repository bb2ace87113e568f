"""A pull budget per source registry and credential, shared by every worker that takes from it.

A registry that announces a limit (Docker Hub's ``ratelimit-limit: 100;w=21600``) is counted:
before each pull (a manifest ``GET``) Ferry takes one from the budget of that registry and
credential; when it is spent the pull is not sent (:class:`~shared.errors.PullBudgetSpent` names
when it frees, or the caller waits for it). Registries that announce nothing are never counted.

The count is a :class:`Ledger`: the pulls taken, in buckets of a sixtieth of the window, each
counted until a window has passed since its bucket ended — so any span of one window holds at most
``limit`` pulls, which keeps within Docker Hub's rolling window and within a fixed one alike.
What the registry says corrects it: pulls it counts that Ferry did not take (people, another
tool) are added as taken now (``ratelimit-remaining``), and a 429 stops every pull until its
``Retry-After``. ``reserve`` pulls per window are left for people.

Where the ledgers live is a :class:`Ledgers`: :class:`LocalLedgers` in the process (the CLI),
:class:`shared.azure_storage.budget.TableLedgers` in the status table for the service's workers,
changed under the row's ETag.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.errors import PullBudgetSpent
from shared.http.ratelimit import RateLimit

log = logging.getLogger(__name__)

#: Buckets per window: a pull is counted at most a sixtieth of a window longer than it must be.
BUCKETS = 60
#: A pull is counted this much of a window (at least 0.5 s, at most 2 s) longer still: the time
#: between taking it and the registry counting it (a table write, a connection), which on a
#: loaded machine can pass a bucket's width.
LATENCY_SHARE, LATENCY_MIN, LATENCY_MAX = 0.1, 0.5, 2.0
#: Seconds to stay off a registry that answered 429 without saying how long.
DEFAULT_BLOCK = 60.0


def when(at: float) -> str:
    """An epoch time as ISO 8601 UTC, to the second: ``2026-12-06T05:30:00Z``."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Ledger:
    """One budget: what the registry said of its limit and the pulls counted against it."""

    limit: int | None = None
    window: float | None = None
    #: ``[end, pulls]`` buckets, oldest first; a bucket's pulls count until ``end + span``.
    buckets: list[list[float]] = field(default_factory=list)
    #: No pull before this (a 429's ``Retry-After``).
    blocked_until: float = 0.0
    #: ``docker-ratelimit-source``: who the registry counts the pulls of.
    source: str | None = None
    #: Pulls taken and 429s met, since the ledger was made (for reports).
    taken: int = 0
    refused: int = 0

    @property
    def span(self) -> float:
        """How long after its bucket ends a pull is counted: the window and the latency margin."""
        window = self.window or 0.0
        return window + min(LATENCY_MAX, max(LATENCY_MIN, window * LATENCY_SHARE)) if window else 0.0

    def _prune(self, now: float) -> None:
        window = self.span
        while self.buckets and self.buckets[0][0] + window <= now:
            self.buckets.pop(0)

    def used(self, now: float) -> int:
        self._prune(now)
        return int(sum(b[1] for b in self.buckets))

    def room(self, now: float, reserve: int) -> int:
        """Pulls that may go now; a large number when the registry announced no limit."""
        if now < self.blocked_until:
            return 0
        if self.limit is None:
            return 1 << 30
        return max(0, self.limit - min(reserve, self.limit - 1) - self.used(now))

    def _add(self, pulls: int, now: float) -> None:
        if self.buckets and self.buckets[-1][0] > now:
            self.buckets[-1][1] += pulls
        else:
            self.buckets.append([now + (self.window or 0.0) / BUCKETS, pulls])

    def frees_at(self, pulls: int, now: float, reserve: int) -> float:
        """When ``pulls`` may go, if no one else takes any meanwhile."""
        if now < self.blocked_until:
            return max(self.blocked_until, self.frees_at(pulls, self.blocked_until, reserve))
        need, window = pulls - self.room(now, reserve), self.span
        for end, count in self.buckets:
            need -= int(count)
            if need <= 0:
                return end + window
        return (self.buckets[-1][0] if self.buckets else now) + window

    def take(self, pulls: int, now: float, reserve: int) -> bool:
        if self.room(now, reserve) < pulls:
            return False
        if self.limit is not None:
            self._add(pulls, now)
        self.taken += pulls
        return True

    def note(self, said: RateLimit, now: float) -> bool:
        """Learn from an answer; whether anything changed."""
        self._prune(now)
        before = self.to_json()
        if said.limit is not None and said.window:
            self.limit, self.window = said.limit, said.window
        if said.source:
            self.source = said.source
        if said.refused and self.limit is not None:  # a limit's 429; any other is the retry policy's
            self.refused += 1
            wait = said.retry_after
            if wait is None:
                wait = (self.frees_at(1, now, 0) - now) if self.limit else DEFAULT_BLOCK
            self.blocked_until = max(self.blocked_until, now + max(wait, 1.0))
        elif said.remaining is not None and self.limit is not None:
            others = (self.limit - said.remaining) - self.used(now)
            if others > 0:  # counted by the registry, not taken here: someone else's pulls
                self._add(others, now)
        return self.to_json() != before

    def to_json(self) -> dict[str, Any]:
        return {
            "limit": self.limit, "window": self.window, "buckets": [list(b) for b in self.buckets],
            "blockedUntil": self.blocked_until, "source": self.source, "taken": self.taken, "refused": self.refused,
        }  # fmt: skip

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Ledger:
        return cls(
            limit=doc.get("limit"),
            window=doc.get("window"),
            buckets=[[float(e), float(c)] for e, c in doc.get("buckets") or []],
            blocked_until=float(doc.get("blockedUntil") or 0.0),
            source=doc.get("source"),
            taken=int(doc.get("taken") or 0),
            refused=int(doc.get("refused") or 0),
        )


class Ledgers(Protocol):
    """Where ledgers are kept. ``change`` applies ``fn`` to the key's ledger as it stands (a new
    one when there is none) and keeps it when ``fn`` says it changed, safely against every other
    writer; returns the ledger as kept. ``blocking``: call it in a thread."""

    blocking: bool

    def change(self, key: str, fn: Callable[[Ledger], bool]) -> Ledger: ...


class LocalLedgers:
    """Ledgers in this process's memory (the CLI, tests)."""

    blocking = False

    def __init__(self) -> None:
        self._ledgers: dict[str, Ledger] = {}
        self._lock = threading.Lock()

    def change(self, key: str, fn: Callable[[Ledger], bool]) -> Ledger:
        with self._lock:
            ledger = self._ledgers.setdefault(key, Ledger())
            fn(ledger)
            return Ledger.from_json(ledger.to_json())


class PullBudget:
    """The budgets of every (registry, credential) this process pulls from, kept in ``ledgers``.

    ``wait``: a spent budget makes :meth:`take` sleep until it frees (the CLI) instead of raising
    :class:`PullBudgetSpent` (a worker, which puts the job back on the queue for that long)."""

    def __init__(
        self,
        ledgers: Ledgers | None = None,
        *,
        reserve: int = 0,
        wait: bool = False,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.ledgers: Ledgers = ledgers or LocalLedgers()
        self.reserve = reserve
        self.wait = wait
        self._clock, self._sleep = clock, sleep
        #: The ledgers as last seen here; a key is in it once its registry announced a limit.
        self.seen: dict[str, Ledger] = {}

    async def _change(self, key: str, fn: Callable[[Ledger], bool]) -> Ledger:
        if self.ledgers.blocking:
            ledger = await asyncio.to_thread(self.ledgers.change, key, fn)
        else:
            ledger = self.ledgers.change(key, fn)
        self.seen[key] = ledger
        return ledger

    def limited(self, key: str) -> bool:
        """Whether ``key``'s registry announced a limit (as far as this process has seen)."""
        ledger = self.seen.get(key)
        return ledger is not None and (ledger.limit is not None or ledger.blocked_until > 0)

    async def take(self, key: str, pulls: int = 1) -> None:
        """Take ``pulls`` from ``key``'s budget, or wait for them, or raise :class:`PullBudgetSpent`."""
        if not self.limited(key):
            return
        while True:
            granted, ledger, now = await self._take_once(key, pulls)
            if granted:
                return
            until = ledger.frees_at(pulls, now, self.reserve)
            if not self.wait:
                raise PullBudgetSpent(key, until, self.describe(ledger))
            log.info("%s: waiting: rate limit (until %s)", key, when(until))
            await self._sleep(max(0.05, until - now))

    async def _take_once(self, key: str, pulls: int) -> tuple[bool, Ledger, float]:
        """One try: the time is read as the ledger is read (after the table's answer, the
        nearest to the request's own sending)."""
        granted, now = False, 0.0

        def take(ledger: Ledger) -> bool:
            nonlocal granted, now
            now = self._clock()
            granted = ledger.take(pulls, now, self.reserve)
            return granted

        ledger = await self._change(key, take)
        return granted, ledger, now

    async def note(self, key: str, said: RateLimit) -> None:
        """Learn from an answer of ``key``'s registry. Written only when it changes the ledger
        as last seen here (then changed on the ledger as it stands)."""
        now = self._clock()
        cached = self.seen.get(key)
        if cached is not None and not Ledger.from_json(cached.to_json()).note(said, now):
            return
        await self._change(key, lambda ledger: ledger.note(said, now))

    async def room(self, key: str) -> tuple[int, float]:
        """Pulls that may go now from ``key``'s budget, and when one frees if none may."""
        if not self.limited(key):
            return 1 << 30, 0.0
        now = self._clock()
        ledger = await self._change(key, lambda _: False)
        return ledger.room(now, self.reserve), ledger.frees_at(1, now, self.reserve)

    def describe(self, ledger: Ledger) -> str:
        """``100 pulls per 21600 s, 10 kept in reserve`` (what the budget is, in words)."""
        if ledger.limit is None:
            return "no limit announced"
        kept = f", {min(self.reserve, ledger.limit - 1)} kept in reserve" if self.reserve else ""
        return f"{ledger.limit} pulls per {ledger.window:g} s{kept}"


def budget_key(registry: str, credential: str) -> str:
    """``docker.io as user ci``: a budget's name (no secret: the credential as it describes itself
    or its configured name)."""
    return f"{registry} as {credential or 'anonymous'}"


__all__ = ["Ledger", "Ledgers", "LocalLedgers", "PullBudget", "budget_key", "when"]
