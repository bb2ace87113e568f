"""One registry host's HTTP: a connection pool, authentication, retries and error mapping.

Retries (429, 408, 5xx, connection errors) use exponential backoff with full jitter, honour
``Retry-After``, and are bounded in attempts and total time. A request whose body is a stream is
never retried here: its bytes are gone; the blob layer resumes uploads from the registry's offset.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import certifi
import httpx
from httpcore._async.http11 import AsyncHTTP11Connection

from shared.credentials import Anonymous, Credential
from shared.errors import FerryError, InsecureEndpointError, RegistryError
from shared.registry import logsafety
from shared.registry import scopes as sc
from shared.registry.auth import SCOPES, RegistryAuth
from shared.registry.errors import error_from_exception, error_from_response
from shared.registry.policy import TransportOptions, is_loopback, is_private_literal

log = logging.getLogger(__name__)

#: Bytes of an error answer read for its message.
_ERROR_BODY = 64 * 1024


logsafety.install()

#: httpcore reads a response 64 KiB at a time (``AsyncHTTP11Connection.READ_NUM_BYTES``), each
#: read a trip through anyio and h11 in Python: for blob streams that trip is most of the
#: client's CPU. 1 MiB reads cut it by about a third (bench/README.md). It is httpcore's own
#: class attribute; tests/test_values.py fails if a new httpcore drops it.
READ_BYTES = 1024 * 1024
AsyncHTTP11Connection.READ_NUM_BYTES = max(AsyncHTTP11Connection.READ_NUM_BYTES, READ_BYTES)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verified TLS context per process, as httpx builds by default (certifi's CA bundle).
    Building one parses the bundle, about 50 ms: every client shares this one."""
    return ssl.create_default_context(cafile=certifi.where())


class LazyTLSTransport(httpx.AsyncBaseTransport):
    """Plain HTTP at once; HTTPS through a verified transport built on first use, so that a run
    that only meets loopback registries never pays for TLS set-up. The plain transport is only
    ever handed ``http://`` requests, so it has nothing to verify."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self._plain = httpx.AsyncHTTPTransport(limits=limits, verify=False)  # only ever sent http:// requests
        self._tls: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "https":
            return await self._plain.handle_async_request(request)
        if self._tls is None:
            self._tls = httpx.AsyncHTTPTransport(limits=self._limits, verify=tls_context())
        return await self._tls.handle_async_request(request)

    async def aclose(self) -> None:
        await self._plain.aclose()
        if self._tls is not None:
            await self._tls.aclose()


class Transport:
    """HTTP to one registry host, authenticated as one credential."""

    def __init__(
        self,
        registry: str,
        api_host: str,
        credential: Credential | None = None,
        options: TransportOptions | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.options = options or TransportOptions()
        self.registry = registry
        self.api_host = api_host
        self.base_url = f"{self.options.scheme_for(api_host)}://{api_host}"
        self._sleep = sleep
        timeout = httpx.Timeout(self.options.read_timeout, connect=self.options.connect_timeout)
        limits = httpx.Limits(
            max_connections=self.options.max_connections,
            max_keepalive_connections=self.options.max_connections,
        )
        headers = {"User-Agent": self.options.user_agent}
        hooks = {"request": [self._check_request]}
        #: The last ``ratelimit-remaining`` this registry sent (Docker Hub: ``20;w=21600``), if any.
        self.ratelimit_remaining: int | None = None
        self._checked: set[str] = set()
        self._token_http = httpx.AsyncClient(
            timeout=timeout,
            headers=headers,
            event_hooks=hooks,
            transport=LazyTLSTransport(httpx.Limits(max_connections=4)),
        )
        self.auth = RegistryAuth(registry, credential or Anonymous(), self.options, self._token_http, clock)
        self.http = httpx.AsyncClient(
            auth=self.auth,
            timeout=timeout,
            headers=headers,
            event_hooks={**hooks, "response": [self._note_ratelimit]},
            transport=LazyTLSTransport(limits),
        )

    async def _note_ratelimit(self, response: httpx.Response) -> None:
        value = response.headers.get("ratelimit-remaining")
        if value:
            head = value.split(";", 1)[0].strip()
            if head.isdigit():
                self.ratelimit_remaining = int(head)

    async def _check_request(self, request: httpx.Request) -> None:
        """Every request, redirects and token realms included: plain HTTP only where allowed, and
        no private, link-local or (unless allowed) loopback address, also behind a name (SSRF)."""
        self.options.check_url(request.url, f"request to {self.registry}")
        authority = request.url.netloc.decode("ascii")
        if authority not in self._checked:
            addresses: list[str] = []
            host = request.url.host
            if not is_private_literal(host) and not is_loopback(host) and not _is_ip(host):
                try:
                    infos = await asyncio.get_running_loop().getaddrinfo(host, request.url.port or 443)
                    addresses = [str(info[4][0]) for info in infos]
                except OSError:
                    addresses = []  # let the connection fail with its own error
            reason = self.options.refusal(authority, addresses)
            if reason is not None:
                raise InsecureEndpointError(
                    f"request to {self.registry}: refused: {reason} (FERRY_ALLOWED_REGISTRIES can allow it)"
                )
            self._checked.add(authority)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self._token_http.aclose()

    def url(self, path: str) -> httpx.URL:
        return httpx.URL(self.base_url + path)

    # -- retries ----------------------------------------------------------------------------

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (full jitter; ``Retry-After`` is a floor)."""
        delay = random.uniform(  # noqa: S311 - jitter, not a secret
            0, min(self.options.backoff_cap, self.options.backoff_base * 2**attempt)
        )
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    async def _wait_or_raise(self, error: FerryError, attempt: int, started: float, replayable: bool) -> None:
        if not error.retryable or not replayable or attempt + 1 >= self.options.max_attempts:
            raise error
        retry_after = getattr(error, "retry_after", None)
        delay = self.backoff(attempt, retry_after)
        remaining = self.options.retry_budget - (time.monotonic() - started)
        if delay > min(remaining, max(self.options.backoff_cap, retry_after or 0.0)) or remaining <= 0:
            raise error
        log.info("%s; retrying in %.1fs (attempt %d of %d)", error, delay, attempt + 2, self.options.max_attempts)
        await self._sleep(delay)

    @asynccontextmanager
    async def open(
        self,
        op: str,
        method: str,
        url: httpx.URL | str,
        *,
        scopes: frozenset[sc.Scope] = frozenset(),
        ok: tuple[int, ...] = (200,),
        headers: dict[str, str] | None = None,
        content: Any = None,
        params: Any = None,
        follow_redirects: bool = False,
    ) -> AsyncIterator[httpx.Response]:
        """A streamed response whose status is in ``ok``, after retries; the body is left to read.
        Any other status raises the mapped :class:`RegistryError`."""
        replayable = content is None or isinstance(content, bytes)
        started = time.monotonic()
        attempt = 0
        while True:
            request = self.http.build_request(
                method, url, headers=headers, content=content, params=params, extensions={SCOPES: scopes}
            )
            try:
                response = await self.http.send(request, stream=True, follow_redirects=follow_redirects)
            except httpx.HTTPError as exc:
                error: FerryError = error_from_exception(op, self.registry, exc)
            else:
                if response.status_code in ok:
                    try:
                        yield response
                    finally:
                        await response.aclose()
                    return
                error = await self._error(op, response)
            await self._wait_or_raise(error, attempt, started, replayable)
            attempt += 1

    async def _error(self, op: str, response: httpx.Response) -> RegistryError:
        body = b""
        try:
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) >= _ERROR_BODY:
                    break
        except httpx.HTTPError:
            pass
        finally:
            await response.aclose()
        return error_from_response(op, self.registry, response, body[:_ERROR_BODY])

    async def request(self, op: str, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        """Like :meth:`open`, with the body read (for small answers only)."""
        async with self.open(op, method, url, **kwargs) as response:
            await response.aread()
            return response
