"""A cooperative stop for the work under way in this context (a context variable, so every
task the work starts sees it): the worker asks for one when a job is cancelled.

The engine stops at safe points: before each blob or manifest it has not started, and inside a
blob's streamed upload, which ends its body at the next piece, so the registry answers the
request and hands back the session's current URL, and the session is then deleted. Cutting the
connection instead leaves distribution's session unreachable: its URL's signed ``_state`` names
an offset the registry no longer has, so even ``DELETE`` is refused, and the session lingers
until the registry purges it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

#: Seconds work asked to stop has to reach a safe point before it is cancelled outright (an
#: upload of stated length in flight has none).
GRACE = 2.5


class Stop:
    """Asked for once, read anywhere in its scope."""

    def __init__(self) -> None:
        self.asked = False

    def ask(self) -> None:
        self.asked = True


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


@contextlib.contextmanager
def scope(stop: Stop) -> Iterator[None]:
    """``stop`` for the work started in this block (tasks copy the context when created)."""
    token = _CURRENT.set(stop)
    try:
        yield
    finally:
        _CURRENT.reset(token)
