"""The ARM engine: ACR's own ``importImage`` on the target registry, run server-side.

``POST {arm}/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/
registries/{name}/importImage?api-version=2023-07-01`` with an Entra token for
``https://management.azure.com/.default``. API version 2023-07-01 is the newest stable (GA)
version whose published examples cover every ``ImportImageParameters`` field Ferry sends
(``resourceId`` and ``registryUri`` sources, ``credentials``, ``targetTags``,
``untaggedTargetRepositories``, ``mode``); previews are not used in production paths.

Long-running operations follow ARM's rules (Azure docs, "Track asynchronous Azure operations"):
``200`` done; ``202`` → poll ``Azure-AsyncOperation`` when present (``status``: ``Succeeded``,
``Failed``, ``Canceled``, else running), otherwise ``Location`` (``202`` running, ``200``/``204``
done), waiting ``Retry-After`` between polls; an overall timeout turns a stuck import into a
clear failure. ARM's error code, message and correlation id go into the error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Required, TypedDict

import httpx

from shared.arm import ARM_ENDPOINT
from shared.credentials.model import get_token
from shared.errors import (
    ArmOperationError,
    ArmTimeoutError,
    AuthenticationError,
    FerryError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitedError,
    RegistryError,
    RegistryUnavailableError,
)
from shared.http.exchange import wire_for
from shared.http.mapping import Side, error_from_exception, retry_after
from shared.http.policy import TransportOptions
from shared.strict import loads_bounded

_ARM = Side("ARM")

log = logging.getLogger(__name__)

API_VERSION = "2023-07-01"
ARM_SCOPE = "https://management.azure.com/.default"
RUNNING = {"InProgress", "Running", "Accepted", "Creating", "Updating", "NotStarted"}


class ImportSourceCredentials(TypedDict, total=False):
    """``ImportSourceCredentials``: a password (or a token) is required, a username optional."""

    username: str
    password: Required[str]


class ImportSource(TypedDict, total=False):
    """``ImportSource``: the image (``repo[:tag]`` or ``repo@digest``) and its registry, by login
    server (``registryUri``) or by ARM resource ID (``resourceId``)."""

    sourceImage: Required[str]
    registryUri: str
    resourceId: str
    credentials: ImportSourceCredentials


class ImportImageParameters(TypedDict, total=False):
    """The ``importImage`` body, ``ImportImageParameters`` of the REST reference ("Registries -
    Import Image"): the source, then ``repo[:tag]`` targets and manifest-only repositories."""

    source: Required[ImportSource]
    targetTags: list[str]
    untaggedTargetRepositories: list[str]
    mode: Literal["NoForce", "Force"]


class ArmOperation(TypedDict):
    """What an import through ARM came to: its final status, ARM's correlation id for the call,
    and how long it took (seconds, to the millisecond)."""

    status: str
    correlationId: str
    seconds: float


@dataclass(frozen=True)
class ArmOptions:
    endpoint: str = ARM_ENDPOINT
    #: Seconds before a still-running import is declared failed.
    timeout: float = 1800.0
    #: Poll interval when ARM sends no Retry-After (and the longest wait honoured).
    poll_default: float = 5.0
    poll_max: float = 60.0


class ArmImporter:
    """Calls ``importImage`` and follows the operation to its end."""

    def __init__(
        self,
        token_source: Any,
        options: ArmOptions | None = None,
        transport: TransportOptions | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self._tokens = token_source
        self.options = options or ArmOptions()
        self._transport = transport or TransportOptions()
        self._sleep = sleep
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(60.0, connect=10.0),
            event_hooks={"request": [self._check]},
            # The registry client's transport: the polling URLs ARM hands back are checked like
            # any destination (no private or metadata address), where the connection is made.
            transport=wire_for(self._transport, _ARM, 4),
        )

    async def _check(self, request: httpx.Request) -> None:
        self._transport.check_url(request.url, "ARM")

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _token(self) -> str:
        return await get_token(self._tokens, ARM_SCOPE)

    def url(self, target_resource_id: str) -> str:
        return f"{self.options.endpoint.rstrip('/')}{target_resource_id}/importImage?api-version={API_VERSION}"

    async def run(self, target_resource_id: str, body: ImportImageParameters) -> ArmOperation:
        """Import and wait; returns what ARM said (status, correlation id, seconds)."""
        started = time.monotonic()
        headers = {"Authorization": f"Bearer {await self._token()}"}
        response = await self._send("POST", self.url(target_resource_id), headers, json=body)
        correlation = response.headers.get("x-ms-correlation-request-id", "")
        if response.status_code == 200:
            status = "Succeeded"
        elif response.status_code == 202:
            status = await self._poll(response, headers, started)
        else:
            raise self._error("import image", response)
        return ArmOperation(status=status, correlationId=correlation, seconds=round(time.monotonic() - started, 3))

    async def _poll(self, accepted: httpx.Response, headers: dict[str, str], started: float) -> str:
        async_op = accepted.headers.get("azure-asyncoperation")
        location = accepted.headers.get("location")
        if not async_op and not location:
            raise ProtocolError(
                op="import image",
                origin="ARM",
                method="POST",
                url=str(accepted.request.url),
                status=202,
                problem="202 without a URL to poll",
            )
        url = async_op or location or ""
        wait = self._wait(accepted)
        while True:
            if time.monotonic() - started + wait > self.options.timeout:
                raise ArmTimeoutError(
                    f"the ARM import did not finish within {self.options.timeout:.0f} s (FERRY_ARM_TIMEOUT_SECONDS); "
                    f"it may still complete in Azure: check the target registry before retrying"
                )
            await self._sleep(wait)
            response = await self._send("GET", url, headers)
            done = self._operation_status(response, url) if async_op else self._location_status(response)
            if done is not None:
                return done
            wait = self._wait(response)

    def _operation_status(self, response: httpx.Response, url: str) -> str | None:
        """An ``Azure-AsyncOperation`` answer: ``Succeeded``, None while running, else the error."""
        doc = loads_bounded(response.content) if response.status_code == 200 else {}
        doc = doc if isinstance(doc, dict) else {}
        status = str(doc.get("status", ""))
        if status == "Succeeded":
            return status
        if status in ("Failed", "Canceled"):
            found = doc.get("error")
            error: dict[str, Any] = found if isinstance(found, dict) else {}
            correlation = response.headers.get("x-ms-correlation-request-id", "?")
            message = error.get("message", "the operation " + status.lower())
            raise ArmOperationError(
                op="import image",
                origin="ARM",
                method="GET",
                url=url,
                status=200,
                registry_code=str(error.get("code", status)),
                registry_message=f"{message} (correlation id {correlation})",
            )
        if response.status_code != 200 or (status and status not in RUNNING):
            raise self._error("poll import", response)
        return None

    def _location_status(self, response: httpx.Response) -> str | None:
        """A ``Location`` answer: 200/204 done, 202 still running."""
        if response.status_code in (200, 204):
            return "Succeeded"
        if response.status_code != 202:
            raise self._error("poll import", response)
        return None

    def _wait(self, response: httpx.Response) -> float:
        given = retry_after(response.headers.get("retry-after"))
        return min(self.options.poll_max, given if given is not None else self.options.poll_default)

    async def _send(self, method: str, url: str, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
        """One ARM call, as one operation under the retry policy (429, 5xx, connection)."""
        attempts = self._transport.retry_policy(self._sleep).start()
        while True:
            try:
                response = await self.http.request(method, url, headers=headers, **kwargs)
            except httpx.HTTPError as exc:
                error: FerryError = error_from_exception("import image", _ARM, exc)
            except FerryError as exc:
                error = exc
            else:
                if response.status_code not in (429, 500, 502, 503, 504):
                    return response
                error = self._error("import image", response)
            await attempts.failed(error)

    @staticmethod
    def _error(op: str, response: httpx.Response) -> RegistryError:
        """ARM's error body ``{"error": {"code", "message"}}`` with the correlation id."""
        doc = loads_bounded(response.content)
        error = doc.get("error") if isinstance(doc, dict) else None
        error = error if isinstance(error, dict) else {}
        correlation = response.headers.get("x-ms-correlation-request-id", "?")
        message = f"{error.get('message', response.reason_phrase)} (correlation id {correlation})"
        code = str(error.get("code", ""))
        status = response.status_code
        cls: type[RegistryError] = {
            401: AuthenticationError,
            403: PermissionDeniedError,
            429: RateLimitedError,
        }.get(status, RegistryUnavailableError if status in (500, 502, 503, 504) else ArmOperationError)
        return cls(
            op=op,
            origin="ARM",
            method=response.request.method,
            url=str(response.request.url),
            status=status,
            registry_code=code,
            registry_message=message,
            retry_after=retry_after(response.headers.get("retry-after")),
        )
