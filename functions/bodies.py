"""Request bodies the API reads, bounded before they are parsed: at most :data:`MAX_BODY` bytes
(``413`` otherwise, from the ``Content-Length`` when it says so, else while reading), and JSON
nested at most :data:`MAX_DEPTH` deep (``400`` naming it). Enforced in the ASGI app itself, so the
Functions host and uvicorn behave alike; a body inside the bounds is handed on unchanged."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from shared.strict import header_int, nested_deeper_than

#: An import request is a few hundred bytes; 64 KiB leaves room for 50 tags and long names.
MAX_BODY = 64 * 1024
#: ``POST /api/runs``: a batch of up to 500 imports (shared/service/runcontrol.py's MAX_BATCH).
MAX_BATCH_BODY = 1024 * 1024
#: The request nests 3 deep; 32 is far past it and short of what a parser's recursion minds.
MAX_DEPTH = 32

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _problem(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"code": code, "message": message, "fields": [{"field": "body", "message": message}]}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BoundedBodies:
    """ASGI middleware: the bounds above, for every request with a body."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        declared = next((header_int(v) for k, v in scope.get("headers", ()) if k.lower() == b"content-length"), None)
        cap = MAX_BATCH_BODY if scope.get("path") == "/api/runs" else MAX_BODY
        too_big = f"the request body is over {cap} bytes"
        if declared is not None and declared > cap:
            await _problem(send, 413, "TOO_LARGE", too_big)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > cap:
                await _problem(send, 413, "TOO_LARGE", too_big)
                return
            if not message.get("more_body"):
                break
        if nested_deeper_than(body, MAX_DEPTH):
            await _problem(send, 400, "BAD_REQUEST", f"body: JSON nested more than {MAX_DEPTH} levels deep")
            return
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, then whatever comes next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
