"""One registry host's HTTP: a guarded connection pool, authentication, and the retry policy.

Every request goes through :mod:`shared.http.exchange` (one error mapping, capped bodies, the
stall floor, no content coding). :meth:`Transport.open` makes a request an operation of its own,
retried by :mod:`shared.http.retry` when it can be sent again (no body, or bytes); a request that
is part of a larger operation (an upload, a resumed download) is sent with ``retry=False`` and
the operation retries as a whole.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from shared.credentials import Anonymous, Credential
from shared.errors import FerryError, RegistryError
from shared.http import logsafety
from shared.http.budget import PullBudget, budget_key
from shared.http.exchange import SMALL_BODY, extensions, read_body, wire_for
from shared.http.mapping import Side, error_from_exception, error_from_response
from shared.http.policy import TransportOptions
from shared.http.ratelimit import RateLimit, is_pull, read_ratelimit
from shared.http.retry import RetryPolicy
from shared.registry import scopes as sc
from shared.registry.auth import SCOPES, RegistryAuth

log = logging.getLogger(__name__)

logsafety.install()


class _NoCookies(httpx.Cookies):
    """No cookie is kept: a registry's cookies are no credential Ferry means to carry, and
    reading every answer for them (httpx wraps each in urllib's request and response) was a
    tenth of a ``HEAD``'s CPU."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        raise ValueError("Ferry's registry clients keep no cookies")


class _Client(httpx.AsyncClient):
    """httpx's client without its cookie jar (:class:`_NoCookies`)."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        if cookies:
            raise ValueError("Ferry's registry clients keep no cookies")


_NO_COOKIES = _NoCookies()


class Transport:
    """HTTP to one registry host, authenticated as one credential. ``role`` (``source``,
    ``target``) names the registry's side of an import in messages.

    ``budget``: the shared pull budget each manifest ``GET`` is taken from (and every answer's
    word on the limit told to), under ``budget_name`` (default: the credential as it describes
    itself)."""

    def __init__(
        self,
        registry: str,
        api_host: str,
        credential: Credential | None = None,
        options: TransportOptions | None = None,
        *,
        role: str = "",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = asyncio.sleep,
        budget: PullBudget | None = None,
        budget_name: str | None = None,
    ) -> None:
        self.options = options or TransportOptions()
        self.registry = registry
        self.api_host = api_host
        self.base_url = f"{self.options.scheme_for(api_host)}://{api_host}"
        credential = credential or Anonymous()
        self.side = Side.of(registry, role, credential.describe())
        self.retry = self.options.retry_policy(sleep)
        #: The last word on the limit this registry sent (Docker Hub: ``ratelimit-remaining: 20;w=21600``).
        self.ratelimit: RateLimit | None = None
        self.budget = budget
        self.budget_key = budget_key(registry, budget_name or credential.describe())
        #: Requests sent (every answer, auth round trips included) and pulls among them.
        self.requests = 0
        self.pulls = 0
        self._token_http = self._client(4)
        self.auth = RegistryAuth(
            registry, credential, self.options, self._token_http, clock, origin=httpx.URL(self.base_url), side=self.side
        )
        self.http = self._client(self.options.max_connections, self.auth)

    def _client(self, connections: int, auth: RegistryAuth | None = None) -> httpx.AsyncClient:
        """An httpx client over the guarded transport: the registry's (with ``auth``) or the one
        its token realms are asked with."""
        hooks: dict[str, list[Any]] = {"request": [self._check_request]}
        if auth is not None:
            hooks["response"] = [self._note_ratelimit]
        return _Client(
            auth=auth,
            timeout=httpx.Timeout(self.options.read_timeout, connect=self.options.connect_timeout),
            # Manifests and blobs are checked against their digests byte for byte, so no content
            # coding may come between (httpx asks for gzip by default; a proxy or CDN could oblige).
            headers={"User-Agent": self.options.user_agent, "Accept-Encoding": "identity"},
            event_hooks=hooks,
            transport=wire_for(self.options, self.side, connections),
        )

    @property
    def ratelimit_remaining(self) -> int | None:
        """The last ``ratelimit-remaining`` this registry sent, if any."""
        return self.ratelimit.remaining if self.ratelimit is not None else None

    async def _note_ratelimit(self, response: httpx.Response) -> None:
        """Every answer of the registry (not its token realm): counted, and its word on the
        limit kept and told to the budget."""
        self.requests += 1
        self.pulls += is_pull(response.request.method, response.request.url.path)
        said = read_ratelimit(response.status_code, response.headers)
        if said is None:
            return
        if said.remaining is not None or self.ratelimit is None:
            self.ratelimit = said
        if self.budget is not None:
            await self.budget.note(self.budget_key, said)

    async def _check_request(self, request: httpx.Request) -> None:
        """Every request, redirects and token realms included: plain HTTP only where allowed."""
        self.options.check_url(request.url, f"request to {self.registry}")

    async def aclose(self) -> None:
        await self.http.aclose()
        await self._token_http.aclose()

    def url(self, path: str) -> httpx.URL:
        return httpx.URL(self.base_url + path)

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
        cap: int | None = SMALL_BODY,
        retry: bool = True,
    ) -> AsyncIterator[httpx.Response]:
        """A streamed response whose status is in ``ok``; the body is left to read, within
        ``cap`` bytes. Any other status raises the mapped :class:`RegistryError`. Retried as its
        own operation unless ``retry`` is false or its body cannot be sent again."""
        replayable = retry and (content is None or isinstance(content, bytes))
        attempts = self.retry.start()
        while True:
            request = self.http.build_request(
                method, url, headers=headers, content=content, params=params,
                extensions=extensions(op, cap, **{SCOPES: scopes}),
            )  # fmt: skip
            try:
                response = await self._send(request, follow_redirects)
            except httpx.HTTPError as exc:  # raised by httpx itself (redirects, URLs), not the wire
                error: FerryError = error_from_exception(op, self.side, exc)
            except FerryError as exc:
                error = exc
            else:
                if response.status_code in ok:
                    try:
                        yield response
                    finally:
                        await response.aclose()
                    return
                error = await self._error(op, response)
            await attempts.failed(error, retryable=error.retryable and replayable)

    async def _send(self, request: httpx.Request, follow_redirects: bool) -> httpx.Response:
        """Send ``request``; a pull is taken from the budget first (:class:`PullBudgetSpent`, not
        retryable: the request is not sent)."""
        if self.budget is not None and is_pull(request.method, request.url.path):
            await self.budget.take(self.budget_key)
        return await self.http.send(request, stream=True, follow_redirects=follow_redirects)

    async def _error(self, op: str, response: httpx.Response) -> RegistryError:
        try:
            body = await read_body(response)  # an error answer is cut at SMALL_BODY
        except FerryError:
            body = b""
        finally:
            await response.aclose()
        return error_from_response(op, self.side, response, body)

    async def request(
        self, op: str, method: str, url: httpx.URL | str, *, retry: bool = True, **kwargs: Any
    ) -> Response:
        """Like :meth:`open`, with the body read whole (within ``cap``): one operation, retried
        as a whole when the answer or the reading of its body fails in a way worth retrying."""
        content = kwargs.get("content")
        replayable = retry and (content is None or isinstance(content, bytes))
        attempts = self.retry.start()
        while True:
            try:
                async with self.open(op, method, url, retry=False, **kwargs) as response:
                    return Response(response, await read_body(response))
            except FerryError as error:
                await attempts.failed(error, retryable=error.retryable and replayable)


class Response:
    """An answer read whole: its head, and its body as sent."""

    __slots__ = ("content", "extensions", "headers", "request", "status_code")

    def __init__(self, response: httpx.Response, content: bytes) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self.request = response.request
        self.extensions = response.extensions
        self.content = content


__all__ = ["RetryPolicy", "Transport"]
