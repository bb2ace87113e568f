"""Token freshness as pure functions, and unverified JWT claim reading.

Ferry never verifies registry JWTs (the registry does); it only reads ``exp`` to know when to
renew, and ``tid`` to name the tenant in ACR's exchange. JWT segments are base64url without
padding (RFC 7515 §2), so they are decoded with ``urlsafe_b64decode`` after re-padding.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

#: The Docker token spec's default lifetime when a token response has no ``expires_in``.
DEFAULT_EXPIRES_IN = 60.0


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified; ``{}`` for anything that is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def expires_at(issued: float, expires_in: object, token: str | None = None) -> float:
    """When a token stops being usable: ``issued + expires_in`` from the response, else the JWT's
    ``exp``, else the spec's 60 s default."""
    if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool) and expires_in > 0:
        return issued + float(expires_in)
    if token:
        exp = jwt_claims(token).get("exp")
        if isinstance(exp, (int, float)) and not isinstance(exp, bool):
            return float(exp)
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
