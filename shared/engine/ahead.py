"""A small blob read from the source while the target is asked whether it needs it.

Asking (a mount probe) and reading each take a round trip; for a blob the target lacks, the
common case, they need not wait for each other. Only blobs of up to
:data:`~shared.content.protocols.SMALL_BLOB` are read ahead, inside the engine's concurrency
gate, so at most that much per operation in flight is held. Bytes count as moved when the target
takes them; a blob the target turns out to have is dropped (its read cancelled, its connection
closed): at most one small blob's read for nothing, against a round trip saved on every other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from shared.content.streams import whole
from shared.oci.manifest import Descriptor


def _retrieved(task: asyncio.Future[bytes]) -> None:
    if not task.cancelled():
        task.exception()  # a dropped read's failure is nobody's: retrieved, not logged


class ReadAhead:
    """``chunks``, the blob ``desc``, read whole (within its size) in a task of their own, from
    now; a drop or a stop closes the source's stream, and its connection with it."""

    def __init__(self, desc: Descriptor, chunks: AsyncIterator[bytes]) -> None:
        self._task = asyncio.ensure_future(whole(chunks, desc.size, f"read {desc.digest}"))
        self._task.add_done_callback(_retrieved)
        self.taken = False

    async def pieces(self) -> AsyncIterator[bytes]:
        """The blob, once read (as one piece); the read's failure, if it failed."""
        self.taken = True
        yield await self._task

    def drop(self) -> None:
        """The target did not take it (it had the blob, or the copy failed): stop reading."""
        self._task.cancel()
