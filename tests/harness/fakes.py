"""Small fake HTTP servers for edge cases a real registry will not produce on demand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.harness import loopback

#: (method, path, headers) -> (status, headers, body)
Responder = Callable[[str, str, dict[str, str]], tuple[int, dict[str, str], bytes]]


@contextmanager
def fake_server(
    respond: Responder, address: str = "127.0.0.1"
) -> Iterator[tuple[str, list[tuple[str, str, dict[str, str]]]]]:
    """Serve ``respond`` on ``address`` (a loopback one); yields ``(host, seen requests)``."""
    seen: list[tuple[str, str, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen.append((self.command, self.path, headers))
            status, extra, body = respond(self.command, self.path, headers)
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

    server = ThreadingHTTPServer((address, 0), Handler)
    server.daemon_threads = True
    loopback.serve(server)
    try:
        yield f"{address}:{server.server_address[1]}", seen
    finally:
        loopback.stop(server)


@contextmanager
def challenge_server(challenge: str) -> Iterator[str]:
    """A registry that answers every request with 401 and ``challenge``."""

    def respond(method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        return (
            401,
            {"WWW-Authenticate": challenge, "Content-Type": "application/json"},
            b'{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}',
        )

    with fake_server(respond) as (host, _):
        yield host


@contextmanager
def trickle_server(content_type: str, length: int, interval: float) -> Iterator[str]:
    """A registry that announces ``length`` bytes and sends one every ``interval`` seconds."""
    import time

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_HEAD(self) -> None:
            """Quick and plausible, so that the trickle comes with the GET after it."""
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(length))
            self.send_header("Docker-Content-Digest", "sha256:" + "0" * 64)
            self.end_headers()

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            try:
                for _ in range(length):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(interval)
            except OSError:
                return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    loopback.serve(server)
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        loopback.stop(server)
