"""One attempt at sending a run's event to one destination, through :mod:`shared.http` (the same
SSRF policy, address check at connect, TLS, body caps and stall floor as registry calls):

- a **webhook**: ``POST`` the event in CloudEvents' structured mode
  (``application/cloudevents+json``), signed as Standard Webhooks says (:mod:`.signing`); any
  ``2xx`` is delivered;
- an **Event Grid custom topic** ("Publish events to Azure Event Grid custom topics"):
  ``POST <endpoint>?api-version=2018-01-01``, a CloudEvents batch
  (``application/cloudevents-batch+json; charset=utf-8``) of one event, with a Microsoft Entra
  token for ``https://eventgrid.azure.net/.default`` (the identity holds ``EventGrid Data
  Sender``; no keys). Events over 1 MB are refused before sending, as the topic would.

Nothing secret is logged or kept: a failure is described by its status or error code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from shared.credentials.model import get_token
from shared.errors import ConfigurationError, FerryError, InsecureEndpointError
from shared.events import signing
from shared.events.config import Destination
from shared.http import logsafety
from shared.http.exchange import extensions, read_body, wire_for
from shared.http.mapping import Side
from shared.http.policy import TransportOptions

logsafety.install()  # httpx logs each request's URL: a webhook's token path is redacted there

EVENTGRID_SCOPE = "https://eventgrid.azure.net/.default"
EVENTGRID_API_VERSION = "2018-01-01"
#: Event Grid's limit for one event and for a batch on a custom topic.
EVENTGRID_MAX_BYTES = 1024 * 1024
STRUCTURED = "application/cloudevents+json; charset=utf-8"
BATCH = "application/cloudevents-batch+json; charset=utf-8"
#: Answers that sending again will not change: the destination refuses this event as it is.
PERMANENT = frozenset({400, 413})


class Attempt:
    """How one attempt went: ``status`` (None when no answer came) and, failed, ``error`` in words."""

    __slots__ = ("error", "permanent", "status")

    def __init__(self, status: int | None, error: str | None = None, *, permanent: bool = False) -> None:
        self.status = status
        self.error = error
        self.permanent = permanent

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Publisher:
    """Sends events; one connection pool for every destination (``max_connections`` each host)."""

    def __init__(
        self,
        transport: TransportOptions,
        *,
        timeout: float = 10.0,
        identity: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._transport = transport
        self._identity = identity
        self._clock = clock
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            event_hooks={"request": [self._check]},
            transport=wire_for(transport, Side("event destination"), 4),
            follow_redirects=False,
        )

    async def _check(self, request: httpx.Request) -> None:
        self._transport.check_url(request.url, "event destination")

    async def aclose(self) -> None:
        await self.http.aclose()

    async def send(self, destination: Destination, event_id: str, body: bytes) -> Attempt:
        """One attempt; never raises for what the destination or the network did."""
        try:
            if destination.kind == "webhook":
                response = await self._webhook(destination, event_id, body)
            else:
                response = await self._eventgrid(destination, body)
        except (InsecureEndpointError, ConfigurationError) as exc:
            return Attempt(None, str(exc), permanent=True)
        except FerryError as exc:
            return Attempt(None, f"{exc.code}: {exc}")
        except httpx.HTTPError as exc:  # an error before the exchange layer (a bad URL)
            return Attempt(None, type(exc).__name__, permanent=isinstance(exc, httpx.InvalidURL))
        if 200 <= response.status_code < 300:
            return Attempt(response.status_code)
        return Attempt(
            response.status_code,
            f"answered {response.status_code} {response.reason_phrase}",
            permanent=response.status_code in PERMANENT,
        )

    async def _webhook(self, destination: Destination, event_id: str, body: bytes) -> httpx.Response:
        assert destination.secret is not None
        signed = signing.headers(destination.secret, event_id, int(self._clock()), body)
        return await self._post(destination.url, {"Content-Type": STRUCTURED, **signed}, body, "deliver webhook")

    async def _eventgrid(self, destination: Destination, body: bytes) -> httpx.Response:
        batch = b"[" + body + b"]"
        if len(batch) > EVENTGRID_MAX_BYTES:
            raise ConfigurationError(
                f"the event is {len(batch)} bytes: over Event Grid's {EVENTGRID_MAX_BYTES}-byte limit"
            )
        if self._identity is None:
            raise ConfigurationError("Event Grid is published to with a managed identity, and none is configured")
        token = await get_token(self._identity(), EVENTGRID_SCOPE)
        url = httpx.URL(destination.url)
        if "api-version" not in url.params:
            url = url.copy_merge_params({"api-version": EVENTGRID_API_VERSION})
        headers = {"Content-Type": BATCH, "Authorization": f"Bearer {token}"}
        return await self._post(str(url), headers, batch, "publish to Event Grid")

    async def _post(self, url: str, headers: dict[str, str], body: bytes, op: str) -> httpx.Response:
        request = self.http.build_request("POST", url, headers=headers, content=body, extensions=extensions(op))
        response = await self.http.send(request, stream=True)
        try:
            await read_body(response)  # read, capped, to free the connection; never shown
        finally:
            await response.aclose()
        return response
