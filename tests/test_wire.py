"""The HTTP/1.1 transport (shared/http/pool.py, wire.py, framing.py) against raw asyncio servers on 127.0.0.1
that write exactly the bytes each case needs: framing, keep-alive, limits, timeouts, early
answers, header injection, TLS and the address check that defeats DNS rebinding."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Self

import httpx
import pytest

from shared import environment
from shared.errors import ConfigurationError, InsecureEndpointError
from shared.http.framing import MAX_HEAD
from shared.http.pool import Http11Transport
from tests.harness.tls import self_signed

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A TCP server whose ``handler`` answers each connection; counts connections and keeps
    what each request sent."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.host = host
        self.tls = tls
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(serve, self.host, 0, ssl=self.tls)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def url(self, path: str = "/", host: str | None = None, scheme: str = "http") -> str:
        return f"{scheme}://{host or self.host}:{self.port}{path}"


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """Request line, headers (lower-cased names) and the body by Content-Length or chunks."""
    head = await reader.readuntil(b"\r\n\r\n")
    line, *fields = head[:-4].split(b"\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (f.partition(b":") for f in fields)}
    body = b""
    if headers.get(b"transfer-encoding") == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    elif b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    return line, headers, body


def answer(status: int = 200, body: bytes = b"", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%s\r\n%s" % (status, len(body), extra, body)


def keep_answering(*responses: bytes) -> Handler:
    """Answers each request on a connection with the next of ``responses`` (the last repeats)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        while True:
            await read_request(reader)
            writer.write(responses[min(n, len(responses) - 1)])
            await writer.drain()
            n += 1

    return handler


def once(raw: bytes) -> Handler:
    """Answers one request with ``raw`` and closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(raw)
        await writer.drain()

    return handler


def client(**kwargs: Any) -> httpx.AsyncClient:
    timeout = kwargs.pop("timeout", httpx.Timeout(5.0))
    return httpx.AsyncClient(transport=Http11Transport(**kwargs), timeout=timeout)


# -- framing ------------------------------------------------------------------------------------


async def test_keep_alive_reuses_one_connection() -> None:
    async with RawServer(keep_answering(answer(200, b"hello"))) as server, client() as http:
        for _ in range(5):
            response = await http.get(server.url())
            assert response.status_code == 200 and response.content == b"hello"
        assert server.connections == 1


async def test_chunked_body_with_extensions_and_trailers() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: yes\r\n\r\n"
    )
    async with RawServer(keep_answering(raw)) as server, client() as http:
        assert (await http.get(server.url())).content == b"hello world"
        assert (await http.get(server.url())).content == b"hello world"
        assert server.connections == 1  # the chunked body ended cleanly: the connection was kept


async def test_a_head_that_trickles_in_byte_by_byte() -> None:
    """The blank line that ends the head spans many socket reads."""
    raw = answer(200, b"slowly", b"X-Long: " + b"v" * 3000 + b"\r\n")

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        for i in range(len(raw)):
            writer.write(raw[i : i + 1])
            if i % 50 == 0 or i > len(raw) - 10:
                await writer.drain()
                await asyncio.sleep(0)

    async with RawServer(trickle) as server, client() as http:
        response = await http.get(server.url())
        assert response.content == b"slowly" and len(response.headers["x-long"]) == 3000


async def test_a_long_body_of_small_chunks() -> None:
    """2 MiB in 1,000-byte chunks, written at once: each chunk-size line is read from a large
    buffer without copying what follows it."""
    data = bytes(range(256)) * (2 * 1024 * 1024 // 256)
    framed = b"".join(
        b"%x\r\n%s\r\n" % (len(data[i : i + 1000]), data[i : i + 1000]) for i in range(0, len(data), 1000)
    )
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"
    async with RawServer(keep_answering(raw)) as server, client() as http:
        assert (await http.get(server.url())).content == data
        assert (await http.get(server.url())).content == data
        assert server.connections == 1


async def test_body_until_close_and_http10() -> None:
    async with RawServer(once(b"HTTP/1.0 200 OK\r\n\r\nall of it")) as server, client() as http:
        assert (await http.get(server.url())).content == b"all of it"
        assert (await http.get(server.url())).content == b"all of it"
        assert server.connections == 2


async def test_head_and_no_content_have_no_body() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    async with RawServer(keep_answering(head)) as server, client() as http:
        response = await http.head(server.url())
        assert response.headers["content-length"] == "1000" and response.content == b""
        await http.head(server.url())
        assert server.connections == 1


async def test_informational_answers_are_skipped() -> None:
    async with RawServer(once(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(201, b"ok"))) as server, client() as http:
        response = await http.post(server.url(), content=b"x")
        assert response.status_code == 201 and response.content == b"ok"


async def test_connection_close_is_honoured() -> None:
    async with RawServer(keep_answering(answer(200, b"a", b"Connection: close\r\n"))) as server, client() as http:
        await http.get(server.url())
        await http.get(server.url())
        assert server.connections == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "5 of 10 content bytes unsent"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n", "invalid Content-Length"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "malformed status line"),
        (b"ICY 200 OK\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 101 Switching\r\n\r\n", "unexpected protocol switch"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY", "malformed chunked body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc", "13 of 16 chunk bytes unsent"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * MAX_HEAD + b"\r\n\r\n", "too long"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * (1024 * 1024), "too long"),
        (b"", "server disconnected without sending a response"),
    ],
)
async def test_malformed_answers_fail_cleanly(raw: bytes, message: str) -> None:
    async with RawServer(once(raw)) as server, client() as http:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await http.get(server.url())
        assert message in str(caught.value)


async def test_a_body_that_stalls_times_out() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
        await writer.drain()
        await asyncio.sleep(5)

    async with RawServer(stall) as server, client(timeout=httpx.Timeout(0.3)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(server.url())


# -- request side -------------------------------------------------------------------------------


async def test_request_bodies_are_framed() -> None:
    seen: list[tuple[dict[bytes, bytes], bytes]] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            _, headers, body = await read_request(reader)
            seen.append((headers, body))
            writer.write(answer(201))
            await writer.drain()

    async def pieces() -> AsyncIterator[bytes]:
        for piece in (b"abc", b"", b"defg"):
            yield piece

    async with RawServer(record) as server, client() as http:
        await http.put(server.url(), content=b"monolithic")
        await http.put(server.url(), content=pieces())  # no length: chunked
        await http.put(server.url(), content=pieces(), headers={"Content-Length": "7"})
        assert server.connections == 1
    assert seen[0][1] == b"monolithic"
    assert seen[1][0][b"transfer-encoding"] == b"chunked" and seen[1][1] == b"abcdefg"
    assert seen[2][0][b"content-length"] == b"7" and seen[2][1] == b"abcdefg"


@pytest.mark.parametrize(("length", "message"), [("3", "longer"), ("99", "shorter")])
async def test_a_body_that_does_not_match_its_length_is_refused(length: str, message: str) -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b"abcdefg"

    async with RawServer(keep_answering(answer(201))) as server, client() as http:
        with pytest.raises(httpx.LocalProtocolError, match=message):
            await http.put(server.url(), content=pieces(), headers={"Content-Length": length})


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\0b"])
async def test_header_injection_is_refused_before_anything_is_sent(value: str) -> None:
    async with RawServer(keep_answering(answer(200))) as server, client() as http:
        request = http.build_request("GET", server.url())
        request.headers._list.append((b"Authorization", b"authorization", value.encode()))  # as a token server could
        with pytest.raises(httpx.LocalProtocolError, match="invalid header"):
            await http.send(request)
        await asyncio.sleep(0.05)
        assert server.connections in (0, 1)  # the connection may open; no request line is written


async def test_an_early_answer_to_an_upload_is_returned() -> None:
    """A registry that refuses an upload after its headers (401, 413) and closes: the caller
    gets that answer, not a broken pipe."""

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer(413, b"too big", b"Connection: close\r\n"))
        await writer.drain()
        writer.transport.abort()

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b"x" * (1024 * 1024)

    async with RawServer(refuse) as server, client() as http:
        response = await http.put(server.url(), content=endless(), headers={"Content-Length": str(64 * 1024 * 1024)})
        assert response.status_code == 413 and response.content == b"too big"


# -- the pool -----------------------------------------------------------------------------------


async def test_a_connection_closed_while_idle_is_replaced_and_the_request_replayed() -> None:
    async def one_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(200, b"first"))
        await writer.drain()
        await read_request(reader)  # the next request arrives, and the server hangs up on it

    async with RawServer(one_then_close) as server, client() as http:
        assert (await http.get(server.url())).content == b"first"
        assert (await http.get(server.url())).content == b"first"
        assert server.connections == 2


async def test_at_most_max_connections_and_the_pool_timeout() -> None:
    gate = asyncio.Event()
    open_now = 0
    most = 0

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        try:
            while True:
                await read_request(reader)
                await gate.wait()
                writer.write(answer(200, b"ok"))
                await writer.drain()
        finally:
            open_now -= 1

    async with RawServer(slow) as server, client(max_connections=2) as http:
        calls = [asyncio.create_task(http.get(server.url())) for _ in range(6)]
        async with asyncio.timeout(5):
            while server.connections < 2:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # room for a third connection, were the bound not kept
        assert most == 2 and server.connections == 2
        gate.set()
        assert all(r.status_code == 200 for r in await asyncio.gather(*calls))
    gate.clear()
    async with (
        RawServer(slow) as server,
        client(max_connections=1, timeout=httpx.Timeout(5.0, pool=0.2)) as http,
    ):
        first = asyncio.create_task(http.get(server.url()))
        await asyncio.sleep(0.1)
        with pytest.raises(httpx.PoolTimeout):
            await http.get(server.url())
        first.cancel()


async def test_a_cancelled_read_frees_its_slot() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(5)

    async with RawServer(trickle) as server, client(max_connections=1) as http:
        async with http.stream("GET", server.url()) as response:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await response.aread()
        server.handler = keep_answering(answer(200, b"next"))
        async with asyncio.timeout(2):
            assert (await http.get(server.url())).content == b"next"


# -- where it connects --------------------------------------------------------------------------


async def test_names_are_resolved_once_checked_and_connected_to_as_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name answers 127.0.0.2 to the check and 10.0.0.1 the next time. The
    transport resolves once per connection and connects to the address it checked."""
    answers = iter(["127.0.0.2", "10.0.0.1", "127.0.0.2"])
    resolved: list[str] = []
    loop = asyncio.get_running_loop()

    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        address = next(answers)
        resolved.append(address)
        return [(2, 1, 6, "", (address, port))]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    checked: list[tuple[str, list[str]]] = []

    def check(authority: str, addresses: list[str]) -> None:
        checked.append((authority, addresses))
        for address in addresses:
            if ipaddress.ip_address(address).is_private and not ipaddress.ip_address(address).is_loopback:
                raise InsecureEndpointError(f"{authority} is on private address {address}")

    reply = answer(200, b"ok", b"Connection: close\r\n")
    async with RawServer(keep_answering(reply), host="127.0.0.2") as server, client(check=check) as http:
        name = f"registry.test:{server.port}"
        assert (await http.get(server.url(host="registry.test"))).content == b"ok"
        with pytest.raises(InsecureEndpointError, match=r"10\.0\.0\.1"):
            await http.get(server.url(host="registry.test"))
        assert (await http.get(server.url(host="registry.test"))).content == b"ok"
    assert checked == [(name, ["127.0.0.2"]), (name, ["10.0.0.1"]), (name, ["127.0.0.2"])]
    assert resolved == ["127.0.0.2", "10.0.0.1", "127.0.0.2"] and server.connections == 2


def _self_signed(tmp: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for ``name`` and a client context that trusts it."""
    cert, key = self_signed(tmp, name)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


async def test_tls_verifies_the_name_not_the_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server_tls, client_tls = _self_signed(tmp_path, "registry.test")
    loop = asyncio.get_running_loop()

    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        return [(2, 1, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    async with RawServer(keep_answering(answer(200, b"secure")), tls=server_tls) as server:
        async with client(tls=lambda: client_tls) as http:
            response = await http.get(server.url(host="registry.test", scheme="https"))
            assert response.content == b"secure"
            with pytest.raises(httpx.ConnectError):  # the certificate names registry.test only
                await http.get(server.url(host="127.0.0.1", scheme="https"))
        async with client(tls=ssl.create_default_context) as http:  # the system CAs do not know it
            with pytest.raises(httpx.ConnectError):
                await http.get(server.url(host="registry.test", scheme="https"))
        async with client() as http:  # no TLS configured: refused, not sent in the clear
            with pytest.raises(httpx.UnsupportedProtocol):
                await http.get(server.url(host="registry.test", scheme="https"))


async def test_a_refused_certificate_is_named_in_the_registry_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the registry client: TLS verified against the system's CAs, and an operator told
    why the connection failed (not only 'ConnectError')."""
    from shared.credentials import Anonymous
    from shared.errors import TransportError
    from shared.registry import RegistryClient, TransportOptions

    server_tls, _ = _self_signed(tmp_path, "registry.test")
    loop = asyncio.get_running_loop()

    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        return [(2, 1, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    options = TransportOptions(allow_loopback=True, max_attempts=1)
    async with (
        RawServer(keep_answering(answer(200, b"{}")), tls=server_tls) as server,
        RegistryClient(f"registry.test:{server.port}", Anonymous(), options) as client,
    ):
        with pytest.raises(TransportError, match=r"TLS certificate refused: self.signed certificate"):
            await client.resolve("a/b", "v1")
    async with RawServer(keep_answering(answer(200))) as server:
        port = server.port
    async with RegistryClient(f"127.0.0.1:{port}", Anonymous(), options) as client:
        with pytest.raises(TransportError, match=r"registry 127.0.0.1:\d+: connection refused"):
            await client.resolve("a/b", "v1")


# -- through an HTTP proxy ----------------------------------------------------------------------


class Proxy(RawServer):
    """An HTTP proxy on 127.0.0.4: ``CONNECT`` tunnels and absolute-form requests, each relayed
    to 127.0.0.1 (where the test's servers are) whatever name was asked for; records what it
    was asked and answers 407 to requests without ``want_auth``'s credentials."""

    def __init__(self, want_auth: bytes | None = None) -> None:
        super().__init__(self._serve, host="127.0.0.4")
        self.want_auth = want_auth
        self.asked: list[tuple[bytes, bytes | None]] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line, *fields = head[:-4].split(b"\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (f.partition(b":") for f in fields)}
        auth = headers.get(b"proxy-authorization")
        self.asked.append((line, auth))
        if self.want_auth is not None and auth != self.want_auth:
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        method, target, _ = line.split(b" ")
        if method == b"CONNECT":
            port = int(target.rsplit(b":", 1)[1])
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:  # absolute form: http://name:port/path -> origin form to 127.0.0.1:port
            url = httpx.URL(target.decode())
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", url.port)
            rest = b"\r\n".join(f for f in fields if not f.lower().startswith(b"proxy-authorization"))
            up_writer.write(b"%s %s HTTP/1.1\r\n%s\r\n\r\n" % (method, url.raw_path, rest))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)


async def test_https_through_a_connect_tunnel_verifies_the_name_end_to_end(tmp_path: Path) -> None:

    server_tls, client_tls = _self_signed(tmp_path, "registry.test")
    options = environment.transport({"HTTPS_PROXY": "http://ops:pr%40xy@127.0.0.4:1", "NO_PROXY": "other.test"})
    async with (
        RawServer(keep_answering(answer(200, b"tunnelled")), tls=server_tls) as server,
        Proxy(want_auth=b"Basic " + base64.b64encode(b"ops:pr@xy")) as proxy,
    ):
        assert options.https_proxy is not None
        via = dataclasses.replace(options, https_proxy=dataclasses.replace(options.https_proxy, port=proxy.port))
        async with client(tls=lambda: client_tls, proxy_for=via.proxy_for) as http:
            for _ in range(2):
                response = await http.get(server.url(host="registry.test", scheme="https"))
                assert response.content == b"tunnelled"
        assert via.https_proxy is not None
        assert proxy.asked == [
            (f"CONNECT registry.test:{server.port} HTTP/1.1".encode(), via.https_proxy.authorization)
        ]
        assert server.connections == 1  # one tunnel, kept alive
        async with client(tls=ssl.create_default_context, proxy_for=via.proxy_for) as http:
            with pytest.raises(httpx.ConnectError):  # the tunnel does not weaken verification
                await http.get(server.url(host="registry.test", scheme="https"))
        wrong = dataclasses.replace(via.https_proxy, authorization=b"Basic bm9wZQ==")
        async with client(tls=lambda: client_tls, proxy_for=lambda scheme, host: wrong) as http:
            with pytest.raises(httpx.ProxyError, match="407"):
                await http.get(server.url(host="registry.test", scheme="https"))


async def test_plain_http_through_a_proxy_and_what_bypasses_it() -> None:
    from shared.http.policy import Proxy as ProxyConfig
    from shared.http.policy import TransportOptions

    seen: list[bytes] = []

    async def origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line, _, _ = await read_request(reader)
        seen.append(line)
        writer.write(answer(200, b"proxied", b"Connection: close\r\n"))
        await writer.drain()

    async with RawServer(origin) as server, Proxy() as proxy:
        options = TransportOptions(
            http_proxy=ProxyConfig("127.0.0.4", proxy.port), no_proxy=(".internal.test", "direct.test:80")
        )
        async with client(proxy_for=options.proxy_for) as http:
            assert (await http.get(server.url("/v2/?n=1", host="registry.test"))).content == b"proxied"
        assert proxy.asked == [(f"GET http://registry.test:{server.port}/v2/?n=1 HTTP/1.1".encode(), None)]
        assert seen == [b"GET /v2/?n=1 HTTP/1.1"]
    assert options.proxy_for("http", "127.0.0.1") is None  # loopback is never proxied
    assert options.proxy_for("http", "a.internal.test") is None and options.proxy_for("http", "direct.test") is None
    assert options.proxy_for("http", "internal.test.example") is not None
    assert options.proxy_for("https", "registry.test") is None  # no HTTPS_PROXY set
    with pytest.raises(ConfigurationError, match="setting HTTPS_PROXY"):
        environment.transport({"HTTPS_PROXY": "socks5://127.0.0.4:1080"})
    parsed = environment.transport({"HTTPS_PROXY": "http://u:pr%40x%2525y@p:3128"})
    assert parsed.https_proxy is not None and "pr@" not in repr(parsed)
    assert parsed.https_proxy.authorization == b"Basic " + base64.b64encode(b"u:pr@x%25y")  # decoded once
