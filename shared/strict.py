"""Values read from a peer's headers and bodies, strictly: numbers are ASCII digits in range, JSON
has a nesting limit. ``str.isdigit()`` is true for ``²`` and ``٣``, which ``int()`` then either
refuses or reads as a number nobody sent; ``json.loads`` recurses once per ``[``, so 5,000 of
them raise ``RecursionError`` from deep inside the parser.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: Deepest JSON nesting accepted. OCI manifests nest 4 deep, token answers 1; ``annotations``
#: and artifact configs add little.
MAX_JSON_DEPTH = 64
#: At most 19 digits: every value fits in a signed 64-bit integer (Content-Length, offsets).
_DIGITS = re.compile(r"[0-9]{1,19}")
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def header_int(value: str | bytes | None, maximum: int | None = 2**63 - 1) -> int | None:
    """A non-negative decimal integer of ASCII digits, at most ``maximum`` (None: no bound but
    the 19 digits), else None."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if not _DIGITS.fullmatch(text):
        return None
    number = int(text)
    return number if maximum is None or number <= maximum else None


def nested_deeper_than(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``data``'s arrays and objects nest more than ``limit`` deep (brackets inside
    strings are not counted)."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False  # too few brackets in all to nest that deep: no need to scan
    depth = 0
    for token in _TOKENS.finditer(data):
        char = token.group()[:1]
        if char in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif char in (b"]", b"}"):
            depth -= 1
    return False


def loads_bounded(data: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads``, or None for anything that is not JSON nested at most ``max_depth`` deep."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if nested_deeper_than(raw, max_depth):
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


class TooDeepError(ValueError):
    """JSON nested deeper than :data:`MAX_JSON_DEPTH`."""


def loads_strict(data: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` with the nesting limit; :class:`ValueError` (or :class:`TooDeepError`) for
    anything else, never ``RecursionError``."""
    if nested_deeper_than(data, max_depth):
        raise TooDeepError(f"JSON nested more than {max_depth} deep")
    try:
        return json.loads(data)
    except RecursionError:  # pragma: no cover - nested_deeper_than refused it first
        raise TooDeepError(f"JSON nested more than {max_depth} deep") from None
