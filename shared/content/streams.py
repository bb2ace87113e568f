"""A blob's byte stream, wherever it comes from: closed early (its connection with it), or read
whole within its size, a stop ending the wait on it at once."""

from __future__ import annotations

from collections.abc import AsyncIterable

from shared import stopping
from shared.errors import SizeMismatchError


async def aclose(stream: object) -> None:
    """Close ``stream`` when it can be closed (an async generator: a connection it reads from)."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


async def whole(stream: AsyncIterable[bytes], size: int, what: str) -> bytes:
    """All ``size`` bytes of ``stream`` in memory (never more); a stop ends the wait on it at once
    (:class:`shared.stopping.Stopped`), and ``stream`` is closed on the way out."""
    pieces: list[bytes] = []
    got = 0
    iterator = aiter(stream)
    try:
        while True:
            try:
                piece = await stopping.before_stop(anext(iterator))
            except StopAsyncIteration:
                break
            got += len(piece)
            if got > size:
                raise SizeMismatchError(what, size, got)
            pieces.append(piece)
    finally:
        await aclose(iterator)
    if got != size:
        raise SizeMismatchError(what, size, got)
    return b"".join(pieces)
