"""Every setting Ferry reads, declared once (:data:`SETTINGS`: name, default, bounds, help,
reader), and read from a mapping the process's root hands in, each checked once: a bad value
raises :class:`ConfigurationError` naming the setting. Without pydantic, so that the
command line starts fast; :class:`shared.settings.Settings` builds the service's settings on
these readers.

- :func:`transport`: where and how Ferry may connect (``FERRY_INSECURE_REGISTRIES``,
  ``FERRY_ALLOWED_REGISTRIES``, ``FERRY_ALLOW_LOOPBACK``, the stall floor, the retry policy,
  ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``, ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``);
- :func:`limits`: ``az acr import``'s limits and the descriptor bound;
- :func:`registries`: ``FERRY_REGISTRIES``, registry → ARM resource ID;
- :class:`CommandLine`: what the CLI reads besides (``FERRY_CONCURRENCY``, ``FERRY_ARM_ENDPOINT``,
  the source and target credentials it takes from the environment).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from shared.arm import ARM_ENDPOINT
from shared.credentials import Secret
from shared.errors import ConfigurationError
from shared.http.policy import MAX_ATTEMPTS, Proxy, TransportOptions
from shared.http.policy import RETRY_BUDGET as RETRY_BUDGET_DEFAULT
from shared.http.policy import STALL_FLOOR as STALL_FLOOR_DEFAULT
from shared.http.policy import STALL_WINDOW as STALL_WINDOW_DEFAULT
from shared.importing.spec import (
    DEFAULT_MAX_DESCRIPTORS,
    DEFAULT_MAX_MANIFESTS,
    DEFAULT_MAX_PUBLIC_BLOB_BYTES,
    Limits,
)
from shared.oci.reference import parse_registry

N = TypeVar("N", int, float)


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting, declared once: its name, default, bounds (``low`` inclusive unless
    ``above``), what it is for, and who reads it (``app``: the function app and ``make up``;
    ``cli``: the command line only). The readers below, :class:`shared.settings.Settings`, the
    README's settings table and ``local.settings.example.json`` follow these (tests/test_docs.py)."""

    name: str
    default: int | float | str | None
    help: str
    low: float | None = None
    high: float | None = None
    above: bool = False
    reader: str = "app"

    def whole(self, env: Mapping[str, str]) -> int:
        assert isinstance(self.default, int) and self.low is not None
        return whole(env, self.name, self.default, int(self.low), None if self.high is None else int(self.high))

    def positive(self, env: Mapping[str, str], kind: type[N]) -> N:
        assert isinstance(self.default, int | float)
        return positive(env, self.name, kind(self.default), kind)


CONCURRENCY = Setting("FERRY_CONCURRENCY", 8, "registry operations in flight per import", 1, 64)
MAX_MANIFESTS = Setting("FERRY_MAX_MANIFESTS", DEFAULT_MAX_MANIFESTS, "manifests per import", 1, 10_000)
MAX_DESCRIPTORS = Setting("FERRY_MAX_DESCRIPTORS", DEFAULT_MAX_DESCRIPTORS, "descriptors per import", 1, 10_000_000)
MAX_PUBLIC_BLOB_BYTES = Setting(
    "FERRY_MAX_PUBLIC_BLOB_BYTES", DEFAULT_MAX_PUBLIC_BLOB_BYTES, "bytes per blob from an anonymous source", 1
)
RETRY_ATTEMPTS = Setting("FERRY_RETRY_ATTEMPTS", MAX_ATTEMPTS, "attempts per registry operation", 0, above=True)
RETRY_BUDGET = Setting(
    "FERRY_RETRY_BUDGET_SECONDS", RETRY_BUDGET_DEFAULT, "seconds an operation's attempts may take", 0, above=True
)
STALL_FLOOR = Setting(
    "FERRY_STALL_FLOOR_BYTES", STALL_FLOOR_DEFAULT, "bytes per second below which a body stalls", 0, above=True
)
STALL_WINDOW = Setting(
    "FERRY_STALL_WINDOW_SECONDS", STALL_WINDOW_DEFAULT, "seconds the stall floor is measured over", 0, above=True
)
MAX_DEQUEUE_COUNT = Setting("FERRY_MAX_DEQUEUE_COUNT", 5, "deliveries before a message goes to poison", 1, 100)
RETRY_DELAY = Setting("FERRY_RETRY_DELAY_SECONDS", 30.0, "seconds a failed message stays hidden", 0, 3600)
LEASE = Setting("FERRY_LEASE_SECONDS", 60.0, "seconds a message in hand stays hidden", 5, 3600)
MAX_POLLING = Setting("FERRY_MAX_POLLING_SECONDS", 0.5, "longest wait between looks at an empty queue", 0.1, 600)
RATELIMIT_FLOOR = Setting(
    "FERRY_RATELIMIT_FLOOR", 10, "pulls per window of a limited source kept in reserve (the pull budget)", 0
)
ARM_TIMEOUT = Setting("FERRY_ARM_TIMEOUT_SECONDS", 1800.0, "seconds an ARM import may run", 0, above=True)
ARM_ENDPOINT_SETTING = Setting("FERRY_ARM_ENDPOINT", ARM_ENDPOINT, "Azure Resource Manager's endpoint")

#: Every setting Ferry reads (named credentials aside: ``FERRY_CREDENTIAL_<NAME>_USERNAME`` /
#: ``_PASSWORD``).
SETTINGS: tuple[Setting, ...] = (
    Setting("AzureWebJobsStorage", None, "storage: a connection string (Azurite locally)"),
    Setting("AzureWebJobsStorage__accountName", None, "storage reached by identity"),
    Setting("AzureWebJobsStorage__queueServiceUri", None, "the queue service's URL (by identity)"),
    Setting("AzureWebJobsStorage__tableServiceUri", None, "the table service's URL (by identity)"),
    Setting("AzureWebJobsStorage__clientId", None, "the user-assigned identity"),
    Setting("AZURE_CLIENT_ID", None, "the user-assigned identity (when storage names none)"),
    Setting("FERRY_QUEUE", "imports", "the queue's name"),
    Setting("FERRY_TABLE", "imports", "the status table's name"),
    MAX_DEQUEUE_COUNT, RETRY_DELAY, LEASE, MAX_POLLING, CONCURRENCY,
    MAX_MANIFESTS, MAX_DESCRIPTORS, MAX_PUBLIC_BLOB_BYTES,
    STALL_FLOOR, STALL_WINDOW, RETRY_ATTEMPTS, RETRY_BUDGET,
    Setting("FERRY_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR"),
    Setting("FERRY_ALLOW_LOOPBACK", "false", "loopback registries may be reached (true for the CLI)"),
    Setting("FERRY_ALLOWED_REGISTRIES", "", "hosts that may be on a private address"),
    Setting("FERRY_INSECURE_REGISTRIES", "", "hosts that may be reached over plain HTTP"),
    Setting("FERRY_SOURCE_REGISTRIES", "", "when set, the only sources"),
    Setting("FERRY_REGISTRIES", "", "registry -> ARM resource ID (JSON)"),
    ARM_ENDPOINT_SETTING, ARM_TIMEOUT,
    Setting("FERRY_RULES_FILE", None, "the promotion and mirror rules file"),
    Setting("FERRY_MIRROR_SCHEDULE", None, "the timer's NCRONTAB schedule"),
    RATELIMIT_FLOOR,
    Setting("FERRY_ALLOW_INLINE_CREDENTIALS", "false", "accept inline credentials (sealed)"),
    Setting("FERRY_CREDENTIAL_KEY", None, "32 bytes, base64: the sealing key"),
    # Run events (read by shared/events/config.py, with FERRY_WEBHOOK_<NAME>_* and FERRY_EVENTGRID_<NAME>_*).
    Setting("FERRY_EVENT_SOURCE", "/ferry", "run events' CloudEvents source"),
    Setting("FERRY_EVENT_DELIVERY_SECONDS", 1200.0, "seconds a run event is retried at one destination", 0, above=True),
    Setting("FERRY_EVENT_TIMEOUT_SECONDS", 10.0, "seconds one delivery attempt may take", 0, above=True),
    # Set by App Service when its authentication (Easy Auth) is on (shared/service/requester.py).
    Setting("WEBSITE_AUTH_ENABLED", None, "App Service authentication is on: its principal headers count"),
    Setting("FERRY_SOURCE_USERNAME", None, "the source's username", reader="cli"),
    Setting("FERRY_SOURCE_PASSWORD", None, "the source's password", reader="cli"),
    Setting("FERRY_TARGET_USERNAME", None, "the target's username", reader="cli"),
    Setting("FERRY_TARGET_PASSWORD", None, "the target's password", reader="cli"),
    Setting("FERRY_SERVICE_URL", None, "a Ferry service to drive", reader="cli"),
    Setting("FERRY_FUNCTION_KEY", None, "the service's function key", reader="cli"),
    Setting("FERRY_SERVICE_SCOPE", None, "the service app's Entra scope (Easy Auth)", reader="cli"),
)  # fmt: skip


def positive(env: Mapping[str, str], name: str, default: N, kind: type[N]) -> N:
    """A positive number from ``name``, or ``default`` when it is unset."""
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not value > 0 or value != value:  # noqa: PLR0124 - NaN
        raise ConfigurationError(f"setting {name}: must be a positive number, not {text[:40]!r}")
    return value


def whole(env: Mapping[str, str], name: str, default: int, low: int, high: int | None) -> int:
    """A whole number of ASCII digits from ``name``, within ``low`` and ``high``."""
    text = env.get(name, "").strip() or str(default)
    if not (text.isascii() and text.isdigit()) or int(text) < low or (high is not None and int(text) > high):
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise ConfigurationError(f"setting {name}: must be a whole number {bounds}, not {text[:40]!r}")
    return int(text)


def _hosts(env: Mapping[str, str], name: str) -> frozenset[str]:
    return frozenset(h.strip().lower() for h in env.get(name, "").split(",") if h.strip())


def _proxy(env: Mapping[str, str], name: str) -> Proxy | None:
    for setting in (name, name.lower()):
        if env.get(setting, "").strip():
            return Proxy.parse(env[setting].strip(), setting)
    return None


def transport(env: Mapping[str, str], *, loopback_default: bool = False) -> TransportOptions:
    """The transport options (see :class:`TransportOptions` for each one's meaning)."""
    loopback = env.get("FERRY_ALLOW_LOOPBACK", "").strip().lower()
    no_proxy = env.get("NO_PROXY", env.get("no_proxy", ""))
    return TransportOptions(
        max_attempts=RETRY_ATTEMPTS.positive(env, int),
        retry_budget=RETRY_BUDGET.positive(env, float),
        stall_floor=STALL_FLOOR.positive(env, int),
        stall_window=STALL_WINDOW.positive(env, float),
        insecure_registries=_hosts(env, "FERRY_INSECURE_REGISTRIES"),
        allowed_registries=_hosts(env, "FERRY_ALLOWED_REGISTRIES"),
        allow_loopback=loopback in ("1", "true", "yes") if loopback else loopback_default,
        https_proxy=_proxy(env, "HTTPS_PROXY"),
        http_proxy=_proxy(env, "HTTP_PROXY"),
        no_proxy=tuple(h.strip().lower() for h in no_proxy.split(",") if h.strip()),
        ca_file=env.get("SSL_CERT_FILE") or None,
        ca_dir=env.get("SSL_CERT_DIR") or None,
    )


def limits(env: Mapping[str, str]) -> Limits:
    """``FERRY_MAX_MANIFESTS`` (1 to 10,000), ``FERRY_MAX_DESCRIPTORS`` and
    ``FERRY_MAX_PUBLIC_BLOB_BYTES`` (``0`` or ``none``: no limit), for the function app and the
    CLI alike."""
    blob = env.get("FERRY_MAX_PUBLIC_BLOB_BYTES", "").strip().lower()
    return Limits(
        max_manifests=MAX_MANIFESTS.whole(env),
        max_descriptors=MAX_DESCRIPTORS.whole(env),
        max_public_blob_bytes=None if blob in ("0", "none") else MAX_PUBLIC_BLOB_BYTES.whole(env),
    )


def log_level(env: Mapping[str, str]) -> str:
    """``FERRY_LOG_LEVEL``: DEBUG, INFO (the default), WARNING or ERROR."""
    level = env.get("FERRY_LOG_LEVEL", "").strip().upper() or "INFO"
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigurationError(f"setting FERRY_LOG_LEVEL: must be DEBUG, INFO, WARNING or ERROR, not {level[:20]!r}")
    return level


def registries(raw: str) -> dict[str, str]:
    """``FERRY_REGISTRIES``: ``{"prodacr": "/subscriptions/.../registries/prodacr"}``, keys as
    login servers."""
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
            raise ValueError("not an object of strings")
        return {parse_registry(k): v for k, v in doc.items()}
    except ValueError as exc:
        raise ConfigurationError(
            f"setting FERRY_REGISTRIES: must be a JSON object of registry -> resource ID ({exc})"
        ) from None


@dataclass(frozen=True)
class CommandLine:
    """What ``python -m shared.cli import`` reads from the environment, read once at start."""

    transport: TransportOptions
    limits: Limits
    concurrency: int = 8
    registries: dict[str, str] = field(default_factory=dict)
    arm_endpoint: str = ARM_ENDPOINT
    #: ``FERRY_SOURCE_USERNAME`` / ``FERRY_SOURCE_PASSWORD``: kept out of the process list.
    source_username: str | None = None
    source_password: Secret | None = field(default=None, repr=False)
    #: ``AZURE_SUBSCRIPTION_ID``: with ``--resource-group``, names the target's resource ID.
    subscription_id: str | None = None
    #: ``FERRY_TARGET_USERNAME`` / ``FERRY_TARGET_PASSWORD``: Basic credentials for the target.
    target_username: str | None = None
    target_password: Secret | None = field(default=None, repr=False)
    #: ``FERRY_SERVICE_URL``: a Ferry service to drive (``import --service``, ``jobs``).
    service_url: str | None = None
    #: ``FERRY_FUNCTION_KEY``: the service's function key; ``FERRY_SERVICE_SCOPE``: with Easy
    #: Auth, the Entra scope of the app to get a token for.
    function_key: Secret | None = field(default=None, repr=False)
    service_scope: str | None = None
    #: ``FERRY_RULES_FILE``: where ``import --verify POLICY`` finds its policy.
    rules_file: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CommandLine:
        def secret(name: str) -> Secret | None:
            return Secret(env[name]) if env.get(name) else None

        return cls(
            transport=transport(env, loopback_default=True),
            limits=limits(env),
            concurrency=CONCURRENCY.whole(env),
            registries=registries(env.get("FERRY_REGISTRIES", "")),
            arm_endpoint=env.get("FERRY_ARM_ENDPOINT") or ARM_ENDPOINT,
            subscription_id=env.get("AZURE_SUBSCRIPTION_ID") or None,
            source_username=env.get("FERRY_SOURCE_USERNAME") or None,
            source_password=secret("FERRY_SOURCE_PASSWORD"),
            target_username=env.get("FERRY_TARGET_USERNAME") or None,
            target_password=secret("FERRY_TARGET_PASSWORD"),
            service_url=env.get("FERRY_SERVICE_URL") or None,
            function_key=secret("FERRY_FUNCTION_KEY"),
            service_scope=env.get("FERRY_SERVICE_SCOPE") or None,
            rules_file=env.get("FERRY_RULES_FILE") or None,
        )
