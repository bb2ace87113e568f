"""A cooperative stop for the work under way in this context (a context variable, so every
task the work starts sees it): the CLI asks for one on Ctrl-C, the worker when a job is cancelled.

The engine stops at safe points: before each blob or manifest it has not started, and inside a
blob's upload. A blob over 1 MiB streams in a body of no stated length (``Transfer-Encoding:
chunked``): asked, the body ends at once, even while waiting on the source (:func:`before_stop`),
so the registry answers the request and hands back the session's current URL, and the session is
then deleted. A smaller one is read whole first (a stop ends that wait, and its session, empty,
is deleted), then sent from memory in one ``PUT`` that a stop lets finish, into a blob nothing
references. Cutting the connection instead would leave distribution's session unreachable: its
URL's signed ``_state`` names an offset the registry no longer has, so even ``DELETE`` is
refused, and the session lingers with its data until the registry purges it (a week later by
default). A session a registry would not delete is noted (:func:`left_behind`) for the CLI's
output and the job's record.

:func:`commit` is the point past which a stop no longer applies: the import calls it right
before the first tag moves, so a stop asked after it waits for the last tag (all tags or none);
:meth:`Stop.cancel`, the impatient caller's way out, then does nothing either.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

#: Seconds work asked to stop has to reach a safe point before it is cancelled outright. Every
#: upload ends its body at once when asked, so the grace covers the registry's answers to the
#: ended bodies and the ``DELETE`` of each session.
GRACE = 2.5


class Stop:
    """Asked for once, read anywhere in its scope."""

    def __init__(self) -> None:
        self.asked = False
        #: The work passed :func:`commit`: it finishes, whatever is asked.
        self.committed = False
        #: Upload sessions a registry would not delete (URLs without their query).
        self.left: list[str] = []
        self._waits: set[asyncio.Timeout] = set()

    def ask(self) -> bool:
        """Ask the work to stop; False when it is too late (committed)."""
        if self.committed:
            return False
        self.asked = True
        for wait in list(self._waits):  # end every wait on a source at once
            with contextlib.suppress(RuntimeError):  # one already ending
                wait.reschedule(asyncio.get_running_loop().time())
        return True

    def cancel(self, task: asyncio.Future[Any]) -> bool:
        """Cancel ``task`` outright, unless the work committed (then it is left to finish)."""
        if self.committed:
            return False
        return task.cancel()


class Stopped(Exception):
    """The work stopped at a safe point, as asked."""


_CURRENT: ContextVar[Stop | None] = ContextVar("ferry_stop", default=None)


def requested() -> bool:
    stop = _CURRENT.get()
    return stop is not None and stop.asked


def check() -> None:
    """A safe point: raises :class:`Stopped` when a stop was asked for."""
    if requested():
        raise Stopped


def commit() -> None:
    """The last safe point: raises :class:`Stopped` when a stop was asked for; from then on no
    stop applies to the work in this scope."""
    check()
    stop = _CURRENT.get()
    if stop is not None:
        stop.committed = True


async def before_stop(awaitable: Awaitable[T]) -> T:
    """``awaitable``'s result, or :class:`Stopped` as soon as a stop is asked for (it is then
    cancelled): what a body waits on its source with, so a stop never waits for a slow source."""
    stop = _CURRENT.get()
    if stop is None:
        return await awaitable
    if stop.asked:
        if inspect.iscoroutine(awaitable):
            awaitable.close()
        raise Stopped
    try:
        async with asyncio.timeout(None) as wait:
            stop._waits.add(wait)
            try:
                return await awaitable
            finally:
                stop._waits.discard(wait)
    except TimeoutError:
        if wait.expired() and stop.asked:
            raise Stopped from None
        raise


def interrupt(stop: Stop, task: asyncio.Future[Any], say: Callable[[str], None]) -> None:
    """What Ctrl-C does: the first asks the work to stop and cancels it outright :data:`GRACE`
    seconds later; a second cancels it at once; once the work committed, neither (it finishes)."""
    if stop.committed:
        say("the tags are moving; the import finishes")
    elif stop.asked:
        stop.cancel(task)
    elif stop.ask():
        asyncio.get_running_loop().call_later(GRACE, stop.cancel, task)


def left_behind(url: str) -> None:
    """Note an upload session the registry would not delete (``url`` already redacted)."""
    stop = _CURRENT.get()
    if stop is not None and url not in stop.left:
        stop.left.append(url)


@contextlib.contextmanager
def scope(stop: Stop) -> Iterator[None]:
    """``stop`` for the work started in this block (tasks copy the context when created)."""
    token = _CURRENT.set(stop)
    try:
        yield
    finally:
        _CURRENT.reset(token)
