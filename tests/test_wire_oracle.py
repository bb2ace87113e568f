"""wire against an oracle: h11, the HTTP/1.1 parser under httpcore. Hypothesis builds response
heads and bodies, well-formed and not; where h11 refuses a message, wire must refuse it too, and
where both accept it, they must agree on status, headers and body. wire may refuse more (it is
stricter on purpose: control characters, Transfer-Encodings other than chunked)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import h11
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.http.framing import framing
from shared.http.pool import Body
from shared.http.wire import Connection, Wire

_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-!#$%&'*+.^_`|~", min_size=1,
                 max_size=12)  # fmt: skip
_NAMES = st.one_of(
    st.sampled_from(["Content-Type", "X-A", "Docker-Content-Digest", "Connection", "Link", "Server"] * 3
                    + ["Content-Length", "Transfer-Encoding"]),
    _TOKEN,
)  # fmt: skip
_ODD = st.binary(min_size=0, max_size=6)  # anything at all, spliced in


_VALUE_WORDS = st.sampled_from([b"text/plain", b"keep-alive", b"  padded  ", b"", b"a\tb", b"\x80\xff", b"v=1; x"])
_NOW_AND_THEN = st.integers(0, 4)
_VERSIONS = st.sampled_from([b"HTTP/1.1"] * 6 + [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.x", b"http/1.1"])
_STATUSES = st.sampled_from([b"200"] * 4 + [b"404", b"204", b"301", b"500", b"100", b"099", b"2000", b"20a", b"304"])
_REASONS = st.sampled_from([b" OK"] * 4 + [b"", b" ", b" Not\x1bFound", b" a\tb", b"  two  spaces", b" \x80"])
_SEPARATORS = st.sampled_from([b": ", b":", b" : ", b":\t"])
_FRAMINGS = st.sampled_from(["length", "wrong-length", "chunked", "bad-chunked", "close", "double"])
_TRAILERS = st.sampled_from([b"", b"", b"X-T: 1\r\n", b"bad trailer\r\n", b"X-T:\x01\r\n"])
_HEADER_COUNTS = st.integers(0, 5)
_BODIES = st.binary(max_size=40)
_ANY_VALUE = st.binary(max_size=20)
_WRONG_BY = st.integers(1, 5)

# The strategies above are built once: a strategy built inside ``responses`` on every draw costs
# Hypothesis its validation each time (a third of this test's time), for the same distribution.


@st.composite
def values(draw: st.DrawFn) -> bytes:
    if draw(_NOW_AND_THEN) == 0:
        return draw(_ANY_VALUE)  # anything, now and then
    return draw(_VALUE_WORDS)


_VALUES = values()


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    lines = [draw(_VERSIONS) + b" " + draw(_STATUSES) + draw(_REASONS)]
    informational = draw(st.booleans())
    for _ in range(draw(_HEADER_COUNTS)):
        name = draw(_NAMES).encode()
        value = draw(_VALUES)
        lines.append(name + draw(_SEPARATORS) + value)
    if draw(_HEADER_COUNTS) == 0:
        lines.append(draw(_ODD))  # a line of anything
    body = draw(_BODIES)
    framing_choice = draw(_FRAMINGS)
    if framing_choice in ("length", "wrong-length", "double"):
        length = len(body) + (draw(_WRONG_BY) if framing_choice == "wrong-length" else 0)
        lines.append(b"Content-Length: %d" % length)
        if framing_choice == "double":
            lines.append(b"Content-Length: " + draw(st.sampled_from([b"%d" % length, b"%d" % (length + 1), b"x"])))
        payload = body
    elif framing_choice in ("chunked", "bad-chunked"):
        lines.append(b"Transfer-Encoding: chunked")
        pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p)
        payload += b"0\r\n" + draw(_TRAILERS) + b"\r\n"
        if framing_choice == "bad-chunked":
            at = draw(st.integers(0, max(len(payload) - 1, 0)))
            payload = payload[:at] + draw(_ODD) + payload[at + 1 :]
    else:
        payload = body
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    if informational:
        head = b"HTTP/1.1 100 Continue\r\n\r\n" + head
    return head + payload


def h11_reads(raw: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
    """What h11, as a client that sent ``GET /``, reads of ``raw`` then EOF; None if it refuses."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    conn.receive_data(b"")
    status, headers, body = 0, [], b""
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                status, headers = event.status_code, [(k.lower(), v) for k, v in event.headers.raw_items()]
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return status, headers, body
            else:  # NEED_DATA after EOF, ConnectionClosed before the end
                return None
    except h11.RemoteProtocolError:
        return None


class _Pool:
    def release(self, connection: Any, *, reusable: bool) -> None:
        pass


async def _wire_reads(raw: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
    wire = Wire()
    wire.data_received(raw)
    wire.eof_received()
    request = httpx.Request("GET", "http://x/")
    connection = Connection(("http", "x", 80), wire)
    try:
        head = await connection.receive_head(request, None, 5)
        frame = framing("GET", head, request)
        body = b"".join([piece async for piece in Body(_Pool(), connection, request, frame, True, None)])  # type: ignore[arg-type]
    except httpx.HTTPError:
        return None
    return head.status, [(k.lower(), v) for k, v in head.headers], body


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.Runner]:
    """One event loop for every example (``asyncio.run`` would make and close one per call)."""
    with asyncio.Runner() as runner:
        yield runner


def wire_reads(loop: asyncio.Runner, raw: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
    return loop.run(_wire_reads(raw))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses())
def test_wire_refuses_what_h11_refuses_and_agrees_on_the_rest(loop: asyncio.Runner, raw: bytes) -> None:
    expected = h11_reads(raw)
    actual = wire_reads(loop, raw)
    if expected is None:
        assert actual is None, f"h11 refuses, wire reads {actual!r}"
    elif actual is not None:
        assert _comparable(actual) == _comparable(expected)


def _comparable(read: tuple[int, list[tuple[bytes, bytes]], bytes]) -> tuple[Any, ...]:
    """h11 folds repeated Content-Length values into one and lower-cases Transfer-Encoding;
    the body read says whether both framed it alike."""
    status, headers, body = read
    return status, [(k, v) for k, v in headers if k not in (b"content-length", b"transfer-encoding")], body


def test_the_oracle_sees_both_outcomes(loop: asyncio.Runner) -> None:
    """The generator is not vacuous: well-formed answers are read the same, malformed refused."""
    good = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"
    assert h11_reads(good) == wire_reads(loop, good) == (200, [(b"content-length", b"5"), (b"x-a", b"b")], b"hello")
    bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    assert h11_reads(bad) is None and wire_reads(loop, bad) is None
