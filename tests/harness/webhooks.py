"""Where run events land in tests, on loopback:

- :class:`WebhookReceiver`: a webhook endpoint that checks each delivery's Standard Webhooks
  signature with the ``standardwebhooks`` package (an implementation independent of Ferry's),
  keeps what it verified, and can be told to fail, or to answer slowly, a number of times;
- :class:`FakeEventGrid`: an Event Grid custom topic with the CloudEvents 1.0 input schema, as
  "Publish events to Azure Event Grid custom topics" documents it: ``POST /api/events?api-version=
  2018-01-01``, ``Content-Type: application/cloudevents-batch+json; charset=utf-8``, a JSON array of
  events each with ``id``, ``source``, ``specversion`` 1.0 and ``type``; authenticated by an
  ``aeg-sas-key`` header or a Microsoft Entra bearer token for ``https://eventgrid.azure.net``
  (the publisher holding ``EventGrid Data Sender``); at most 1 MB a request. It refuses what the
  real one refuses: another content type or a body that is not such a batch (``400``), no or a
  bad credential (``401``), a body over 1 MB (``413``); ``200`` with no body when it takes them.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any

import jwt
from azure.core.credentials import AccessToken
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.harness.loopback import LoopbackServer, reply

EVENTGRID_AUDIENCE = "https://eventgrid.azure.net"
#: The fake Entra's signing key (the same idea as tests/harness/entra.py).
SIGNING = "fake-entra-signing-secret-for-event-grid-tests-0123456789"
MAX_BYTES = 1024 * 1024
BATCH_TYPE = "application/cloudevents-batch+json"


class EventGridCredential:
    """A stand-in for the function app's managed identity: tokens for Event Grid's audience."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []
        self.oid = str(uuid.uuid4())

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        audience = scopes[0].removesuffix("/.default")
        now = int(time.time())
        claims = {"aud": audience, "oid": self.oid, "tid": "tenant-one", "iat": now, "exp": now + 3600}
        return AccessToken(jwt.encode(claims, SIGNING, algorithm="HS256"), now + 3600)


class _Receiving(BaseHTTPRequestHandler):
    owner: Any

    def log_message(self, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


class _WebhookHandler(_Receiving):
    def do_POST(self) -> None:
        owner: WebhookReceiver = self.owner
        body = self._body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, delay = owner.next_answer()
        time.sleep(delay)
        try:
            event = Webhook(owner.secret).verify(body, headers)
        except WebhookVerificationError as exc:
            owner.record(headers, None, f"signature: {exc}")
            reply(self, 401, {"error": "bad signature"})
            return
        owner.record(headers, event, None, answered=status)
        reply(self, status)


class WebhookReceiver(LoopbackServer):
    """A signed-webhook endpoint (see the module's docstring)."""

    handler = _WebhookHandler

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.lock = threading.Lock()
        #: Every request: its headers, the verified event (None if refused) and the answer.
        self.requests: list[dict[str, Any]] = []
        self._answers: list[tuple[int, float]] = []
        self.arrived = threading.Condition(self.lock)

    def answer(self, *answers: tuple[int, float]) -> None:
        """The next requests get these ``(status, seconds to wait first)``; then 204 at once."""
        with self.lock:
            self._answers.extend(answers)

    def next_answer(self) -> tuple[int, float]:
        with self.lock:
            return self._answers.pop(0) if self._answers else (204, 0.0)

    def record(self, headers: dict[str, str], event: Any, refused: str | None, answered: int = 401) -> None:
        with self.arrived:
            entry = {"headers": headers, "event": event, "refused": refused, "status": answered, "at": time.time()}
            self.requests.append(entry)
            self.arrived.notify_all()

    @property
    def delivered(self) -> list[dict[str, Any]]:
        """The events verified and answered with a 2xx."""
        with self.lock:
            return [r["event"] for r in self.requests if r["event"] is not None and 200 <= r["status"] < 300]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Wait until ``count`` events were delivered; returns them."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len([r for r in self.requests if r["event"] is not None and 200 <= r["status"] < 300]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.arrived.wait(left)
        return self.delivered


class _EventGridHandler(_Receiving):
    def do_POST(self) -> None:
        owner: FakeEventGrid = self.owner
        problem = self._refusal()
        if problem is not None:
            status, message = problem
            owner.refusals.append((status, message))
            reply(
                self, status, {"error": {"code": "BadRequest" if status == 400 else "Unauthorized", "message": message}}
            )
            return
        owner.received.extend(self.batch)
        reply(self, 200)

    def _refusal(self) -> tuple[int, str] | None:
        owner: FakeEventGrid = self.owner
        if not self.path.startswith("/api/events") or "api-version=2018-01-01" not in self.path:
            return 404, "POST /api/events?api-version=2018-01-01"
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BYTES:
            self.rfile.read(length)  # read, so that the answer is not a reset
            return 413, f"the request is {length} bytes: the limit is 1 MB"
        body = self._body()
        if not self._authorized(owner):
            return 401, "an aeg-sas-key or a bearer token for https://eventgrid.azure.net is required"
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != BATCH_TYPE:
            return 400, f"Content-Type must be {BATCH_TYPE} on a CloudEvents 1.0 topic, not {content_type!r}"
        try:
            batch = json.loads(body)
        except ValueError:
            return 400, "the body is not JSON"
        required = ("id", "source", "specversion", "type")
        if not isinstance(batch, list) or not all(
            isinstance(e, dict) and all(e.get(k) for k in required) for e in batch
        ):
            return 400, "the body must be an array of CloudEvents with id, source, specversion and type"
        if any(e["specversion"] != "1.0" for e in batch):
            return 400, "specversion must be 1.0"
        self.batch = batch
        return None

    def _authorized(self, owner: FakeEventGrid) -> bool:
        if owner.key and self.headers.get("aeg-sas-key") == owner.key:
            return True
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        try:
            jwt.decode(token, SIGNING, algorithms=["HS256"], audience=EVENTGRID_AUDIENCE)
        except jwt.PyJWTError:
            return False
        return True


class FakeEventGrid(LoopbackServer):
    """An Event Grid custom topic (see the module's docstring)."""

    handler = _EventGridHandler

    def __init__(self, key: str | None = None) -> None:
        self.key = key
        self.received: list[dict[str, Any]] = []
        self.refusals: list[tuple[int, str]] = []

    @property
    def endpoint(self) -> str:
        return f"{self.url}/api/events"
