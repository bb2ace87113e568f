"""A job that waits for its source's pull budget instead of failing.

Before a job starts, and whenever a pull it needs is refused by the shared budget
(:class:`~shared.errors.PullBudgetSpent`), the worker records it ``queued`` with ``waiting:
{reason: "rate limit", until: ...}`` and puts its message back on the queue as a new message,
hidden until the budget's window frees (a little jitter so that waiting jobs do not all wake in
the same second). The delivery it came in is consumed: a wait is not a failed attempt and does
not count toward the poison queue — the new message carries the attempts and the failures so far
(``attemptsBefore``, ``failuresBefore``), so attempt numbers go on and ``FERRY_MAX_DEQUEUE_COUNT``
counts failures only. When it is delivered again the job runs as any other (``waiting`` cleared).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

from shared.azure_storage.records import Attempt, JobChange, JobRecord, Statuses, Waiting, now
from shared.credentials import Credential
from shared.errors import PullBudgetSpent
from shared.http.budget import PullBudget, budget_key
from shared.logs import job_fields
from shared.service.models import ImportJob

log = logging.getLogger(__name__)

#: (message content, seconds hidden) -> None: the queue's send, with a visibility delay.
Requeue = Callable[[str, float], None]
#: Seconds of jitter added to a wait.
JITTER = 1.0


def budget_name(job: ImportJob, credential: Credential) -> str:
    """The budget a job's source pulls count against: its named credential, else the credential
    as it describes itself (an inline user, the identity, anonymous)."""
    return job.request.source.credential or credential.describe()


class Waits:
    """The worker's side of the pull budget: may a job start, and how it waits."""

    def __init__(self, budget: PullBudget, requeue: Requeue, statuses: Statuses) -> None:
        self.budget = budget
        self._requeue = requeue
        self._statuses = statuses

    async def admit(self, job: ImportJob, credential: Credential) -> tuple[ImportJob, PullBudgetSpent | None]:
        """The job as it may start, or why it may not. A source that names several credentials
        (accounts) gets the one whose budget has the most room (any of the best, so that workers
        spread over them): the job returned names that one only."""
        registry = job.request.source.registry
        if registry is None:
            return job, None
        names = (job.request.source.credential or "").split(",")
        rooms = []
        for name in names:
            key = budget_key(registry, name or credential.describe())
            rooms.append((*await self.budget.room(key), key, name))
        best = max(room for room, *_ in rooms)
        if best < 1:
            _, frees_at, key, _ = min(rooms, key=lambda r: r[1])
            return job, PullBudgetSpent(key, frees_at, self.budget.describe(self.budget.seen[key]))
        chosen = random.choice([name for room, _, _, name in rooms if room == best])  # noqa: S311 - spreading
        if len(names) == 1:
            return job, None
        source = job.request.source.model_copy(update={"credential": chosen})
        log.info("job %s pulls as credential %s (of %s)", job.id, chosen, ", ".join(names), extra=job_fields(job.id))
        return job.model_copy(update={"request": job.request.model_copy(update={"source": source})}), None

    async def wait(self, job: ImportJob, dequeue_count: int, spent: PullBudgetSpent, attempt: Attempt) -> None:
        """Record the job waiting and put it back on the queue until the budget frees. ``attempt``
        (the delivery, started or stopped by the budget) is recorded with outcome ``waiting``: the
        job's attempts say when and why it waited."""
        at = now()
        waiting = Waiting(reason="rate limit", until=datetime.fromtimestamp(spent.until, UTC))
        attempt.outcome, attempt.finishedAt = "waiting", at
        attempt.code, attempt.message = spent.code, f"waiting: {spent.waiting}; {spent}"

        def change(current: JobRecord) -> JobChange | None:
            if current.state in ("succeeded", "failed", "cancelled"):
                return None
            if current.cancelRequestedAt:
                return JobChange(state="cancelled", finishedAt=at, updatedAt=at, waiting=None)
            return JobChange(
                state="queued", updatedAt=at, waiting=waiting, lastAttempt=attempt, attemptCount=attempt.number
            )

        record, _ = await asyncio.gather(
            asyncio.to_thread(self._statuses.transition, job.id, change),
            asyncio.to_thread(self._statuses.record_attempt, job.id, attempt),
        )
        if record is None or record.state != "queued":
            log.info("job %s is %s; not waiting for the budget", job.id, record.state if record else "gone")
            return
        again = job.model_copy(
            update={"attemptsBefore": attempt.number, "failuresBefore": job.failuresBefore + dequeue_count - 1}
        )
        delay = max(1.0, math.ceil(spent.until - time.time())) + random.uniform(0, JITTER)  # noqa: S311 - jitter
        await asyncio.to_thread(self._requeue, again.model_dump_json(), delay)
        log.info(
            "job %s waiting: %s (%s)", job.id, spent.waiting, spent.budget, extra=job_fields(job.id)
        )  # fmt: skip
