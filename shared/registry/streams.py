"""The byte streams an upload sends (:mod:`shared.registry.blobs`): a body as an opener that
can start again at an offset, the source's failures told apart from the target's, and a blob cut
into consecutive slices, each its own request body, that a stop ends at once
(:func:`shared.stopping.before_stop`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable

import httpx

from shared import stopping
from shared.content.streams import aclose
from shared.errors import FerryError, SizeMismatchError

Opener = Callable[[int], AsyncIterable[bytes]]


class SourceFailed(Exception):
    """Wraps a failure of the stream an upload sends (the source's): the source's own operation
    has retried it already, so the upload does not start over for it."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


async def watched(stream: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """``stream`` with its failures told apart; closing this closes ``stream`` too."""
    try:
        async for piece in stream:
            yield piece
    except FerryError as exc:
        raise SourceFailed(exc) from exc
    finally:
        await aclose(stream)


def opener(body: bytes | AsyncIterable[bytes] | Opener) -> tuple[Opener, bool]:
    """``body`` as an opener, and whether it can be opened again (bytes and openers can)."""
    if isinstance(body, bytes):

        async def from_bytes(offset: int) -> AsyncIterator[bytes]:
            yield body[offset:]

        return from_bytes, True
    if callable(body):
        return body, True
    once = body
    return (lambda offset: once), False


class Session:
    """An upload session, where the registry last said it continues (its ``Location``), and
    whether its bytes went up in more than one piece after a failure (``resumed``): a registry
    restarted mid-``PATCH`` may keep bytes it never wrote whole and refuse the finish
    (``DIGEST_INVALID``), which is then worth a fresh session (the source is digest-checked)."""

    __slots__ = ("location", "resumed")

    def __init__(self, location: httpx.URL | None) -> None:
        assert location is not None
        self.location = location
        self.resumed = False


class Slicer:
    """Hands out a byte stream in consecutive slices of given lengths, each as its own stream."""

    def __init__(self, source: AsyncIterator[bytes], what: str, size: int) -> None:
        self._source = source
        self._left = b""
        self._what = what
        self._size = size
        self._read = 0

    async def aclose(self) -> None:
        """Close the source (its connection with it) when the slices stop before its end."""
        with contextlib.suppress(Exception):
            await aclose(self._source)

    async def take(self, length: int, *, stoppable: bool = False) -> AsyncIterator[bytes]:
        """The next ``length`` bytes; ``stoppable``: ends early, between pieces, when a stop is
        asked for (a streamed body may end anywhere)."""
        while length > 0:
            if stoppable and stopping.requested():
                return
            if not self._left:
                try:
                    following = anext(self._source)
                    self._left = await (stopping.before_stop(following) if stoppable else following)
                except StopAsyncIteration:
                    raise SourceFailed(SizeMismatchError(self._what, self._size, self._read)) from None
                except stopping.Stopped:  # asked while the source was slow: the body ends here
                    return
                self._read += len(self._left)
            if len(self._left) <= length:
                piece, self._left = self._left, b""
            else:
                piece, self._left = self._left[:length], self._left[length:]
            length -= len(piece)
            yield piece
