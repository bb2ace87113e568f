"""The one way the harness's small HTTP servers run: a threading server on 127.0.0.1 and a free
port, a handler class that knows its owner, and a clean stop."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve(server: socketserver.TCPServer) -> None:
    """Serve ``server`` on a daemon thread until :func:`stop`."""
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()


def stop(server: socketserver.TCPServer) -> None:
    """Stop ``server`` now. ``shutdown()`` alone waits for ``serve_forever`` to look again (its
    50 ms poll, for every server a test stops); shutting the listening socket wakes its select at
    once, and the shut socket accepts nothing more."""
    stopper = threading.Thread(target=server.shutdown, daemon=True)
    stopper.start()
    with contextlib.suppress(OSError):
        server.socket.shutdown(socket.SHUT_RDWR)
    stopper.join()
    server.server_close()


class LoopbackServer:
    """Mix-in: ``start()`` serves ``handler`` (a ``BaseHTTPRequestHandler`` subclass with an
    ``owner`` attribute) for this object; ``stop()`` shuts it down."""

    handler: type[BaseHTTPRequestHandler]
    _server: ThreadingHTTPServer | None = None

    def start(self) -> Any:
        owner = self
        handler = type(f"{type(self).__name__}Handler", (self.handler,), {"owner": owner})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        serve(self._server)
        return self

    def stop(self) -> None:
        if self._server is not None:
            stop(self._server)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


def reply(handler: BaseHTTPRequestHandler, status: int, doc: Any = None, headers: dict[str, str] | None = None) -> None:
    """Answer with ``doc`` as JSON (no body when it is None) and ``headers``."""
    body = json.dumps(doc).encode() if doc is not None else b""
    handler.send_response(status)
    if doc is not None:
        handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)
