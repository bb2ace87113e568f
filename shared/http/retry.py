"""The one retry policy, applied once per operation.

An operation is what can be started over from a clean state: resolve a tag, fetch a manifest,
fetch a blob (resuming with ``Range``), put a blob (monolithic with a fresh session, or chunked
from the registry's offset), put a manifest, one ARM call. The layer that can start it over owns
its retry (go-containerregistry's ``retry.go`` and ``uploadOne``); the requests inside it make
one attempt each and report. So attempts do not nest: at most ``max_attempts`` per operation
within ``retry_budget`` seconds, and the queue's redelivery is the only loop outside.

Waits are full jitter (``uniform(0, min(cap, base * 2**attempt))``) with the peer's
``Retry-After`` as a floor; a ``Retry-After`` beyond what is left of the budget fails at once
rather than sleeping past it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from shared.errors import FerryError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    budget: float = 120.0
    sleep: Callable[[float], Awaitable[Any]] = field(default=asyncio.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    def start(self) -> Attempts:
        """A new operation's attempts."""
        return Attempts(self)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (0-based)."""
        delay = random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))  # noqa: S311 - jitter
        return max(delay, retry_after) if retry_after is not None else delay


class Attempts:
    """One operation's attempts: :meth:`failed` waits before the next one or raises."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.made = 0
        self.started = policy.clock()

    def _give_up(self, error: FerryError) -> FerryError:
        return error.after(self.made, self.policy.clock() - self.started)

    async def failed(self, error: FerryError, *, retryable: bool | None = None) -> None:
        """Attempt failed with ``error``: returns after the wait when another one may be made,
        else raises ``error`` (its message then says how many attempts over how long)."""
        self.made += 1
        policy = self.policy
        if not (error.retryable if retryable is None else retryable):
            raise error
        if self.made >= policy.max_attempts:
            raise self._give_up(error).with_traceback(error.__traceback__) from None
        retry_after = getattr(error, "retry_after", None)
        delay = policy.delay(self.made - 1, retry_after)
        remaining = policy.budget - (policy.clock() - self.started)
        if remaining <= 0 or delay > remaining:
            raise self._give_up(error).with_traceback(error.__traceback__) from None
        log.info("%s; retrying in %.1f s (attempt %d of %d)", error, delay, self.made + 1, policy.max_attempts)
        await policy.sleep(delay)
