"""A server span per API request, when telemetry is on (else a pass-through): it continues the
caller's W3C ``traceparent`` and is current while the request runs, so the job a ``POST`` makes
carries it across the queue (:func:`shared.telemetry.carrier`). Attribute names are the HTTP
semantic conventions' (``http.request.method``, ``http.route``, ``url.path``,
``http.response.status_code``); the query string (a ``?code=`` key) is never recorded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from shared import telemetry

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class RequestSpans:
    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not telemetry.enabled():
            await self.app(scope, receive, send)
            return
        from opentelemetry.trace import SpanKind, Status, StatusCode  # noqa: PLC0415 - only when on
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator  # noqa: PLC0415

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        context = TraceContextTextMapPropagator().extract(headers)
        method, path = str(scope.get("method", "")), str(scope.get("path", ""))
        attributes = {"http.request.method": method, "url.path": path, "url.scheme": str(scope.get("scheme", "http"))}
        with telemetry.tracer().start_as_current_span(
            f"{method} {path}", context=context, kind=SpanKind.SERVER, attributes=attributes
        ) as span:

            async def sending(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            await self.app(scope, receive, sending)
            route = scope.get("route")
            if route is not None and getattr(route, "path", None):
                span.set_attribute("http.route", route.path)
                span.update_name(f"{method} {route.path}")
