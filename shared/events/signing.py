"""Standard Webhooks signatures (standardwebhooks.com, "Signature scheme"): the headers
``webhook-id`` (the same on every retry of one message), ``webhook-timestamp`` (Unix seconds)
and ``webhook-signature``: ``v1,`` and the base64 HMAC-SHA256, keyed with the secret's bytes
(base64 after ``whsec_``), of ``"<id>.<timestamp>.<body>"``."""

from __future__ import annotations

import base64
import hashlib
import hmac

from shared.credentials import Secret
from shared.events.config import SECRET_PREFIX


def signature(secret: Secret, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.reveal().removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(secret: Secret, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of one signed delivery."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }
