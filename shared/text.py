"""Text from outside is data: what makes it safe to print, log and record.

A registry chooses the bytes of its reason phrases, error messages and headers; a message that
quotes them must neither drive a terminal (ESC, CR and LF could forge a ``ferry:`` line or
rewrite the screen) nor carry a secret back out (a registry that echoes the ``Authorization``
header it was sent). :func:`clean` does both and :class:`~shared.errors.FerryError` applies it
to every message, so no caller has to remember.

Secrets are known by value: :class:`~shared.credentials.Secret` registers each one it wraps,
the auth flow registers each Basic pair's base64 form and each token it is given, and
:func:`clean` replaces every registered value with ``***``. The register keeps the most recent
:data:`_MAX_SECRETS` values (tokens are renewed over a long-running worker's life).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

#: Shorter values are not redacted: they would blank out ordinary words.
_MIN_SECRET = 6
_MAX_SECRETS = 4096
#: C0 controls but TAB, DEL and C1 controls; also the Unicode line and paragraph separators and
#: bidirectional overrides, which reorder what a terminal shows.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class _Secrets:
    """The register: values in the order last seen, and the pattern that finds them all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: OrderedDict[str, None] = OrderedDict()
        self.pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        with self.lock:
            if value in self.values:
                self.values.move_to_end(value)
                return
            self.values[value] = None
            while len(self.values) > _MAX_SECRETS:
                self.values.popitem(last=False)
            self.pattern = None

    def matcher(self) -> re.Pattern[str] | None:
        with self.lock:
            if self.pattern is None and self.values:
                # Longest first, so that a secret containing another is replaced whole.
                ordered = sorted(self.values, key=len, reverse=True)
                self.pattern = re.compile("|".join(re.escape(s) for s in ordered))
            return self.pattern


_SECRETS = _Secrets()


def register_secret(value: str) -> None:
    """From now on, ``value`` is shown as ``***`` by :func:`clean`."""
    if len(value) >= _MIN_SECRET:
        _SECRETS.add(value)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def printable(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``), not obeyed."""
    return _CONTROL.sub(_escape, text)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    pattern = _SECRETS.matcher()
    return pattern.sub("***", text) if pattern is not None else text


def clean(text: str) -> str:
    """Safe for a terminal, a log line and a status record: no secret, no control character."""
    return printable(redact(text))


def shorten(text: str, limit: int) -> str:
    """At most ``limit`` characters, with ``…`` where it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
