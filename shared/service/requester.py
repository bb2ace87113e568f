"""Who asked for a job or a run, from the request as the Functions host hands it to the app.

- With App Service Authentication (Easy Auth) on, the platform authenticates the caller and sets
  ``x-ms-client-principal-name`` (and ``x-ms-client-principal``: base64 JSON with the token's
  claims); it removes these headers from what a client sends, so they can be trusted then, and
  only then: Ferry reads them only when ``easy_auth`` is on (``WEBSITE_AUTH_ENABLED``, which App
  Service sets when authentication is on).
- A function key is checked by the host, which does not tell the app which key it was (nor its
  name). The key itself reaches the app (``x-functions-key`` or ``?code=``): Ferry records
  ``function key sha256:`` and the first 8 hex digits of the key's SHA-256, never the key, so an
  operator can tell keys apart (``az functionapp keys list``, then hash each).
- Triggered work records ``timer`` (a mirror pass) or ``event grid`` (a promotion); the rule and the
  push event's id are in the run's ``trigger``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping

from shared.text import clean, shorten

#: Claims that name a person or an app, in the order they are preferred.
_NAME_CLAIMS = (
    "name",
    "preferred_username",
    "upn",
    "email",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
    "appid",
    "azp",
)
#: The longest ``requestedBy`` kept.
LIMIT = 200


def requested_by(headers: Mapping[str, str], query: Mapping[str, str], *, easy_auth: bool) -> str | None:
    """The caller, in words; None when the request says nothing about who sent it (a local
    service without keys)."""
    lower = {k.lower(): v for k, v in headers.items()}
    if easy_auth:
        principal = lower.get("x-ms-client-principal-name", "").strip() or _from_principal(
            lower.get("x-ms-client-principal", "")
        )
        if principal:
            return shorten(clean(principal), LIMIT)
    key = lower.get("x-functions-key") or query.get("code")
    if key:
        return f"function key sha256:{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    return None


def _from_principal(encoded: str) -> str | None:
    """A name from ``x-ms-client-principal`` (base64 of ``{"claims": [{"typ", "val"}...]}``)."""
    if not encoded:
        return None
    try:
        doc = json.loads(base64.b64decode(encoded, validate=False)[:16384])
    except (binascii.Error, ValueError):
        return None
    claims = doc.get("claims") if isinstance(doc, dict) else None
    if not isinstance(claims, list):
        return None
    found = {str(c.get("typ")): str(c.get("val")) for c in claims if isinstance(c, dict)}
    for claim in _NAME_CLAIMS:
        if found.get(claim):
            return f"app {found[claim]}" if claim in ("appid", "azp") else found[claim]
    return None
