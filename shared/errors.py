"""Every error Ferry raises on purpose, as one tree.

::

    FerryError                          retryable=False unless said otherwise
    ├── InvalidReferenceError           a reference or registry name that does not parse (also ValueError)
    ├── ConfigurationError              a setting or option that cannot work
    ├── UnsupportedContentError         schema 1 manifests and other content Ferry refuses to copy
    │   └── ManifestError               a manifest that is not valid JSON of a known shape
    │       └── IndexTooLargeError      more entries than the plan has room for
    ├── ContentIntegrityError           bytes that are not what their descriptor says
    │   ├── DigestMismatchError
    │   └── SizeMismatchError
    ├── InsecureEndpointError           plain HTTP, or a token realm / redirect Ferry will not follow
    ├── LimitExceededError              over a configured limit (manifests, descriptors, blob size)
    ├── NoMatchingPlatformError         --platform matches no manifest of the index
    ├── CycleError                      a manifest that reaches itself through its children
    ├── TagExistsError                  NoForce, and a target tag points at another image
    ├── SignatureRequiredError          a verification policy found no signature or attestation it needs
    ├── SignatureInvalidError           signatures were there, none the policy trusts (``reason``)
    ├── BadRequest                      a request that validates but cannot run here (``field``)
    ├── IdempotencyKeyReusedError       an Idempotency-Key sent again with another request
    ├── UnexpectedError                 retryable: a bug or an unexpected library error (INTERNAL)
    ├── ArmTimeoutError                 an ARM import still running past its timeout
    ├── PullBudgetSpent                 a pull the shared budget did not allow: wait ``until`` (not sent)
    ├── ServiceError                    a Ferry service refused a request or was not reached (its own code)
    ├── HostNotFoundError               a registry name that does not resolve (EAI_NONAME)
    ├── TransportError                  retryable: connection refused, reset, timed out
    │   └── StalledError                a body that arrives slower than the stall floor
    └── RegistryError                   an HTTP answer from a registry that is not what was asked for
        ├── AuthenticationError         401 / UNAUTHORIZED, and token-server failures
        │   └── AuthRequiredError       401 to a request that carried no credentials
        ├── PermissionDeniedError       403 / DENIED
        ├── NotFoundError               404 / *_UNKNOWN
        ├── TooLargeError               413, or a manifest over the size cap
        ├── RateLimitedError            retryable: 429 / TOOMANYREQUESTS (``retry_after`` in seconds)
        ├── RegistryUnavailableError    retryable: 408 and 5xx
        ├── ArmOperationError           ARM said the import failed: its code, message, correlation id
        └── ProtocolError               an answer the distribution spec does not allow

A message names the problem and the side first (``source registry docker.io: repository
library/nope not found``); the HTTP exchange behind it is in ``detail``. Messages never contain a
secret or a control character: URLs are passed through :func:`redact_url` (no userinfo, no query
string), and ``str()`` of every error goes through :func:`shared.text.clean`, which redacts every
secret Ferry holds (also when a registry echoes one back) and escapes control characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Self
from urllib.parse import urlsplit, urlunsplit

from shared.text import clean, shorten


def redact_url(url: object) -> str:
    """The URL without userinfo, query string or fragment: SAS tokens and state live in those."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class FerryError(Exception):
    """Base of every error Ferry raises on purpose."""

    retryable: bool = False
    #: A short, stable, machine-readable name (recorded in job status records).
    code: str = "FERRY_ERROR"
    #: What lies under the message (the HTTP exchange), for the JSON result and debug logs.
    detail: str = ""
    #: Set by the retry policy when it gives up: attempts made and the seconds they took.
    attempts: tuple[int, float] | None = None

    def __init__(self, *args: object, detail: str = "") -> None:
        super().__init__(*args)
        if detail:
            self.detail = detail

    def after(self, attempts: int, seconds: float) -> Self:
        """This error, as the last of ``attempts`` that took ``seconds``: a copy whose message
        says so (the error itself is not changed)."""
        copy = type(self).__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.args = self.args
        copy.attempts = (attempts, seconds)
        return copy

    def __str__(self) -> str:
        text = super().__str__()
        if self.attempts is not None and self.attempts[0] > 1:
            text += f" ({self.attempts[0]} attempts over {self.attempts[1]:.0f} s)"
        return clean(text)


class InvalidReferenceError(FerryError, ValueError):
    """A reference, repository, tag, digest or registry name that does not parse."""

    code = "INVALID_REFERENCE"

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(f"invalid reference {text!r}: {reason}")


class PullBudgetSpent(FerryError):
    """A pull (manifest ``GET``) the registry's shared budget did not allow: it was not sent. Not
    a failure: the job waits until ``until`` (epoch seconds) and goes on by itself."""

    code = "RATE_LIMIT_WAIT"

    def __init__(self, key: str, until: float, budget: str) -> None:
        self.key, self.until, self.budget = key, until, budget
        at = datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        #: What the job's record says while it waits: ``rate limit (until 2026-12-06T05:30:00Z)``.
        self.waiting = f"rate limit (until {at})"
        super().__init__(f"{key}: pull budget spent ({budget}); waiting until {at}")


class ConfigurationError(FerryError):
    """A setting or option that cannot work."""

    code = "CONFIGURATION"


class UnsupportedContentError(FerryError):
    """Content Ferry refuses to copy, such as Docker schema 1 manifests."""

    code = "UNSUPPORTED"


class ManifestError(UnsupportedContentError):
    """A manifest that is not valid JSON of a known shape."""

    code = "MANIFEST_INVALID"


class IndexTooLargeError(ManifestError):
    """An index (``what="manifests"``) or manifest (``"blobs"``) with more entries than its
    reader would take (see ``parse_manifest``)."""

    def __init__(self, count: int, what: str = "manifests") -> None:
        super().__init__(f"{'index' if what == 'manifests' else 'manifest'} has {count} {what}")
        self.count = count
        self.what = what


class LimitExceededError(FerryError):
    """An import over a configured limit; raised before anything is copied."""

    code = "LIMIT_EXCEEDED"


class NoMatchingPlatformError(FerryError):
    code = "NO_MATCHING_PLATFORM"


class CycleError(FerryError):
    """A manifest that reaches itself through its children: no order can copy it."""

    code = "MANIFEST_CYCLE"


class TagExistsError(FerryError):
    """``NoForce`` and a target tag that points at another image: nothing was written."""

    code = "TAG_EXISTS"


class SignatureRequiredError(FerryError):
    """A verification policy in ``enforce`` mode found nothing it could count: no signature (or
    no attestation of a required type) is attached to the digest. Nothing was copied."""

    code = "SIGNATURE_REQUIRED"


class SignatureInvalidError(FerryError):
    """Signatures or attestations were attached, and none satisfied the policy: ``reason`` says
    why (wrong key, digest mismatch, identity not trusted, certificate expired, tampered
    payload). Nothing was copied."""

    code = "SIGNATURE_INVALID"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class BadRequest(FerryError):
    """A request that validates but cannot run here (a credential that is not configured...)."""

    code = "BAD_REQUEST"

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}")


class IdempotencyKeyReusedError(FerryError):
    """An ``Idempotency-Key`` sent again with a different request (IETF httpapi draft: 422)."""

    code = "IDEMPOTENCY_KEY_REUSED"


class UnknownJobError(FerryError):
    """No import job has this id (404)."""

    code = "NOT_FOUND"


class JobStateError(FerryError):
    """The job is not in a state the request applies to (409): cancelling a finished job,
    retrying one that neither failed nor was cancelled. ``state`` is the job's state."""

    code = "JOB_STATE"

    def __init__(self, message: str, *, state: str) -> None:
        super().__init__(message)
        self.state = state


class UnexpectedError(FerryError):
    """A bug or an unexpected library error: worth another delivery, then poison."""

    retryable = True
    code = "INTERNAL"

    def __init__(self, kind: str) -> None:
        super().__init__(f"unexpected {kind}; see the function's logs")


class ArmTimeoutError(FerryError):
    code = "ARM_TIMEOUT"


class ServiceError(FerryError):
    """The service refused a request, or could not be reached. ``code`` is the service's own
    (``BAD_REQUEST``, ``JOB_STATE``, ``NOT_FOUND``...) or ``SERVICE_UNREACHABLE``/``SERVICE_ERROR``;
    ``fields``: each bad field of a ``400`` and why; ``state``: a ``409``'s job or run state."""

    code = "SERVICE_ERROR"

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        status: int = 0,
        fields: Sequence[tuple[str, str]] = (),
        state: str | None = None,
    ) -> None:
        super().__init__(message)
        if code:
            self.code = code
        self.status = status
        self.fields = list(fields)
        self.state = state


class ContentIntegrityError(FerryError):
    """Bytes that are not what their descriptor says. Never written anywhere."""

    code = "INTEGRITY"


class DigestMismatchError(ContentIntegrityError):
    code = "DIGEST_MISMATCH"

    def __init__(self, what: str, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"{what}: digest mismatch: expected {expected}, got {actual}")


class SizeMismatchError(ContentIntegrityError):
    code = "SIZE_MISMATCH"

    def __init__(self, what: str, expected: int, actual: int) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"{what}: size mismatch: expected {expected} bytes, got {actual}")


class InsecureEndpointError(FerryError):
    """Plain HTTP to a host not allowed to use it, or a token realm / redirect Ferry will not follow."""

    code = "INSECURE_ENDPOINT"


class HostNotFoundError(FerryError):
    """The registry's name does not resolve: a typo, or a name that does not exist. Permanent."""

    code = "HOST_NOT_FOUND"


class TransportError(FerryError):
    """The connection failed: refused, reset, timed out. Worth another try."""

    retryable = True
    code = "TRANSPORT"


class StalledError(TransportError):
    """A body arrived slower than the stall floor (``FERRY_STALL_FLOOR_BYTES`` per second)."""

    code = "STALLED"


class RegistryError(FerryError):
    """A registry answered, but not with what was asked for.

    The message reads ``{origin}: {problem}``, where ``origin`` names the registry and its side
    (``source registry docker.io``) and ``problem`` is said in words (:mod:`shared.http.mapping`
    chooses them); ``detail`` keeps the exchange: ``{op}: {METHOD} {url}: {status} {CODE}: {message}``.
    """

    code = "REGISTRY_ERROR"

    def __init__(
        self,
        *,
        op: str,
        origin: str,
        method: str = "",
        url: str = "",
        status: int = 0,
        registry_code: str = "",
        registry_message: str = "",
        retry_after: float | None = None,
        problem: str = "",
    ) -> None:
        self.op = op
        #: Seconds the registry asked us to wait (``Retry-After``), when it said.
        self.retry_after = retry_after
        self.origin = origin
        self.method = method
        self.url = redact_url(url)
        self.status = status
        self.registry_code = shorten(registry_code, 64)
        self.registry_message = shorten(registry_message, 300)
        tail = ": ".join(part for part in (self.registry_code, self.registry_message) if part)
        where = f"{method} {self.url}: " if method else ""
        self.detail = clean(f"{op}: {where}{status}" + (f" {tail}" if tail else ""))
        super().__init__(f"{origin}: {problem}" if problem else f"{origin}: {self.detail}")


class AuthenticationError(RegistryError):
    code = "UNAUTHORIZED"


class AuthRequiredError(AuthenticationError):
    """A 401 to a request that carried no credentials: the registry wants some."""

    code = "AUTH_REQUIRED"


class PermissionDeniedError(RegistryError):
    code = "DENIED"


class NotFoundError(RegistryError):
    code = "NOT_FOUND"


class TooLargeError(RegistryError):
    code = "TOO_LARGE"


class RateLimitedError(RegistryError):
    retryable = True
    code = "TOOMANYREQUESTS"


class RegistryUnavailableError(RegistryError):
    retryable = True
    code = "UNAVAILABLE"


class ProtocolError(RegistryError):
    code = "PROTOCOL"


class ArmOperationError(RegistryError):
    """ARM said the import failed (or was canceled): its code and message, and the correlation id."""

    code = "ARM_IMPORT_FAILED"
