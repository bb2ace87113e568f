"""Where run events go, read from app settings (any number of each; names are lowercase letters,
digits, ``-`` and ``_`` in the setting's ``<NAME>``):

- ``FERRY_WEBHOOK_<NAME>_URL``: an HTTPS URL (plain HTTP and loopback only where registries may
  use them: ``FERRY_ALLOW_LOOPBACK``, ``FERRY_INSECURE_REGISTRIES``, ``FERRY_ALLOWED_REGISTRIES``);
  ``FERRY_WEBHOOK_<NAME>_SECRET``: ``whsec_`` and 24 to 64 bytes in base64 (Standard Webhooks);
  ``FERRY_WEBHOOK_<NAME>_EVENTS``: which runs it hears of (below).
- ``FERRY_EVENTGRID_<NAME>_ENDPOINT``: an Event Grid custom topic's endpoint
  (``https://<topic>.<region>-1.eventgrid.azure.net/api/events``), published to with the
  function app's managed identity; ``FERRY_EVENTGRID_<NAME>_EVENTS`` as for webhooks.
- ``..._EVENTS``: ``all`` (the default), ``failures`` (``partial`` and ``failed`` runs), or a comma
  list of run states (``succeeded,partial,failed,cancelled``).
- ``FERRY_EVENT_SOURCE``: the events' ``source`` (default ``/ferry``).
- ``FERRY_EVENT_DELIVERY_SECONDS``: how long one event is retried at one destination before it
  is recorded undelivered on the run (default 1200: under host.json's 30-minute functionTimeout,
  which bounds one delivery in Azure); ``FERRY_EVENT_TIMEOUT_SECONDS``: one
  attempt's time (default 10).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from shared.credentials import Secret
from shared.errors import ConfigurationError
from shared.text import register_secret

STATES = frozenset({"succeeded", "partial", "failed", "cancelled"})
FAILURES = frozenset({"partial", "failed"})
_SETTING = re.compile(r"FERRY_(WEBHOOK|EVENTGRID)_([A-Z0-9_]+)_(URL|SECRET|EVENTS|ENDPOINT)")
#: A webhook path (and query) this long is taken to carry a token, and never shown.
TOKEN_PATH = 16
#: Standard Webhooks: a secret is 24 to 64 bytes, sent base64 after ``whsec_``.
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class Destination:
    """One place run events go."""

    name: str
    kind: Literal["webhook", "eventgrid"]
    url: str
    secret: Secret | None = field(default=None, repr=False)
    states: frozenset[str] = STATES

    def __post_init__(self) -> None:
        """A webhook URL's path and query often carry its token (as chat services' do): they
        are redacted from every message, as secrets are."""
        parts = urlsplit(self.url)
        private = parts.path + (f"?{parts.query}" if parts.query else "")
        if self.kind == "webhook" and len(private) >= TOKEN_PATH:
            register_secret(private)

    def wants(self, state: str) -> bool:
        return state in self.states


@dataclass(frozen=True)
class EventsConfig:
    destinations: tuple[Destination, ...] = ()
    source: str = "/ferry"
    #: Seconds one event is retried at one destination before it is recorded undelivered.
    delivery_seconds: float = 1200.0
    #: Seconds one attempt may take (connect, send, answer).
    timeout: float = 10.0
    #: The first wait between attempts, doubling to :attr:`backoff_cap`.
    backoff_base: float = 1.0
    backoff_cap: float = 300.0


def _states(value: str, setting: str) -> frozenset[str]:
    text = value.strip().lower()
    if text in ("", "all"):
        return STATES
    if text == "failures":
        return FAILURES
    given = {s.strip() for s in text.split(",") if s.strip()}
    unknown = given - STATES
    if unknown or not given:
        raise ConfigurationError(
            f"setting {setting}: must be all, failures or a list of {', '.join(sorted(STATES))}, not {value[:60]!r}"
        )
    return frozenset(given)


def webhook_secret(value: str, setting: str) -> Secret:
    """A Standard Webhooks secret: ``whsec_`` then 24 to 64 bytes in base64."""
    raw = b""
    if value.startswith(SECRET_PREFIX):
        try:
            raw = base64.b64decode(value.removeprefix(SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
    if not 24 <= len(raw) <= 64:
        raise ConfigurationError(f"setting {setting}: must be whsec_ followed by 24 to 64 bytes in base64")
    return Secret(value)


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise ConfigurationError(f"setting {name}: must be a positive number of seconds, not {text[:40]!r}")
    return value


def events(env: Mapping[str, str]) -> EventsConfig:
    """The events' settings; :class:`ConfigurationError` names a bad or missing one."""
    parts: dict[tuple[str, str], dict[str, str]] = {}
    for key, value in env.items():
        match = _SETTING.fullmatch(key)
        if match and value.strip():
            kind, name, what = match.groups()
            parts.setdefault((kind, name), {})[what] = value.strip()
    found = [_destination(kind, name, fields) for (kind, name), fields in sorted(parts.items())]
    return EventsConfig(
        destinations=tuple(found),
        source=env.get("FERRY_EVENT_SOURCE", "").strip() or "/ferry",
        delivery_seconds=_number(env, "FERRY_EVENT_DELIVERY_SECONDS", 1200.0),
        timeout=_number(env, "FERRY_EVENT_TIMEOUT_SECONDS", 10.0),
    )


def _destination(kind: str, name: str, fields: dict[str, str]) -> Destination:
    prefix = f"FERRY_{kind}_{name}"
    label = name.lower().replace("_", "-")
    states = _states(fields.get("EVENTS", ""), f"{prefix}_EVENTS")
    if kind == "WEBHOOK":
        if "URL" not in fields:
            raise ConfigurationError(f"setting {prefix}_URL: missing (a webhook needs a URL and a SECRET)")
        if "SECRET" not in fields:
            raise ConfigurationError(
                f"setting {prefix}_SECRET: missing (whsec_ and a base64 key: every delivery is signed)"
            )
        url = _url(fields["URL"], f"{prefix}_URL")
        return Destination(label, "webhook", url, webhook_secret(fields["SECRET"], f"{prefix}_SECRET"), states)
    if "ENDPOINT" not in fields:
        raise ConfigurationError(f"setting {prefix}_ENDPOINT: missing (the custom topic's endpoint)")
    return Destination(label, "eventgrid", _url(fields["ENDPOINT"], f"{prefix}_ENDPOINT"), None, states)


def _url(value: str, setting: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#@]+(/[^\s#]*)?", value):
        raise ConfigurationError(f"setting {setting}: must be an http(s) URL without credentials, not {value[:80]!r}")
    return value
