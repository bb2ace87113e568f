"""A fake Docker Hub: a loopback proxy in front of a real registry that enforces Docker Hub's pull
limit as documented ("Docker Hub usage and limits"), with the limit and window set small.

- A pull is a manifest ``GET``; a ``HEAD`` is not counted.
- Pulls are counted per source: the account (Basic username) when ``accounts`` are configured
  (requests without valid credentials then get a ``401`` with a Basic challenge), else the
  client's address. The window is rolling: a pull counts for ``window`` seconds after it.
- Every manifest answer carries ``ratelimit-limit: L;w=W``, ``ratelimit-remaining: R;w=W`` and
  ``docker-ratelimit-source``; a pull over the limit is answered ``429 TOOMANYREQUESTS`` with
  ``Retry-After`` (seconds until the oldest pull in the window ages out) and is not forwarded.

``pulls`` and ``refused`` count what it let through and what it refused, per source.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.harness.loopback import LoopbackServer

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
        "authorization", "host"}  # fmt: skip


@dataclass
class FakeHub(LoopbackServer):
    upstream_host: str
    upstream_port: int
    limit: int = 50
    window: float = 4.0
    #: username -> password; empty: anonymous pulls, counted by address.
    accounts: dict[str, str] = field(default_factory=dict)
    pulls: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    heads: int = 0
    #: (time, source) of every pull let through, for checks over any window.
    log: list[tuple[float, str]] = field(default_factory=list)
    _recent: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _remaining(self, source: str, now: float) -> tuple[int, deque[float]]:
        recent = self._recent.setdefault(source, deque())
        while recent and recent[0] + self.window <= now:
            recent.popleft()
        return self.limit - len(recent), recent

    def admit(self, source: str, pull: bool) -> tuple[bool, int, float]:
        """(allowed, remaining after it, seconds until one frees) for a request from ``source``."""
        with self._lock:
            now = time.time()
            remaining, recent = self._remaining(source, now)
            if not pull:
                self.heads += 1
                return True, remaining, 0.0
            if remaining <= 0:
                self.refused[source] += 1
                return False, 0, recent[0] + self.window - now
            recent.append(now)
            self.pulls[source] += 1
            self.log.append((now, source))
            return True, remaining - 1, 0.0

    def most_in_any_window(self, source: str | None = None) -> int:
        """The most pulls let through in any span of one window (must be <= limit)."""
        times = [t for t, s in self.log if source is None or s == source]
        best, start = 0, 0
        for end in range(len(times)):
            while times[end] - times[start] >= self.window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def headers(self, source: str, remaining: int) -> dict[str, str]:
        w = f"w={int(self.window)}" if self.window == int(self.window) else f"w={self.window:g}"
        return {"ratelimit-limit": f"{self.limit};{w}", "ratelimit-remaining": f"{max(remaining, 0)};{w}",
                "docker-ratelimit-source": source}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    owner: FakeHub
    protocol_version = "HTTP/1.1"
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _source(self) -> str | None:
        """The account asking, or its address; None when accounts are required and not given."""
        if not self.owner.accounts:
            return str(self.client_address[0])
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return None
        return user if self.owner.accounts.get(user) == password else None

    def _answer(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        source = self._source()
        if source is None:
            self._answer(401, {"WWW-Authenticate": 'Basic realm="fake hub"', "Content-Type": "application/json"},
                         b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}')  # fmt: skip
            return
        manifest = "/manifests/" in self.path
        extra: dict[str, str] = {}
        if manifest:
            allowed, remaining, wait = self.owner.admit(source, self.command == "GET")
            extra = self.owner.headers(source, remaining)
            if not allowed:
                doc = {"errors": [{"code": "TOOMANYREQUESTS", "message": "You have reached your pull rate limit."}]}
                extra.update({"Retry-After": str(max(1, math.ceil(wait))), "Content-Type": "application/json"})
                self._answer(429, extra, json.dumps(doc).encode())
                return
        self._forward(body, extra)

    def _forward(self, body: bytes, extra: dict[str, str]) -> None:
        if self._upstream is None:
            self._upstream = http.client.HTTPConnection(self.owner.upstream_host, self.owner.upstream_port, timeout=60)
        forward = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
        forward["Host"] = self.headers.get("Host", "")
        try:
            self._upstream.request(self.command, self.path, body=body or None, headers=forward)
            response = self._upstream.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self._upstream.close()
            self._upstream = None
            raise
        headers = {k: v for k, v in response.getheaders() if k.lower() not in _HOP and k.lower() != "content-length"}
        self.send_response(response.status)
        for k, v in [*headers.items(), *extra.items()]:
            self.send_header(k, v)
        length = response.getheader("Content-Length") if self.command == "HEAD" else str(len(payload))
        if length is not None:
            self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle


FakeHub.handler = _Handler
