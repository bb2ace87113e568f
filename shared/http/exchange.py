"""One exchange with a registry or ARM, bounded: the httpx transport every Ferry client uses.

:class:`GuardedTransport` sits between httpx and :class:`~shared.http.pool.Http11Transport` and
guarantees, for every request Ferry sends and every body it reads (whole or streamed, by Ferry's
code or by httpx's own auth and redirect handling):

- **one mapping**: a failure of the request or of reading its body is a
  :class:`~shared.errors.FerryError` from :mod:`shared.http.mapping`, never an httpx exception
  (after httpx's ``map_httpcore_exceptions``, which wraps the call and the body alike);
- **bounded memory**: a body has a cap (:data:`SMALL_BODY` unless the request says otherwise
  with the :data:`CAP` extension); a success over its cap fails as too large; an answer that is
  not content (a redirect, an error, a 401: any status from 300 up) is cut at
  :data:`SMALL_BODY` whatever the request's cap, even a blob's (none): its first 64 KiB say what
  went wrong, and the connection, not read to its end, is closed;
- **bounded time**: bytes must keep coming: in any ``stall_window`` seconds spent waiting on the
  peer, at least ``stall_floor`` bytes per second must arrive, or the body ends; so a deadline
  follows real progress, never the size the peer declares;
- **no content coding**: ``Content-Encoding`` is taken off the response before httpx sees it
  (so nothing decodes a gzip bomb, not even httpx's ``aread``) and kept in the
  :data:`ENCODING` extension; :func:`refuse_encoding` fails content that must be exact.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import httpx

from shared.errors import FerryError, TooLargeError
from shared.http.mapping import Answered, Side, error_from_exception, refused, stalled
from shared.http.policy import TransportOptions
from shared.http.pool import Http11Transport
from shared.strict import header_int

#: Request extension: the most bytes of the response body to accept (``None``: no cap, for
#: blobs, whose length the caller checks against their descriptor).
CAP = "ferry.cap"
#: Request extension: the operation, in words, for messages (``fetch manifest``).
OP = "ferry.op"
#: Response extension: the ``Content-Encoding`` the peer sent, if any.
ENCODING = "ferry.content_encoding"
#: Challenges, tokens, redirects, error answers: what is read whole and is not content.
SMALL_BODY = 64 * 1024
#: A page of a tag list or of referrers.
PAGE_BODY = 4 * 1024 * 1024


@functools.cache
def tls_context(cafile: str | None = None, capath: str | None = None) -> ssl.SSLContext:
    """One verified TLS context per set of CAs, built when the first ``https`` connection opens:
    ``cafile`` / ``capath`` when given (``SSL_CERT_FILE`` / ``SSL_CERT_DIR``, read into the
    transport options), certifi's bundle otherwise. Building one parses the bundle, about 50 ms:
    every client shares it, and a run that meets only loopback registries never pays for it
    (nor for importing certifi, which brings importlib.resources)."""
    if cafile or capath:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    import certifi  # noqa: PLC0415

    return ssl.create_default_context(cafile=certifi.where())


def wire_for(options: TransportOptions, side: Side, max_connections: int) -> GuardedTransport:
    """The guarded HTTP/1.1 transport as ``options`` say: every connection's addresses checked
    (the refusal names ``side``), TLS verified with :func:`tls_context`, proxies as set."""
    wire = Http11Transport(
        max_connections=max_connections,
        check=functools.partial(options.refuse, what=side.label),
        tls=functools.partial(tls_context, options.ca_file, options.ca_dir),
        proxy_for=options.proxy_for,
        max_informational=options.max_informational,
    )
    return GuardedTransport(wire, options, side)


class Answer(Answered, Protocol):
    """What :func:`refuse_encoding` reads of a response, streamed or read whole."""

    @property
    def extensions(self) -> Mapping[str, Any]: ...


def refuse_encoding(response: Answer, op: str, side: Side) -> None:
    """Content checked against its digest must come as sent: Ferry asks for ``identity``."""
    encoding = response.extensions.get(ENCODING)
    if encoding and encoding.strip().lower() != "identity":
        raise refused(
            op,
            side,
            response,
            f"sent {op.removeprefix('fetch ')} with Content-Encoding {encoding[:40]!r}, "
            "although Ferry asked for identity (the bytes must match their digest)",
        )


async def read_body(response: httpx.Response) -> bytes:
    """The whole body, as sent (never decoded), within the request's cap and the stall floor."""
    pieces = [piece async for piece in response.aiter_raw()]
    return b"".join(pieces)


class GuardedTransport(httpx.AsyncBaseTransport):
    """:class:`Http11Transport` with the guarantees of this module."""

    def __init__(self, inner: Http11Transport, options: TransportOptions, side: Side) -> None:
        self.inner = inner
        self.options = options
        self.side = side

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        op = request.extensions.get(OP, "request")
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.HTTPError as exc:
            raise error_from_exception(op, self.side, exc) from None
        raw = response.headers.raw
        encoding = next((v.decode("latin-1") for k, v in raw if k.lower() == b"content-encoding"), None)
        headers = [(k, v) for k, v in raw if k.lower() != b"content-encoding"] if encoding else raw
        assert isinstance(response.stream, httpx.AsyncByteStream)
        body = GuardedBody(response.stream, request, response, op, self)
        if encoding is None:  # the answer as it came, its body guarded (no second Response to build)
            response.stream = body
            response.extensions = {**response.extensions, ENCODING: None}
            return response
        return httpx.Response(
            response.status_code,
            headers=headers,
            stream=body,
            extensions={**response.extensions, ENCODING: encoding},
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class GuardedBody(httpx.AsyncByteStream):
    """A response body read under the cap, the stall floor and the one mapping."""

    def __init__(
        self,
        inner: httpx.AsyncByteStream,
        request: httpx.Request,
        response: httpx.Response,
        op: str,
        owner: GuardedTransport,
    ) -> None:
        status, headers = response.status_code, response.headers
        self._inner = inner
        self._request = request
        self._status = status
        self._op = op
        self._owner = owner
        cap: int | None = request.extensions.get(CAP, SMALL_BODY)
        if status >= 300:  # a redirect, an error, a 401: never content, whatever the request's cap
            cap = SMALL_BODY if cap is None else min(cap, SMALL_BODY)
        self._cap = cap
        self._bodiless = request.method == "HEAD" or status in (204, 304)  # Content-Length is the GET's
        self._declared = None if self._bodiless else header_int(headers.get("content-length"))

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._bodiless:  # framed as having no body (RFC 9112 §6.3): nothing is read, so nothing to bound
            return
        options = self._owner.options
        window, quota = options.stall_window, int(options.stall_floor * options.stall_window)
        waited, arrived, total = 0.0, 0, 0
        if self._cap is not None and self._status < 300 and (self._declared or 0) > self._cap:
            raise self._too_large()  # said so before a byte: no need to read it
        reads = aiter(self._inner)
        while True:
            started = time.monotonic()
            try:
                async with asyncio.timeout(max(window - waited, 0.001)):
                    chunk = await anext(reads)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise stalled(self._op, self._owner.side, options.stall_floor, window) from None
            except httpx.HTTPError as exc:
                raise error_from_exception(self._op, self._owner.side, exc) from None
            waited += time.monotonic() - started
            arrived += len(chunk)
            if arrived >= quota:  # the floor is met: a new window starts
                waited, arrived = 0.0, 0
            total += len(chunk)
            if self._cap is not None and total > self._cap:
                if self._status >= 300:  # an error answer: its start is all that is worth reading
                    yield chunk[: len(chunk) - (total - self._cap)]
                    return
                raise self._too_large()
            yield chunk

    def _too_large(self) -> FerryError:
        return TooLargeError(
            op=self._op,
            origin=self._owner.side.label,
            method=self._request.method,
            url=str(self._request.url),
            status=self._status,
            problem=f"{self._op}: answer is over the {self._cap}-byte limit for it",
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def extensions(op: str, cap: int | None = SMALL_BODY, **more: Any) -> dict[str, Any]:
    """The request extensions for ``op`` with body cap ``cap``."""
    return {OP: op, CAP: cap, **more}
