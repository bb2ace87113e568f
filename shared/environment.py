"""Every environment variable Ferry reads, read here and nowhere else, each checked once: a bad
value raises :class:`ConfigurationError` naming the setting. Without pydantic, so that the
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

from shared.credentials import Secret
from shared.errors import ConfigurationError
from shared.http.policy import MAX_ATTEMPTS, RETRY_BUDGET, STALL_FLOOR, STALL_WINDOW, Proxy, TransportOptions
from shared.importing.spec import (
    DEFAULT_MAX_DESCRIPTORS,
    DEFAULT_MAX_MANIFESTS,
    DEFAULT_MAX_PUBLIC_BLOB_BYTES,
    Limits,
)
from shared.oci.reference import parse_registry

N = TypeVar("N", int, float)
ARM_ENDPOINT = "https://management.azure.com"


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
        max_attempts=positive(env, "FERRY_RETRY_ATTEMPTS", MAX_ATTEMPTS, int),
        retry_budget=positive(env, "FERRY_RETRY_BUDGET_SECONDS", RETRY_BUDGET, float),
        stall_floor=positive(env, "FERRY_STALL_FLOOR_BYTES", STALL_FLOOR, int),
        stall_window=positive(env, "FERRY_STALL_WINDOW_SECONDS", STALL_WINDOW, float),
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
        max_manifests=whole(env, "FERRY_MAX_MANIFESTS", DEFAULT_MAX_MANIFESTS, 1, 10_000),
        max_descriptors=whole(env, "FERRY_MAX_DESCRIPTORS", DEFAULT_MAX_DESCRIPTORS, 1, 10_000_000),
        max_public_blob_bytes=None
        if blob in ("0", "none")
        else whole(env, "FERRY_MAX_PUBLIC_BLOB_BYTES", DEFAULT_MAX_PUBLIC_BLOB_BYTES, 1, None),
    )


def ratelimit_floor(env: Mapping[str, str]) -> int:
    """``FERRY_RATELIMIT_FLOOR``: pulls of a limited source's window kept in reserve for people (a
    mirror pass also stops asking a source whose ``ratelimit-remaining`` falls under it); default 10."""
    return whole(env, "FERRY_RATELIMIT_FLOOR", 10, 0, None)


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

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CommandLine:
        def secret(name: str) -> Secret | None:
            return Secret(env[name]) if env.get(name) else None

        return cls(
            transport=transport(env, loopback_default=True),
            limits=limits(env),
            concurrency=whole(env, "FERRY_CONCURRENCY", 8, 1, 64),
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
        )
