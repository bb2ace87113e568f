"""The one place where HTTP answers and httpx exceptions become :mod:`shared.errors`.

Error bodies follow distribution-spec "Error Codes": ``{"errors": [{"code", "message", "detail"}]}``.
Status decides the class first (it is what every registry sends); the OCI code refines it for
registries that send a generic status.
"""

from __future__ import annotations

import json
import ssl
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from shared.errors import (
    AuthenticationError,
    FerryError,
    InsecureEndpointError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitedError,
    RegistryError,
    RegistryUnavailableError,
    TooLargeError,
    TransportError,
    redact_url,
)

_BY_STATUS: dict[int, type[RegistryError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: RegistryUnavailableError,
    413: TooLargeError,
    429: RateLimitedError,
}
_BY_CODE: dict[str, type[RegistryError]] = {
    "UNAUTHORIZED": AuthenticationError,
    "DENIED": PermissionDeniedError,
    "BLOB_UNKNOWN": NotFoundError,
    "MANIFEST_UNKNOWN": NotFoundError,
    "NAME_UNKNOWN": NotFoundError,
    "BLOB_UPLOAD_UNKNOWN": NotFoundError,
    "TOOMANYREQUESTS": RateLimitedError,
    "SIZE_INVALID": ProtocolError,
    "DIGEST_INVALID": ProtocolError,
    "MANIFEST_INVALID": ProtocolError,
    "MANIFEST_BLOB_UNKNOWN": ProtocolError,
    "NAME_INVALID": ProtocolError,
    "BLOB_UPLOAD_INVALID": ProtocolError,
    "UNSUPPORTED": ProtocolError,
}
_MAX_DETAIL = 300


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _first_error(body: bytes) -> tuple[str, str]:
    try:
        doc = json.loads(body)
        first = doc["errors"][0]
        return str(first.get("code", "")), str(first.get("message", ""))[:_MAX_DETAIL]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return "", ""


def error_from_response(op: str, origin: str, response: httpx.Response, body: bytes = b"") -> RegistryError:
    """The :class:`RegistryError` for an unexpected answer. ``body`` is what was read of it."""
    code, message = _first_error(body)
    status = response.status_code
    cls = _BY_STATUS.get(status) or _BY_CODE.get(code)
    if cls is None:
        cls = RegistryUnavailableError if status >= 500 else ProtocolError
    if not message and not code:
        message = response.reason_phrase
    return cls(
        op,
        origin,
        response.request.method,
        str(response.request.url),
        status,
        code,
        message,
        retry_after=retry_after(response.headers.get("retry-after")),
    )


def _cause(exc: Exception) -> str:
    """What lies under a transport error, in words that carry no URL: the OS error's kind, or
    why a certificate was refused (which operators otherwise cannot tell from a refused port)."""
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f" (TLS certificate refused: {cause.verify_message})"
    if isinstance(cause, ssl.SSLError):
        return f" (TLS: {cause.reason or type(cause).__name__})"
    if isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
        return f" ({type(cause).__name__})"
    return ""


def error_from_exception(op: str, origin: str, exc: Exception) -> FerryError:
    """A :class:`TransportError` for connection failures; protocol-level httpx errors otherwise.
    The exception's own text is left out: it may quote a URL with its query string."""
    request: httpx.Request | None = None
    if isinstance(exc, httpx.RequestError):
        try:
            request = exc.request
        except RuntimeError:
            request = None
    method = request.method if request is not None else ""
    url = str(request.url) if request is not None else ""
    where = f"{method} {redact_url(url)}" if request is not None else ""
    kind = type(exc).__name__
    if isinstance(exc, httpx.TooManyRedirects):
        return ProtocolError(op, origin, method, url, 0, "TOO_MANY_REDIRECTS", "too many redirects")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return InsecureEndpointError(f"{op} on {origin}: {where}: unsupported protocol")
    return TransportError(f"{op} on {origin}: {where}: {kind}{_cause(exc)}")
