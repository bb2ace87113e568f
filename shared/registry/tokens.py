"""Token freshness as pure functions, and unverified JWT claim reading.

Ferry never verifies registry JWTs (the registry does); it only reads ``exp`` to know when to
renew, and ``tid`` to name the tenant in ACR's exchange. JWT segments are base64url without
padding (RFC 7515 §2), so they are decoded with ``urlsafe_b64decode`` after re-padding.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any

from shared.strict import loads_bounded

#: The Docker token spec's default lifetime when a token response has no ``expires_in``.
DEFAULT_EXPIRES_IN = 60.0
#: The longest lifetime believed: a token server's ``expires_in`` of 10^400 is a year, not an
#: ``OverflowError``.
MAX_LIFETIME = 366 * 86_400.0
#: JWT payloads longer than this are not read for claims.
_MAX_PAYLOAD = 64 * 1024


def _seconds(value: object) -> float | None:
    """A finite, positive number of seconds from JSON, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int):
        return float(value) if 0 < value <= 2**53 else None  # compared as ints: no overflow
    return value if math.isfinite(value) and value > 0 else None


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified; ``{}`` for anything that is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1]
    if len(payload) > _MAX_PAYLOAD:
        return {}
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (binascii.Error, ValueError):
        return {}
    claims = loads_bounded(raw)
    return claims if isinstance(claims, dict) else {}


def expires_at(issued: float, expires_in: object, token: str | None = None) -> float:
    """When a token stops being usable: ``issued + expires_in`` from the response, else the JWT's
    ``exp``, else the spec's 60 s default."""
    lifetime = _seconds(expires_in)
    if lifetime is not None:
        return issued + min(lifetime, MAX_LIFETIME)
    if token:
        exp = _seconds(jwt_claims(token).get("exp"))
        if exp is not None:
            return min(exp, issued + MAX_LIFETIME)
    return issued + DEFAULT_EXPIRES_IN


def is_fresh(expiry: float, now: float, margin: float, lifetime: float | None = None) -> bool:
    """True while a token can still be sent: ``margin`` seconds before ``expiry``, the margin
    shrunk to a quarter of the token's ``lifetime`` for short-lived tokens."""
    if lifetime is not None:
        margin = min(margin, max(lifetime, 0.0) / 4)
    return now < expiry - margin


@dataclass(frozen=True, slots=True)
class CachedToken:
    value: str
    issued: float
    expiry: float

    def fresh(self, now: float, margin: float) -> bool:
        return is_fresh(self.expiry, now, margin, self.expiry - self.issued)
