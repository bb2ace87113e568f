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

The connection's bytes are :mod:`shared.http.wire`'s, the message syntax
:mod:`shared.http.framing`'s. Errors are httpx's own, raised without the URL: it may carry a
signed query string.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from shared.http.framing import (
    MAX_HEAD,
    Head,
    framing,
    parse_chunk_size,
    parse_field_line,
    parse_head,
    protocol_error,
)
from shared.http.policy import Proxy
from shared.http.wire import (
    MAX_CHUNK_LINE,
    READ_BYTES,
    Connection,
    Disconnected,
    Key,
    Phase,
    T,
    Truncated,
    Wire,
    within,
)

#: ``check(authority, addresses)`` raises to refuse connecting to ``authority`` at ``addresses``.
AddressCheck = Callable[[str, list[str]], None]


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
                    raise protocol_error("malformed chunked body", self._request)
        else:  # until the connection ends
            while data := await self._read(reader.read(READ_BYTES)):
                yield data
        self._done = True

    async def _read(self, awaitable: Awaitable[T]) -> T:
        return await within(awaitable, self._timeout, Phase.READ, self._request)

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
        line = await self._read(reader.readuntil(b"\r\n", MAX_CHUNK_LINE))
        size = parse_chunk_size(line[:-2]) if len(line) <= MAX_CHUNK_LINE else None
        if size is None:
            raise protocol_error("malformed chunk size", self._request)
        return size

    async def _trailers(self, reader: Wire) -> None:
        total = 0
        while (line := await self._read(reader.readuntil(b"\r\n", MAX_HEAD))) != b"\r\n":
            total += len(line)
            if total > MAX_HEAD:
                raise protocol_error("trailers too long", self._request)
            if parse_field_line(line[:-2]) is None:
                raise protocol_error("malformed trailer line", self._request)

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.release(connection, reusable=self._done and self._keep_alive)


def _keeps_alive(head: Head) -> bool:
    """Both sides keep the connection (HTTP/1.1 without ``Connection: close``)."""
    return head.version == b"HTTP/1.1" and b"close" not in b",".join(head.values(b"connection")).lower()


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
                    await within(
                        self._tunnel(wire, host, port, proxy, request), connect_timeout, Phase.CONNECT, request
                    )
                    assert wire.transport is not None
                    wire.transport = await within(
                        asyncio.get_running_loop().start_tls(wire.transport, wire, context, server_hostname=host),
                        connect_timeout,
                        Phase.CONNECT,
                        request,
                    )
            except BaseException:
                wire.close()
                self._live -= 1
                raise
            return Connection(key, wire, proxy)
        addresses = await within(self._resolve(host, port), connect_timeout, Phase.CONNECT, request)
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
            addresses = await within(self._resolve(host, port), connect_timeout, Phase.CONNECT, request)
        error: httpx.TransportError | None = None
        for address in addresses:
            try:
                _, wire = await within(
                    asyncio.get_running_loop().create_connection(
                        Wire, address, port, ssl=context, server_hostname=host if context else None
                    ),
                    connect_timeout,
                    Phase.CONNECT,
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
        if self._slots.locked():  # a wait for a slot, bounded by the pool timeout
            await within(self._slots.acquire(), timeouts.get("pool"), Phase.POOL, request)
        else:
            await self._slots.acquire()  # free: taken at once, no timer to arm
        connection: Connection | None = None
        try:
            connection = self._take(key)
            replay = connection is not None and isinstance(request.stream, httpx.ByteStream)
            if connection is None:
                self._make_room()
                connection = await self._connect(key, authority, request, timeouts.get("connect"))
            try:
                head = await self._exchange(connection, request, timeouts)
            except Disconnected:
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
        body = Body(self, connection, request, frame, _keeps_alive(head), timeouts.get("read"))
        return httpx.Response(
            head.status, headers=head.headers, stream=body,
            extensions={"http_version": head.version, "reason_phrase": head.reason},
        )  # fmt: skip

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
