"""A registry that answers with chosen bytes: a raw TCP server on 127.0.0.1, in a thread, so a
test in this process or a CLI in another can be its client.

``answer(method, path, headers)`` returns the whole response as bytes, or a list of
``(bytes, seconds to wait first)`` pieces for a trickle; ``None`` closes the connection
unanswered. Connections are kept alive between requests unless the answer says ``Connection:
close`` or the handler returns a :class:`Close`.
"""

from __future__ import annotations

import functools
import socket
import socketserver
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.harness import loopback

Pieces = list[tuple[bytes, float]]


@dataclass
class Close:
    """Send ``data`` (maybe nothing), then close the connection."""

    data: bytes = b""


Answer = Callable[[str, str, dict[str, str]], bytes | Pieces | Close | None]


def response(
    status: int, body: bytes = b"", headers: dict[str, str] | None = None, reason: str = "", length: bool = True
) -> bytes:
    """An HTTP/1.1 response, its ``Content-Length`` from ``body`` unless ``headers`` say otherwise."""
    head = [f"HTTP/1.1 {status} {reason or 'Answer'}".encode("latin-1")]
    fields = dict(headers or {})
    if length and not any(k.lower() in ("content-length", "transfer-encoding") for k in fields):
        fields["Content-Length"] = str(len(body))
    head += [f"{k}: {v}".encode() for k, v in fields.items()]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


def _receive(conn: socket.socket, buffered: bytes, enough: Callable[[bytes], bool]) -> bytes | None:
    """``buffered`` and what arrives after it until ``enough``; None when the peer is gone."""
    while not enough(buffered):
        try:
            data = conn.recv(65536)
        except OSError:
            return None
        if not data:
            return None
        buffered += data
    return buffered


def _at_least(length: int, got: bytes) -> bool:
    return len(got) >= length


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(60)
        buffered = b""
        while True:
            received = _receive(conn, buffered, lambda got: b"\r\n\r\n" in got)
            if received is None:
                return
            head, _, buffered = received.partition(b"\r\n\r\n")
            line, *fields = head.decode("latin-1").split("\r\n")
            method, path, _ = ([*line.split(" "), "", ""])[:3]
            headers = {k.strip().lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
            length = int(headers.get("content-length", "0") or 0)
            received = _receive(conn, buffered, functools.partial(_at_least, length))
            if received is None:
                return
            buffered = received[length:]
            self.server.seen.append(Seen(method, path, headers))
            reply = self.server.answer(method, path, headers)
            if not self._send(conn, reply):
                return

    @staticmethod
    def _send(conn: socket.socket, reply: bytes | Pieces | Close | None) -> bool:
        """Writes the reply; False when the connection is to be closed."""
        try:
            if reply is None:
                return False
            if isinstance(reply, Close):
                conn.sendall(reply.data)
                return False
            if isinstance(reply, bytes):
                conn.sendall(reply)
                return b"connection: close" not in reply.split(b"\r\n\r\n", 1)[0].lower()
            for piece, wait in reply:
                if wait:
                    time.sleep(wait)
                conn.sendall(piece)
            return False
        except OSError:
            return False


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, answer: Answer, address: str) -> None:
        super().__init__((address, 0), _Handler)
        self.answer = answer
        self.seen: list[Seen] = []


@contextmanager
def hostile_server(answer: Answer, address: str = "127.0.0.1") -> Iterator[tuple[str, list[Seen]]]:
    """Serve ``answer`` on ``address``; yields ``(host:port, requests seen)``."""
    server = _Server(answer, address)
    loopback.serve(server)
    try:
        yield f"{address}:{server.server_address[1]}", server.seen
    finally:
        loopback.stop(server)
