"""One registry host's HTTP: a connection pool, authentication, retries and error mapping.

Retries (429, 408, 5xx, connection errors) use exponential backoff with full jitter, honour
``Retry-After``, and are bounded in attempts and total time. A request whose body is a stream is
never retried here: its bytes are gone; the blob layer resumes uploads from the registry's offset.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from shared.credentials import Anonymous, Credential
from shared.errors import FerryError, RegistryError
from shared.registry import logsafety
from shared.registry import scopes as sc
from shared.registry.auth import SCOPES, RegistryAuth
from shared.registry.errors import error_from_exception, error_from_response
from shared.registry.policy import TransportOptions
from shared.registry.wire import Http11Transport

log = logging.getLogger(__name__)

#: Bytes of an error answer read for its message.
_ERROR_BODY = 64 * 1024


logsafety.install()


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verified TLS context per process, built when the first ``https`` connection opens:
    the CAs of ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set (a private registry's internal CA,
    as OpenSSL and httpx read them), certifi's bundle otherwise. Building one parses the bundle,
    about 50 ms: every client shares this one, and a run that meets only loopback registries
    never pays for it (nor for importing certifi, which brings importlib.resources)."""
    cafile, capath = os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None
    if cafile or capath:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    import certifi  # noqa: PLC0415

    return ssl.create_default_context(cafile=certifi.where())


def wire_for(options: TransportOptions, what: str, max_connections: int) -> Http11Transport:
    """The HTTP/1.1 transport as ``options`` say: every connection's addresses checked (``what``
    names the caller in a refusal), TLS verified with :func:`tls_context`, proxies as set."""
    return Http11Transport(
        max_connections=max_connections,
        check=functools.partial(options.refuse, what=what),
        tls=tls_context,
        proxy_for=options.proxy_for,
    )


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
        # Manifests and blobs are checked against their digests byte for byte, so no content
        # coding may come between (httpx asks for gzip by default; a proxy or CDN could oblige).
        headers = {"User-Agent": self.options.user_agent, "Accept-Encoding": "identity"}
        hooks = {"request": [self._check_request]}
        #: The last ``ratelimit-remaining`` this registry sent (Docker Hub: ``20;w=21600``), if any.
        self.ratelimit_remaining: int | None = None
        self._token_http = httpx.AsyncClient(
            timeout=timeout,
            headers=headers,
            event_hooks=hooks,
            transport=wire_for(self.options, f"request to {registry}", 4),
        )
        self.auth = RegistryAuth(registry, credential or Anonymous(), self.options, self._token_http, clock)
        self.http = httpx.AsyncClient(
            auth=self.auth,
            timeout=timeout,
            headers=headers,
            event_hooks={**hooks, "response": [self._note_ratelimit]},
            transport=wire_for(self.options, f"request to {registry}", self.options.max_connections),
        )

    async def _note_ratelimit(self, response: httpx.Response) -> None:
        value = response.headers.get("ratelimit-remaining")
        if value:
            head = value.split(";", 1)[0].strip()
            if head.isdigit():
                self.ratelimit_remaining = int(head)

    async def _check_request(self, request: httpx.Request) -> None:
        """Every request, redirects and token realms included: plain HTTP only where allowed."""
        self.options.check_url(request.url, f"request to {self.registry}")

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
