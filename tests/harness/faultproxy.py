"""A loopback HTTP proxy between a client and a real registry that injects faults.

Rules match a request by method and a path substring, fire a set number of times, and either
answer in the registry's place (``respond``), or forward and then spoil the answer (``cut`` the
body after N bytes, ``corrupt`` one byte), or cut the request body (``cut_request``). The ``Host``
header is forwarded unchanged, so the registry's ``Location`` URLs point back at the proxy.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.harness.loopback import LoopbackServer

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization"}


@dataclass
class Rule:
    method: str
    path_contains: str
    times: int = 1
    #: ``respond``: (status, headers, body); ``cut``: close after N response-body bytes;
    #: ``corrupt``: flip the byte at this offset of the response body; ``cut_request``: close after
    #: reading N bytes of the request body, forwarding nothing.
    respond: tuple[int, dict[str, str], bytes] | None = None
    cut: int | None = None
    corrupt: int | None = None
    cut_request: int | None = None
    #: Seconds to wait before answering (a slow registry).
    delay: float = 0.0
    when: Callable[[dict[str, str]], bool] | None = None
    fired: int = 0

    def matches(self, method: str, path: str, headers: dict[str, str]) -> bool:
        return (
            self.fired < self.times
            and method == self.method
            and self.path_contains in path
            and (self.when is None or self.when(headers))
        )


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    status: int | None = None


@dataclass
class FaultProxy(LoopbackServer):
    upstream_host: str
    upstream_port: int
    rules: list[Rule] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def take(self, method: str, path: str, headers: dict[str, str]) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path, headers):
                    rule.fired += 1
                    return rule
        return None

    def requests(self, method: str | None = None, contains: str = "") -> list[Seen]:
        return [s for s in self.seen if (method is None or s.method == method) and contains in s.path]


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self, limit: int | None) -> bytes | None:
        """The request body; ``None`` when it was cut at ``limit``."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
                if limit is not None and len(data) >= limit:
                    return None
            return bytes(data)
        length = int(self.headers.get("Content-Length") or 0)
        if limit is not None and length > limit:
            self.rfile.read(limit)
            return None
        return self.rfile.read(length)

    def _cut_request(self, limit: int, headers: dict[str, str]) -> None:
        """Forward the first ``limit`` bytes of the request body, then drop both connections: the
        registry sees a body that ends early, the client a connection that breaks mid-upload."""
        partial = self.rfile.read(min(limit, int(self.headers.get("Content-Length") or 0)))
        upstream = http.client.HTTPConnection(self.owner.upstream_host, self.owner.upstream_port, timeout=60)
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            if k.lower() not in _HOP:
                upstream.putheader(k, v)
        upstream.endheaders()
        upstream.send(partial)
        upstream.close()
        self.close_connection = True
        self.connection.shutdown(2)

    def _handle(self) -> None:
        method, path = self.command, self.path
        headers = {k: v for k, v in self.headers.items()}
        seen = Seen(method, path, headers)
        self.owner.seen.append(seen)
        rule = self.owner.take(method, path, {k.lower(): v for k, v in headers.items()})
        if rule and rule.delay:
            time.sleep(rule.delay)
        if rule and rule.cut_request is not None:
            self._cut_request(rule.cut_request, headers)
            return
        body = self._read_body(None) or b""
        if rule and rule.respond:
            status, extra, payload = rule.respond
            seen.status = status
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(payload)
            return
        upstream = http.client.HTTPConnection(self.owner.upstream_host, self.owner.upstream_port, timeout=60)
        forward = {k: v for k, v in headers.items() if k.lower() not in _HOP}
        forward["Content-Length"] = str(len(body))
        if not body and method in ("GET", "HEAD", "DELETE"):
            forward.pop("Content-Length")
        upstream.request(method, path, body=body or None, headers=forward)
        response = upstream.getresponse()
        seen.status = response.status
        payload = response.read() if method != "HEAD" else b""
        upstream.close()
        if rule and rule.corrupt is not None and rule.corrupt < len(payload):
            i = rule.corrupt
            payload = payload[:i] + bytes([payload[i] ^ 0xFF]) + payload[i + 1 :]
        self.send_response(response.status)
        for k, v in response.getheaders():
            if k.lower() not in _HOP and k.lower() != "content-length":
                self.send_header(k, v)
        length = response.getheader("Content-Length") if method == "HEAD" else str(len(payload))
        if length is not None:
            self.send_header("Content-Length", length)
        self.end_headers()
        if rule and rule.cut is not None:
            self.wfile.write(payload[: rule.cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(payload)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle


FaultProxy.handler = _Handler
