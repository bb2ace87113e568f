"""The one place where HTTP answers and httpx exceptions become :mod:`shared.errors`.

Error bodies follow distribution-spec "Error Codes": ``{"errors": [{"code", "message", "detail"}]}``.
Status decides the class first (it is what every registry sends); the OCI code refines it for
registries that send a generic status. The message says the problem in words, from the side's
point of view (``source registry docker.io: repository library/nope not found``); the HTTP
exchange stays in the error's ``detail``.
"""

from __future__ import annotations

import re
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

import httpx

from shared.errors import (
    AuthenticationError,
    AuthRequiredError,
    FerryError,
    HostNotFoundError,
    InsecureEndpointError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitedError,
    RegistryError,
    RegistryUnavailableError,
    StalledError,
    TooLargeError,
    TransportError,
    redact_url,
)
from shared.strict import header_int, loads_bounded

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
#: Longest ``Retry-After`` believed, in seconds: a day (a larger one is a day, not an overflow).
_MAX_RETRY_AFTER = 86_400
#: ``/v2/<name>/<kind>/<reference>`` (distribution-spec "Endpoints").
_PATH = re.compile(r"/v2/(?P<repo>.+?)/(?P<kind>manifests|blobs|tags|referrers)(?:/(?P<ref>[^/?]*))?")


@dataclass(frozen=True, slots=True)
class Side:
    """Who a registry is to this import and who Ferry is to it, for messages: ``label`` is
    ``source registry docker.io``; ``who`` names the credential (``user ci``), empty when
    anonymous."""

    label: str
    who: str = ""

    @classmethod
    def of(cls, registry: str, role: str = "", who: str = "") -> Side:
        return cls(f"{role} registry {registry}".strip(), who)


class Answered(Protocol):
    """What an error needs of an answer, streamed or read whole: its request and status."""

    @property
    def request(self) -> httpx.Request: ...
    @property
    def status_code(self) -> int: ...


def refused(
    op: str, side: Side, answer: Answered, problem: str, cls: type[RegistryError] = ProtocolError
) -> RegistryError:
    """An answer Ferry cannot take (``ProtocolError`` unless said), its problem in words."""
    return cls(
        op=op,
        origin=side.label,
        method=answer.request.method,
        url=str(answer.request.url),
        status=answer.status_code,
        problem=problem,
    )


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    seconds = header_int(value, maximum=None)
    if seconds is not None:
        return float(min(seconds, _MAX_RETRY_AFTER))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(_MAX_RETRY_AFTER, max(0.0, (when - (now or datetime.now(UTC))).total_seconds()))


def _first_error(body: bytes) -> tuple[str, str]:
    doc = loads_bounded(body)
    try:
        first = doc["errors"][0]
        return str(first.get("code", "")), str(first.get("message", ""))
    except (KeyError, IndexError, TypeError, AttributeError):
        return "", ""


def _subject(url: httpx.URL) -> tuple[str, str, str]:
    """(repository, kind, reference) of a distribution API URL; empty strings where it is not."""
    match = _PATH.match(url.path)
    if match is None:
        return "", "", ""
    return match["repo"], match["kind"], match["ref"] or ""


def _what(url: httpx.URL, code: str) -> str:
    """The thing a request was about, in words: ``repository R``, ``R:tag``, ``blob D in R``."""
    repo, kind, ref = _subject(url)
    if not repo:
        return "the resource"
    if code == "NAME_UNKNOWN" or kind == "tags":
        return f"repository {repo}"
    if kind == "manifests" and ref:
        return f"{repo}@{ref}" if ":" in ref else f"{repo}:{ref}"
    if kind == "blobs" and ref and ref != "uploads":
        return f"blob {ref} in {repo}"
    if kind == "referrers":
        return f"referrers of {repo}@{ref}"
    return f"repository {repo}"


def _problem(cls: type[RegistryError], status: int, code: str, url: httpx.URL, side: Side, wait: float | None) -> str:
    what = _what(url, code)
    if cls is AuthRequiredError:
        return "requires credentials: name a credential or pass --username"
    if cls is AuthenticationError:
        return f"rejected the credentials of {side.who}" if side.who else "rejected the request as unauthenticated"
    if cls is PermissionDeniedError:
        return f"denied access to {what}" + (f" to {side.who}" if side.who else "")
    if cls is NotFoundError:
        return f"{what} not found"
    if cls is RateLimitedError:
        return "rate limit reached" + (f"; asked to wait {wait:.0f} s" if wait is not None else "")
    if cls is TooLargeError:
        return f"refused {what} as too large"
    if cls is RegistryUnavailableError:
        return f"unavailable ({status})"
    return f"refused {what}: {status}" + (f" {code}" if code else "")


def error_from_response(op: str, side: Side, response: httpx.Response, body: bytes = b"") -> RegistryError:
    """The :class:`RegistryError` for an unexpected answer. ``body`` is what was read of it."""
    code, message = _first_error(body)
    status = response.status_code
    cls = _BY_STATUS.get(status) or _BY_CODE.get(code)
    if cls is None:
        cls = RegistryUnavailableError if status >= 500 else ProtocolError
    if cls is AuthenticationError and not side.who:  # anonymous, or an anonymous token refused
        cls = AuthRequiredError
    if not message and not code:
        message = response.reason_phrase
    wait = retry_after(response.headers.get("retry-after"))
    problem = _problem(cls, status, code, response.request.url, side, wait)
    if response.history and response.history[0].request.url.netloc != response.request.url.netloc:
        elsewhere = response.request.url.netloc.decode("ascii", "replace")
        problem = f"redirected {_what(response.history[0].request.url, code)} to {elsewhere}, which answered {status}"
        if status == 401:
            problem += " (credentials go only to the registry itself)"
    return cls(
        op=op,
        origin=side.label,
        method=response.request.method,
        url=str(response.request.url),
        status=status,
        registry_code=code,
        registry_message=message,
        retry_after=wait,
        problem=problem,
    )


def _cause(exc: BaseException) -> str:
    """What lies under a transport error, in words that carry no URL: the OS error's kind, or
    why a certificate was refused (which operators otherwise cannot tell from a refused port)."""
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS certificate refused: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS: {cause.reason or type(cause).__name__}"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, ConnectionResetError):
        return "connection reset"
    if isinstance(cause, socket.gaierror):
        return "name resolution failed, temporarily"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"broke the HTTP protocol: {exc}"
    if isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
        return f"connection failed ({type(cause).__name__})"
    return f"connection failed ({type(exc).__name__})"


def _not_a_name(exc: BaseException) -> bool:
    """The name does not exist (EAI_NONAME, or glibc's "no address" for a name without one);
    EAI_AGAIN, a resolver that did not answer, is worth another try."""
    cause = exc.__cause__
    return isinstance(cause, socket.gaierror) and cause.errno in (
        socket.EAI_NONAME,
        getattr(socket, "EAI_NODATA", socket.EAI_NONAME),
    )


def error_from_exception(op: str, side: Side, exc: BaseException) -> FerryError:
    """A :class:`FerryError` for an httpx exception (connection failures are
    :class:`TransportError`). The exception's own text is left out where it may quote a URL
    with its query string; wire's messages never do."""
    request: httpx.Request | None = None
    if isinstance(exc, httpx.RequestError):
        try:
            request = exc.request
        except RuntimeError:
            request = None
    method = request.method if request is not None else ""
    url = str(request.url) if request is not None else ""
    where = f"{op}: {method} {redact_url(url)}" if request is not None else op
    if isinstance(exc, httpx.TooManyRedirects):
        return ProtocolError(
            op=op,
            origin=side.label,
            method=method,
            url=url,
            status=0,
            registry_code="TOO_MANY_REDIRECTS",
            problem="too many redirects",
        )
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return InsecureEndpointError(f"{side.label}: {where}: unsupported or invalid URL")
    if _not_a_name(exc):
        return HostNotFoundError(f"{side.label}: host not found", detail=where)
    if isinstance(exc, httpx.LocalProtocolError):
        return ProtocolError(op=op, origin=side.label, method=method, url=url, problem=f"request refused: {exc}")
    if isinstance(exc, httpx.RemoteProtocolError) and not getattr(exc, "truncated", False):
        return ProtocolError(
            op=op, origin=side.label, method=method, url=url, problem=f"answer broke the HTTP protocol: {exc}"
        )
    return TransportError(f"{side.label}: {_cause(exc)}", detail=where)


def stalled(op: str, side: Side, floor: int, window: float) -> StalledError:
    return StalledError(
        f"{side.label}: {op} stalled: less than {floor * window / 1024:.0f} KiB arrived in {window:g} s "
        "(FERRY_STALL_FLOOR_BYTES, FERRY_STALL_WINDOW_SECONDS)",
        detail=op,
    )
