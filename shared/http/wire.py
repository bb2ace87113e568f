"""HTTP/1.1 for httpx over an asyncio protocol: the transport under every registry client.

httpx's default transport (httpcore over anyio and h11) is general; what Ferry sends is narrow —
short requests and long blob streams on keep-alive connections to a handful of hosts — and on
that traffic its layers showed in every profile (bench/README.md): importing anyio's asyncio
backend on the first request (about 45 ms of a 0.3 s import), httpcore itself (40 ms), and per
request and per read a trip through the pool, anyio and h11 in Python. This transport speaks
HTTP/1.1 only (what registries serve blobs over), frames bodies by RFC 9112 §6, and reads 1 MiB
at a time from what the socket delivered.

It also closes the gap that a check before connecting leaves: names are resolved here, every
address is put to ``check`` and the connection goes to one of the checked addresses, so a name
that resolves elsewhere between the check and the connection (DNS rebinding) cannot steer it to
an address policy refused. TLS still verifies the certificate against the name.

Errors are httpx's own (``ConnectError``, ``ReadTimeout``, ``RemoteProtocolError``...), raised
without the URL: it may carry a signed query string.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx

from shared.http.policy import Proxy

T = TypeVar("T")

#: Bytes asked for per read of a body: a body arrives in as few pieces as the socket allows.
READ_BYTES = 1024 * 1024
#: Unread bytes per connection above which reading pauses (the peer then waits on TCP).
_BUFFER = READ_BYTES
#: The longest response head (status line and headers) accepted.
MAX_HEAD = 64 * 1024
#: The longest chunk-size line of a chunked body accepted.
_MAX_CHUNK_LINE = 4096

#: ``check(authority, addresses)`` raises to refuse connecting to ``authority`` at ``addresses``.
AddressCheck = Callable[[str, list[str]], None]
Key = tuple[str, str, int]

_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class _Phase:
    """Which httpx error a timeout or an OS error becomes, by what was being done."""

    POOL = (httpx.PoolTimeout, httpx.ConnectError)
    CONNECT = (httpx.ConnectTimeout, httpx.ConnectError)
    WRITE = (httpx.WriteTimeout, httpx.WriteError)
    READ = (httpx.ReadTimeout, httpx.ReadError)


async def _within(
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


def _protocol_error(message: str, request: httpx.Request) -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError(message, request=request)


def _is_token(name: bytes) -> bool:
    return bool(name) and all(c in _TCHAR for c in name)


def _is_field_value(value: bytes) -> bool:
    """No CR, LF or NUL: what would split or end a header line (RFC 9110 §5.5)."""
    return b"\r" not in value and b"\n" not in value and b"\0" not in value


_HEX = frozenset(b"0123456789abcdefABCDEF")
#: Hex digits of a chunk size: 16 is 2^64, more than any body.
_MAX_CHUNK_DIGITS = 16


def _is_received_value(value: bytes) -> bool:
    """Only VCHAR, obs-text, SP and HTAB (RFC 9110 §5.5): no control character, which a terminal
    would obey, in a field value or a reason phrase Ferry accepts."""
    return not value.translate(None, delete=b"\t" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100)))


def parse_chunk_size(line: bytes) -> int | None:
    """The size of a chunk-size line (without its CRLF), as RFC 9112 §7.1 and h11 read it: hex
    digits, then extensions after ``;`` or trailing whitespace; None when malformed."""
    size, semicolon, _ = line.partition(b";")
    if not semicolon:
        size = size.rstrip(b" \t")
    if not size or len(size) > _MAX_CHUNK_DIGITS or any(c not in _HEX for c in size):
        return None
    return int(size, 16)


def parse_field_line(line: bytes) -> tuple[bytes, bytes] | None:
    """``name: value`` of a header or trailer line, strictly; None when malformed (also obsolete
    line folding, whose leading space makes the name no token)."""
    name, colon, value = line.partition(b":")
    if not colon or not _is_token(name):
        return None
    value = value.strip(b" \t")
    return (name, value) if _is_received_value(value) else None


def request_head(request: httpx.Request, proxy_authorization: bytes | None = None, *, absolute: bool = False) -> bytes:
    """The request line and headers; ``absolute`` for a plain-http request through a proxy
    (absolute-form target, ``Proxy-Authorization``). Header injection is refused: a name that is
    not a token or a value with CR, LF or NUL (a token server's answer ends up in
    ``Authorization``)."""
    url = request.url
    target = url.raw_scheme + b"://" + url.netloc + url.raw_path if absolute else url.raw_path
    parts = [request.method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
    headers = list(request.headers.raw)
    if absolute and proxy_authorization:
        headers.append((b"Proxy-Authorization", proxy_authorization))
    for name, value in headers:
        if not _is_token(name) or not _is_field_value(value):
            raise httpx.LocalProtocolError(f"invalid header {name[:40]!r}", request=request)
        parts += [name, b": ", value, b"\r\n"]
    parts.append(b"\r\n")
    return b"".join(parts)


class Head:
    """A parsed response head."""

    __slots__ = ("headers", "reason", "status", "version")

    def __init__(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], version: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.version = version

    def values(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k.lower() == name]


def parse_head(raw: bytes, request: httpx.Request) -> Head:
    """Status line and header fields of ``raw`` (which ends with the blank line), strictly."""
    if len(raw) > MAX_HEAD:
        raise _protocol_error(f"response head over {MAX_HEAD} bytes", request)
    lines = raw[:-4].split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit() or code < b"100":
        raise _protocol_error("malformed status line", request)
    if not _is_received_value(reason):
        raise _protocol_error("control characters in the reason phrase", request)
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        field = parse_field_line(line)
        if field is None:
            raise _protocol_error("malformed header line", request)
        headers.append(field)
    return Head(int(code), reason, headers, version)


def framing(method: str, head: Head, request: httpx.Request) -> int | str | None:
    """How the body is delimited (RFC 9112 §6.3): None (no body), a length, ``"chunked"`` or
    ``"close"`` (until the connection ends). The framing headers are checked whether or not the
    answer has a body: conflicting ones are refused either way, as h11 refuses them."""
    encodings = head.values(b"transfer-encoding")
    # Registries frame with chunked alone; anything else (gzip, chunked twice) is refused, as
    # h11 refuses it, rather than read to the end of the connection.
    if encodings and (len(encodings) != 1 or encodings[0].strip().lower() != b"chunked"):
        raise _protocol_error("unsupported Transfer-Encoding", request)
    lengths = {v.strip() for value in head.values(b"content-length") for v in value.split(b",")}
    if len(lengths) > 1 or not all(v.isdigit() and len(v) <= 19 for v in lengths):
        raise _protocol_error("invalid Content-Length", request)
    if method == "HEAD" or head.status in (204, 304) or head.status < 200:
        return None
    if encodings:
        return "chunked"
    return int(lengths.pop()) if lengths else "close"


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
                    await _within(wire.drain(), write_timeout, _Phase.WRITE, request)
            if chunked:
                wire.write(b"0\r\n\r\n")
            elif expected is not None and sent != expected:
                raise httpx.LocalProtocolError("request body shorter than its Content-Length", request=request)
            await _within(wire.drain(), write_timeout, _Phase.WRITE, request)
        except ConnectionError as exc:
            raise httpx.WriteError(f"{type(exc).__name__} (WriteError)", request=request) from exc

    async def receive_head(self, request: httpx.Request, read_timeout: float | None, max_informational: int) -> Head:
        """The final response head. Informational (1xx) answers are skipped, at most
        ``max_informational`` of them and all within one read timeout: each would otherwise
        restart it (Go's net/http bounds them too)."""
        return await _within(self._final_head(request, max_informational), read_timeout, _Phase.READ, request)

    async def _final_head(self, request: httpx.Request, max_informational: int) -> Head:
        informational = 0
        while True:
            try:
                raw = await _within(self.wire.readuntil(b"\r\n\r\n", MAX_HEAD), None, _Phase.READ, request)
            except httpx.RemoteProtocolError as exc:
                if isinstance(exc.__cause__, asyncio.IncompleteReadError) and not exc.__cause__.partial:
                    raise _Disconnected("server disconnected without sending a response", request=request) from exc
                raise
            head = parse_head(raw, request)
            if head.status == 101:
                raise _protocol_error("unexpected protocol switch", request)
            if head.status >= 200:
                return head
            informational += 1
            if informational > max_informational:
                raise _protocol_error(f"more than {max_informational} informational (1xx) answers", request)


class _Disconnected(httpx.RemoteProtocolError):
    """The peer closed the connection before any byte of the response: on a connection reused
    from the pool, the request may be sent again on a fresh one."""

    #: A connection lost, not a protocol broken: worth another try (shared.http.mapping).
    truncated = True


class Truncated(httpx.RemoteProtocolError):
    """The peer closed the connection before the whole body arrived."""

    truncated = True


class Body(httpx.AsyncByteStream):
    """A response body read from its connection; the connection goes back to the pool when the
    body was read to its end and both sides keep it alive, and is closed otherwise."""

    def __init__(
        self,
        pool: Http11Transport,
        connection: Connection,
        request: httpx.Request,
        frame: int | str | None,
        keep_alive: bool,
        timeout: float | None,
    ) -> None:
        self._pool = pool
        self._connection: Connection | None = connection
        self._request = request
        self._frame = frame
        self._keep_alive = keep_alive and frame != "close"
        self._timeout = timeout
        self._done = frame is None or frame == 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._connection is None or self._done:
            return
        reader = self._connection.wire
        frame = self._frame
        if isinstance(frame, int):
            async for piece in self._exactly(reader, frame, "content"):
                yield piece
        elif frame == "chunked":
            while True:
                size = await self._chunk_size(reader)
                if size == 0:
                    await self._trailers(reader)
                    break
                async for piece in self._exactly(reader, size, "chunk"):
                    yield piece
                if await self._read(reader.readexactly(2)) != b"\r\n":
                    raise _protocol_error("malformed chunked body", self._request)
        else:  # until the connection ends
            while data := await self._read(reader.read(READ_BYTES)):
                yield data
        self._done = True

    async def _read(self, awaitable: Awaitable[T]) -> T:
        return await _within(awaitable, self._timeout, _Phase.READ, self._request)

    async def _exactly(self, reader: Wire, length: int, what: str) -> AsyncIterator[bytes]:
        left = length
        while left:
            data = await self._read(reader.read(min(READ_BYTES, left)))
            if not data:
                raise Truncated(
                    f"peer closed the connection with {left} of {length} {what} bytes unsent", request=self._request
                )
            left -= len(data)
            yield data

    async def _chunk_size(self, reader: Wire) -> int:
        line = await self._read(reader.readuntil(b"\r\n", _MAX_CHUNK_LINE))
        size = parse_chunk_size(line[:-2]) if len(line) <= _MAX_CHUNK_LINE else None
        if size is None:
            raise _protocol_error("malformed chunk size", self._request)
        return size

    async def _trailers(self, reader: Wire) -> None:
        total = 0
        while (line := await self._read(reader.readuntil(b"\r\n", MAX_HEAD))) != b"\r\n":
            total += len(line)
            if total > MAX_HEAD:
                raise _protocol_error("trailers too long", self._request)
            if parse_field_line(line[:-2]) is None:
                raise _protocol_error("malformed trailer line", self._request)

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.release(connection, reusable=self._done and self._keep_alive)


class Http11Transport(httpx.AsyncBaseTransport):
    """A pool of HTTP/1.1 connections, at most ``max_connections`` open and in use at a time.

    ``check`` is given each destination's authority and the addresses its name resolved to
    before a connection is opened; ``tls`` makes the (verifying) context for ``https``;
    ``proxy_for(scheme, host)`` names the HTTP proxy to go through, if any: https through a
    ``CONNECT`` tunnel (TLS end to end, verified against the name), plain http in absolute form.
    Through a proxy, which resolves names itself, ``check`` sees no addresses: only a literal
    address in the authority can be judged."""

    def __init__(
        self,
        *,
        max_connections: int = 16,
        check: AddressCheck | None = None,
        tls: Callable[[], ssl.SSLContext] | None = None,
        proxy_for: Callable[[str, str], Proxy | None] | None = None,
        max_informational: int = 5,
    ) -> None:
        self._max = max_connections
        self._max_informational = max_informational
        self._check = check
        self._tls = tls
        self._proxy_for = proxy_for
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[Key, list[Connection]] = {}
        self._live = 0
        self._closed = False

    # -- the pool ---------------------------------------------------------------------------

    def _take(self, key: Key) -> Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if connection.usable:
                return connection
            self._discard(connection)
        return None

    def _discard(self, connection: Connection) -> None:
        connection.close()
        self._live -= 1

    def _make_room(self) -> None:
        """Close an idle connection when the pool is full (its host is not the one now asked)."""
        if self._live < self._max:
            return
        for idle in self._idle.values():
            if idle:
                self._discard(idle.pop(0))
                return

    def release(self, connection: Connection, *, reusable: bool) -> None:
        if reusable and not self._closed and connection.usable:
            self._idle.setdefault(connection.key, []).append(connection)
        else:
            self._discard(connection)
        self._slots.release()

    async def _connect(
        self, key: Key, authority: str, request: httpx.Request, connect_timeout: float | None
    ) -> Connection:
        scheme, host, port = key
        proxy = self._proxy_for(scheme, host) if self._proxy_for is not None else None
        context = None
        if scheme == "https":
            if self._tls is None:
                raise httpx.UnsupportedProtocol("https is not configured on this transport", request=request)
            context = self._tls()
        if proxy is not None:
            if self._check is not None:
                self._check(authority, [])
            wire = await self._open(proxy.host, proxy.port, None, None, request, connect_timeout)
            try:
                if context is not None:
                    await _within(
                        self._tunnel(wire, host, port, proxy, request), connect_timeout, _Phase.CONNECT, request
                    )
                    assert wire.transport is not None
                    wire.transport = await _within(
                        asyncio.get_running_loop().start_tls(wire.transport, wire, context, server_hostname=host),
                        connect_timeout,
                        _Phase.CONNECT,
                        request,
                    )
            except BaseException:
                wire.close()
                self._live -= 1
                raise
            return Connection(key, wire, proxy)
        addresses = await _within(self._resolve(host, port), connect_timeout, _Phase.CONNECT, request)
        if self._check is not None:
            self._check(authority, addresses)
        return Connection(key, await self._open(host, port, addresses, context, request, connect_timeout))

    async def _open(
        self,
        host: str,
        port: int,
        addresses: list[str] | None,
        context: ssl.SSLContext | None,
        request: httpx.Request,
        connect_timeout: float | None,
    ) -> Wire:
        """A connection to the first of ``addresses`` (those checked; ``host``'s, resolved here,
        for a proxy) that answers."""
        if addresses is None:
            addresses = await _within(self._resolve(host, port), connect_timeout, _Phase.CONNECT, request)
        error: httpx.TransportError | None = None
        for address in addresses:
            try:
                _, wire = await _within(
                    asyncio.get_running_loop().create_connection(
                        Wire, address, port, ssl=context, server_hostname=host if context else None
                    ),
                    connect_timeout,
                    _Phase.CONNECT,
                    request,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                error = exc
                continue
            self._live += 1  # asyncio sets TCP_NODELAY on its own
            return wire
        raise error or httpx.ConnectError("no address to connect to", request=request)

    @staticmethod
    async def _tunnel(wire: Wire, host: str, port: int, proxy: Proxy, request: httpx.Request) -> None:
        """``CONNECT host:port`` through the proxy on ``wire``; returns once it says 2xx."""
        target = (f"[{host}]" if ":" in host else host).encode("idna") + b":%d" % port
        lines = [b"CONNECT " + target + b" HTTP/1.1", b"Host: " + target]
        if proxy.authorization:
            lines.append(b"Proxy-Authorization: " + proxy.authorization)
        wire.write(b"\r\n".join(lines) + b"\r\n\r\n")
        await wire.drain()
        head = parse_head(await wire.readuntil(b"\r\n\r\n", MAX_HEAD), request)
        if not 200 <= head.status < 300 or wire.buffered:
            raise httpx.ProxyError(f"the proxy answered {head.status} to CONNECT", request=request)

    @staticmethod
    async def _resolve(host: str, port: int) -> list[str]:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return [host]
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    # -- a request --------------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise httpx.ConnectError("transport closed", request=request)
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported scheme {url.scheme!r}", request=request)
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        key: Key = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        authority = url.netloc.decode("ascii")
        await _within(self._slots.acquire(), timeouts.get("pool"), _Phase.POOL, request)
        connection: Connection | None = None
        try:
            connection = self._take(key)
            replay = connection is not None and isinstance(request.stream, httpx.ByteStream)
            if connection is None:
                self._make_room()
                connection = await self._connect(key, authority, request, timeouts.get("connect"))
            try:
                head = await self._exchange(connection, request, timeouts)
            except _Disconnected:
                if not replay:  # a fresh connection, or a body that cannot be sent again
                    raise
                self._discard(connection)  # the peer closed it while it sat in the pool
                connection = None
                connection = await self._connect(key, authority, request, timeouts.get("connect"))
                head = await self._exchange(connection, request, timeouts)
            frame = framing(request.method, head, request)
        except BaseException:
            if connection is not None:
                self._discard(connection)
            self._slots.release()
            raise
        connection_tokens = b",".join(head.values(b"connection")).lower()
        keep_alive = head.version == b"HTTP/1.1" and b"close" not in connection_tokens
        body = Body(self, connection, request, frame, keep_alive, timeouts.get("read"))
        return httpx.Response(
            head.status,
            headers=head.headers,
            stream=body,
            extensions={"http_version": head.version, "reason_phrase": head.reason},
        )

    async def _exchange(self, connection: Connection, request: httpx.Request, timeouts: dict[str, Any]) -> Head:
        try:
            await connection.send(request, timeouts.get("write"))
        except httpx.WriteError:
            # The server may have answered and closed before taking the whole body (a 401 or a
            # 413 on an upload): its answer is more useful than the broken pipe.
            try:
                return await connection.receive_head(request, timeouts.get("read"), self._max_informational)
            except httpx.TransportError:
                pass
            raise
        return await connection.receive_head(request, timeouts.get("read"), self._max_informational)

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                self._discard(connection)
            idle.clear()
