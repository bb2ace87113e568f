"""What a mirror pass costs a source registry, in requests and in pulls (Docker Hub counts a
manifest ``GET`` as a pull; a ``HEAD`` or a tag list is not one), and what the pull budget would
make wait — for ``ferry rules plan``, before anything runs.

A pass lists the source's tags (already done by the plan), ``HEAD``s each selected tag on the
source, lists the target's tags once, and enqueues an import per tag that is missing or differs;
each import pulls its manifest once (an index and each platform manifest kept: one pull each).
"""

from __future__ import annotations

import contextlib
from typing import Any

from shared.errors import FerryError
from shared.registry import RegistryClient


async def estimate(client: RegistryClient, repository: str, selected: list[str], reserve: int) -> dict[str, Any]:
    """The cost of a pass over ``selected`` from ``client``'s registry, whose tags it listed.
    One free ``HEAD`` learns the limit when the listing did not say it."""
    transport = client.transport
    if selected and transport.ratelimit is None:
        with contextlib.suppress(FerryError):
            await client.resolve(repository, selected[0])
    cost: dict[str, Any] = {
        "registry": client.registry,
        "plan": {"requests": transport.requests, "pulls": transport.pulls},
        "pass": {"requests": len(selected) + 2, "pullsAtMost": len(selected), "pullsPerImport": "1 per manifest"},
    }
    said = transport.ratelimit
    if said is None or said.limit is None:
        cost["limit"] = None  # no limit announced: nothing is deferred for it
        return cost
    cost["limit"] = {"pulls": said.limit, "windowSeconds": said.window, "remaining": said.remaining,
                     "reserve": min(reserve, said.limit - 1), "countedFor": said.source}  # fmt: skip
    room = max(0, (said.remaining if said.remaining is not None else said.limit) - min(reserve, said.limit - 1))
    waiting = max(0, len(selected) - room)
    cost["deferred"] = waiting
    if waiting:
        cost["note"] = (
            f"{waiting} of {len(selected)} imports would wait for the budget if every tag were missing "
            f"({room} pulls left now of {said.limit} per {said.window:g} s)"
        )
    return cost
