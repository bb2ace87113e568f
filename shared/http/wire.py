"""One HTTP/1.1 connection's bytes over an asyncio protocol: the protocol (:class:`Wire`), a
request and its response head on it (:class:`Connection`). The pool that makes and reuses connections, and the
response body as httpx reads it, are :mod:`shared.http.pool`'s.

Errors are httpx's own (``ConnectError``, ``ReadTimeout``, ``RemoteProtocolError``...), raised
without the URL: it may carry a signed query string.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Awaitable
from typing import TypeVar

import httpx

from shared.http.framing import (
    MAX_HEAD,
    Head,
    parse_head,
    protocol_error,
    request_head,
)
from shared.http.policy import Proxy

T = TypeVar("T")

#: Bytes asked for per read of a body: a body arrives in as few pieces as the socket allows.
READ_BYTES = 1024 * 1024
#: Unread bytes per connection above which reading pauses (the peer then waits on TCP).
_BUFFER = READ_BYTES
#: The longest chunk-size line of a chunked body accepted.
MAX_CHUNK_LINE = 4096
Key = tuple[str, str, int]


class Phase:
    """Which httpx error a timeout or an OS error becomes, by what was being done."""

    POOL = (httpx.PoolTimeout, httpx.ConnectError)
    CONNECT = (httpx.ConnectTimeout, httpx.ConnectError)
    WRITE = (httpx.WriteTimeout, httpx.WriteError)
    READ = (httpx.ReadTimeout, httpx.ReadError)


async def within(
    awaitable: Awaitable[T],
    seconds: float | None,
    phase: tuple[type[httpx.TransportError], ...],
    request: httpx.Request,
) -> T:
    """``awaitable`` within ``seconds`` (httpx's timeouts are per operation), its failures mapped
    to httpx's errors for ``phase``."""
    timed_out, failed = phase
    try:
        if seconds is None:
            return await awaitable
        async with asyncio.timeout(seconds):
            return await awaitable
    except TimeoutError as exc:
        raise timed_out(f"{timed_out.__name__} after {seconds} s", request=request) from exc
    except asyncio.IncompleteReadError as exc:
        raise Truncated("peer closed the connection mid-message", request=request) from exc
    except asyncio.LimitOverrunError as exc:
        raise httpx.RemoteProtocolError("response head or line too long", request=request) from exc
    except (OSError, ssl.SSLError) as exc:
        raise failed(f"{type(exc).__name__} ({failed.__name__})", request=request) from exc


class Wire(asyncio.Protocol):
    """One connection's bytes, both ways. Unlike asyncio's streams it hands out what was received
    before an error: a registry that answers an upload early (401, 413) and resets the
    connection is heard, and a body is handed on in the pieces the socket delivered, uncopied."""

    __slots__ = (
        "_buffered", "_chunks", "_drained", "_eof", "_error", "_loop", "_offset",
        "_reading_paused", "_waiter", "_writing_paused", "transport",
    )  # fmt: skip

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._chunks: deque[bytes] = deque()
        #: Bytes of the first chunk already handed out.
        self._offset = 0
        self._buffered = 0
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False
        self.transport: asyncio.Transport | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _BUFFER and not self._reading_paused and self.transport is not None:
            self.transport.pause_reading()
            self._reading_paused = True
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._error = exc
        self._wake()
        self._wake_writer()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_writer()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _wake_writer(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None:
            self.transport.resume_reading()
            self._reading_paused = False

    # -- for the connection -------------------------------------------------------------------

    @property
    def open(self) -> bool:
        """Still connected, with nothing unread (an idle connection with stray bytes is not)."""
        return not self._eof and not self._buffered and self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def write(self, data: bytes) -> None:
        if self._error is not None or self.transport is None or self.transport.is_closing():
            # asyncio would drop the bytes and only log a warning
            raise ConnectionResetError("connection closed while sending")
        self.transport.write(data)

    @property
    def buffered(self) -> int:
        return self._buffered

    @property
    def congested(self) -> bool:
        """Writes must wait (asyncio's buffer is over its high-water mark), or cannot go on."""
        return self._writing_paused or self._error is not None

    async def drain(self) -> None:
        if self._writing_paused and self._error is None:
            self._drained = self._loop.create_future()
            await self._drained
        if self._error is not None:
            raise ConnectionResetError("connection lost while sending") from self._error

    async def _more(self) -> None:
        """Wait for bytes (or the end); the error, if the connection failed with nothing unread."""
        if not self._buffered:
            await self._arrival()
        if self._error is not None and not self._buffered:
            raise self._error

    async def _arrival(self) -> None:
        """Wait for bytes beyond those buffered, or the end."""
        if self._eof:
            return
        self._resume_reading()
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _take(self, n: int) -> bytes:
        """Up to ``n`` buffered bytes. Whole chunks go out as received (no copy); a chunk read in
        parts is sliced from ``_offset``, so small reads (chunk-size lines) copy only themselves."""
        chunks, offset = self._chunks, self._offset
        first = chunks[0]
        if len(first) - offset > n:
            data = first[offset : offset + n]
            self._offset = offset + n
        else:
            chunks.popleft()
            self._offset = 0
            data = first[offset:] if offset else first
            if chunks and len(data) + len(chunks[0]) <= n:
                pieces, size = [data], len(data)
                while chunks and size + len(chunks[0]) <= n:
                    size += len(chunks[0])
                    pieces.append(chunks.popleft())
                data = b"".join(pieces)
        self._buffered -= len(data)
        if self._buffered <= _BUFFER // 2:
            self._resume_reading()
        return data

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes, as soon as there are any; ``b""`` at the end."""
        await self._more()
        return self._take(n) if self._buffered else b""

    async def readexactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            piece = await self.read(n - len(data))
            if not piece:
                raise asyncio.IncompleteReadError(data, n)
            data += piece
        return data

    async def readuntil(self, separator: bytes, limit: int) -> bytes:
        """Bytes up to and including ``separator``, which must come within ``limit`` bytes."""
        window = limit + len(separator)
        while True:
            if len(self._chunks) > 1 and len(self._chunks[0]) - self._offset < window:
                # The separator may span chunks: gather at most a window's worth into the first.
                pieces = [self._chunks.popleft()[self._offset :]]
                size = len(pieces[0])
                while self._chunks and size < window:
                    pieces.append(self._chunks.popleft())
                    size += len(pieces[-1])
                self._chunks.appendleft(b"".join(pieces))
                self._offset = 0
            head = self._chunks[0] if self._chunks else b""
            end = head.find(separator, self._offset, self._offset + window)
            if end >= 0:
                return self._take(end + len(separator) - self._offset)
            if len(head) - self._offset >= window:
                raise asyncio.LimitOverrunError("separator not found within the limit", len(head))
            if self._eof:
                partial = head[self._offset :]
                self._chunks.clear()
                self._offset = 0
                self._buffered = 0
                raise asyncio.IncompleteReadError(partial, None)
            await self._arrival()


class Connection:
    """One HTTP/1.1 connection: a request at a time."""

    __slots__ = ("absolute", "key", "proxy_authorization", "wire")

    def __init__(self, key: Key, wire: Wire, proxy: Proxy | None = None) -> None:
        self.key = key
        self.wire = wire
        #: Plain http through a proxy: requests go to the proxy in absolute form.
        self.absolute = proxy is not None and key[0] == "http"
        self.proxy_authorization = proxy.authorization if proxy is not None else None

    @property
    def usable(self) -> bool:
        """Idle and still open: the peer has not closed it while it waited."""
        return self.wire.open

    def close(self) -> None:
        self.wire.close()

    async def send(self, request: httpx.Request, write_timeout: float | None) -> None:
        """The request, its body framed by its headers (``Content-Length`` or chunked)."""
        wire = self.wire
        chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
        declared = request.headers.get("content-length")
        expected = int(declared) if declared is not None and declared.isascii() and declared.isdigit() else None
        try:
            wire.write(request_head(request, self.proxy_authorization, absolute=self.absolute))
            sent = 0
            async for chunk in request.stream:  # type: ignore[union-attr]
                if not chunk:
                    continue
                sent += len(chunk)
                if chunked:
                    wire.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                else:
                    if expected is None or sent > expected:
                        raise httpx.LocalProtocolError("request body longer than its Content-Length", request=request)
                    wire.write(chunk)
                if wire.congested:
                    await within(wire.drain(), write_timeout, Phase.WRITE, request)
            if chunked:
                wire.write(b"0\r\n\r\n")
            elif expected is not None and sent != expected:
                raise httpx.LocalProtocolError("request body shorter than its Content-Length", request=request)
            if wire.congested:  # otherwise asyncio has the bytes (or sent them): nothing to wait for
                await within(wire.drain(), write_timeout, Phase.WRITE, request)
        except ConnectionError as exc:
            raise httpx.WriteError(f"{type(exc).__name__} (WriteError)", request=request) from exc

    async def receive_head(self, request: httpx.Request, read_timeout: float | None, max_informational: int) -> Head:
        """The final response head. Informational (1xx) answers are skipped, at most
        ``max_informational`` of them and all within one read timeout: each would otherwise
        restart it (Go's net/http bounds them too)."""
        return await within(self._final_head(request, max_informational), read_timeout, Phase.READ, request)

    async def _final_head(self, request: httpx.Request, max_informational: int) -> Head:
        informational = 0
        while True:
            try:
                raw = await within(self.wire.readuntil(b"\r\n\r\n", MAX_HEAD), None, Phase.READ, request)
            except httpx.RemoteProtocolError as exc:
                if isinstance(exc.__cause__, asyncio.IncompleteReadError) and not exc.__cause__.partial:
                    raise Disconnected("server disconnected without sending a response", request=request) from exc
                raise
            head = parse_head(raw, request)
            if head.status == 101:
                raise protocol_error("unexpected protocol switch", request)
            if head.status >= 200:
                return head
            informational += 1
            if informational > max_informational:
                raise protocol_error(f"more than {max_informational} informational (1xx) answers", request)


class Disconnected(httpx.RemoteProtocolError):
    """The peer closed the connection before any byte of the response: on a connection reused
    from the pool, the request may be sent again on a fresh one."""

    #: A connection lost, not a protocol broken: worth another try (shared.http.mapping).
    truncated = True


class Truncated(httpx.RemoteProtocolError):
    """The peer closed the connection before the whole body arrived."""

    truncated = True
