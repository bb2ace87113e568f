"""A byte-for-byte TCP relay in front of a real registry that notes each request line it
passes. Unlike :class:`~tests.harness.faultproxy.FaultProxy`, which reads a whole request before
forwarding it, the relay streams: the registry sees a cut upload cut, as it would without it."""

from __future__ import annotations

import contextlib
import re
import socket
import socketserver
import threading
from typing import Any

from tests.harness import loopback

_REQUEST_LINE = re.compile(rb"(GET|HEAD|PUT|PATCH|POST|DELETE) (/v2/[^ \r\n]*) HTTP/1\.1\r\n")


class Relay:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        #: (method, path) of every request line seen going upstream, in order.
        self.requests: list[tuple[str, str]] = []
        relay = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                relay._pipe(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Relay:
        loopback.serve(self._server)
        return self

    def stop(self) -> None:
        loopback.stop(self._server)

    def _pipe(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        back = threading.Thread(target=_copy, args=(upstream, client, None), daemon=True)
        back.start()
        _copy(client, upstream, self._note)
        back.join(5)
        upstream.close()

    def _note(self, window: bytes) -> None:
        for match in _REQUEST_LINE.finditer(window):
            self.requests.append((match.group(1).decode(), match.group(2).decode()))


def _copy(source: socket.socket, sink: socket.socket, note: Any) -> None:
    """Pump ``source`` into ``sink`` until either closes; ``note`` sees each request line once
    (a line split across reads is found in the next window)."""
    tail = b""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
            if note is not None:
                window = tail + data
                end = window.rfind(b"\r\n")
                if end >= 0:
                    note(window[: end + 2])
                    tail = window[end + 2 :][-2048:]
                else:
                    tail = window[-2048:]
    except OSError:
        pass
    finally:
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
