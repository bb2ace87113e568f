"""What a registry says about its limits, read from one answer's head.

- Docker Hub ("Docker Hub usage and limits"): ``ratelimit-limit: 100;w=21600`` and
  ``ratelimit-remaining: 76;w=21600`` (pulls, and the window in seconds after ``w=``), and
  ``docker-ratelimit-source`` (the address or account the limit is counted for). Accounts
  without a limit send none of them.
- Any registry: ``Retry-After`` (RFC 9110 §10.2.3) on a ``429`` or ``503``.

A pull, on Docker Hub, is a manifest ``GET`` (an index and each platform manifest fetched count
one each); a ``HEAD`` is not (:func:`is_pull`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from shared.http.mapping import retry_after
from shared.strict import header_int
from shared.text import clean, shorten

_MANIFEST = re.compile(r"/v2/.+/manifests/[^/]+")
#: The longest window believed, in seconds (a day): a larger ``w=`` is a day.
MAX_WINDOW = 86_400


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One answer's word on the limit; each part None when not said."""

    limit: int | None = None
    remaining: int | None = None
    #: Seconds of the window ``limit`` counts over (``w=``).
    window: float | None = None
    #: ``docker-ratelimit-source``: who the registry counts the pulls of (an address or account).
    source: str | None = None
    #: Seconds to wait, from ``Retry-After`` on a 429 or 503.
    retry_after: float | None = None
    #: The answer was 429: the limit is reached, whatever the other headers say.
    refused: bool = False

    @property
    def says_anything(self) -> bool:
        return self.limit is not None or self.remaining is not None or self.refused


def _quota(value: str | None) -> tuple[int | None, float | None]:
    """``100;w=21600`` -> (100, 21600.0); parts that do not read as numbers are None."""
    if not value:
        return None, None
    number, *params = value.split(";")
    window = None
    for param in params:
        name, _, text = param.partition("=")
        if name.strip().lower() == "w":
            seconds = header_int(text)
            window = float(min(seconds, MAX_WINDOW)) if seconds else None
    return header_int(number), window


def read_ratelimit(status: int, headers: Mapping[str, str]) -> RateLimit | None:
    """The limit an answer's head reports, or None when it says nothing of one."""
    limit, window = _quota(headers.get("ratelimit-limit"))
    remaining, remaining_window = _quota(headers.get("ratelimit-remaining"))
    source = headers.get("docker-ratelimit-source")
    wait = retry_after(headers.get("retry-after")) if status in (429, 503) else None
    if limit is None and remaining is None and wait is None and status != 429:
        return None
    return RateLimit(
        limit=limit,
        remaining=remaining,
        window=window or remaining_window,
        source=shorten(clean(source), 100) if source else None,
        retry_after=wait,
        refused=status == 429,
    )


def is_pull(method: str, path: str) -> bool:
    """A request Docker Hub counts as a pull: ``GET /v2/<name>/manifests/<reference>``."""
    return method == "GET" and _MANIFEST.fullmatch(path) is not None


__all__ = ["RateLimit", "is_pull", "read_ratelimit"]
