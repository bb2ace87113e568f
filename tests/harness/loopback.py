"""The one way the harness's small HTTP servers run: a threading server on 127.0.0.1 and a free
port, a handler class that knows its owner, and a clean stop."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()  # shutdown within 50 ms
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

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
