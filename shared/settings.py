"""Every setting Ferry reads, in one pydantic model, read once at start-up.

A missing or bad setting fails with a :class:`ConfigurationError` naming it. Secrets (named
registry credentials, the inline-credential key) are held as :class:`Secret` and never printed.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared import environment
from shared.arm import ARM_ENDPOINT
from shared.credentials import Anonymous, Credential, Secret
from shared.credentials.resolver import from_secret
from shared.errors import ConfigurationError
from shared.events.config import EventsConfig, events
from shared.http.policy import TransportOptions
from shared.importing.spec import Limits

_CREDENTIAL = re.compile(r"FERRY_CREDENTIAL_([A-Z0-9_]+)_(USERNAME|PASSWORD)")


#: Settings field -> the app setting it is read from.
ENV_NAMES = {
    "storage_connection_string": "AzureWebJobsStorage",
    "storage_account": "AzureWebJobsStorage__accountName",
    "queue_service_uri": "AzureWebJobsStorage__queueServiceUri",
    "table_service_uri": "AzureWebJobsStorage__tableServiceUri",
    "client_id": "AzureWebJobsStorage__clientId",
    "queue_name": "FERRY_QUEUE",
    "table_name": "FERRY_TABLE",
    "max_dequeue_count": "FERRY_MAX_DEQUEUE_COUNT",
    "retry_delay": "FERRY_RETRY_DELAY_SECONDS",
    "lease": "FERRY_LEASE_SECONDS",
    "max_polling": "FERRY_MAX_POLLING_SECONDS",
    "concurrency": "FERRY_CONCURRENCY",
    "allow_inline_credentials": "FERRY_ALLOW_INLINE_CREDENTIALS",
    "rules_file": "FERRY_RULES_FILE",
    "ratelimit_floor": "FERRY_RATELIMIT_FLOOR",
    "arm_endpoint": "FERRY_ARM_ENDPOINT",
    "arm_timeout": "FERRY_ARM_TIMEOUT_SECONDS",
}
#: Every app setting Ferry's code reads (named credentials are FERRY_CREDENTIAL_<NAME>_*).
SETTING_NAMES = frozenset(s.name for s in environment.SETTINGS if s.reader == "app")


def _bounded(setting: environment.Setting) -> Any:
    """A field with the setting's declared default and bounds."""
    if setting.above:
        return Field(setting.default, gt=setting.low, le=setting.high)
    return Field(setting.default, ge=setting.low, le=setting.high)


def credential_key(name: str) -> str:
    """A credential's name as its settings and a request may spell it (``DOCKER_HUB``,
    ``docker-hub``), as one key."""
    return name.lower().replace("_", "-")


def credential_env(name: str) -> str:
    """``dockerhub`` -> ``FERRY_CREDENTIAL_DOCKERHUB``: the prefix of a named credential's settings."""
    return "FERRY_CREDENTIAL_" + name.upper().replace("-", "_")


class NamedCredential(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    username: str | None = None
    password: Secret

    def credential(self) -> Credential:
        return from_secret(self.username, self.password)


class Settings(BaseModel):
    """What Ferry is configured with. Build with :meth:`from_env`."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    #: ``AzureWebJobsStorage``: a connection string (Azurite locally).
    storage_connection_string: str | None = None
    #: ``AzureWebJobsStorage__accountName`` / ``__queueServiceUri`` / ``__tableServiceUri``:
    #: storage reached by identity in Azure.
    storage_account: str | None = None
    queue_service_uri: str | None = None
    table_service_uri: str | None = None
    #: ``AzureWebJobsStorage__clientId`` (or ``AZURE_CLIENT_ID``): the user-assigned identity.
    client_id: str | None = None
    queue_name: str = Field("imports", pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
    table_name: str = Field("imports", pattern=r"^[A-Za-z][A-Za-z0-9]{2,62}$")
    #: As host.json's ``maxDequeueCount``: deliveries before a message goes to ``<queue>-poison``.
    max_dequeue_count: int = _bounded(environment.MAX_DEQUEUE_COUNT)
    #: Seconds a failed message stays invisible before its next delivery (host.json ``visibilityTimeout``).
    retry_delay: float = _bounded(environment.RETRY_DELAY)
    #: Seconds a message is hidden from other workers while one works on it (renewed while it runs).
    lease: float = _bounded(environment.LEASE)
    #: Local worker: the longest wait between looks at an empty queue (host.json
    #: ``maxPollingInterval``; the host's minimum is 100 ms).
    max_polling: float = _bounded(environment.MAX_POLLING)
    concurrency: int = _bounded(environment.CONCURRENCY)
    #: ``FERRY_MAX_MANIFESTS``, ``FERRY_MAX_PUBLIC_BLOB_BYTES``, ``FERRY_MAX_DESCRIPTORS`` (read by
    #: :func:`shared.environment.limits`).
    limits: Limits = Field(default_factory=Limits)
    allow_inline_credentials: bool = False
    #: ``FERRY_RULES_FILE``: promotion and mirror rules (YAML or JSON), shipped with the app.
    rules_file: str | None = None
    #: Pulls of a limited source's window kept in reserve for people: the shared pull budget
    #: never spends them, and a mirror pass stops asking a source whose ``ratelimit-remaining``
    #: falls under this.
    ratelimit_floor: int = _bounded(environment.RATELIMIT_FLOOR)
    #: ``FERRY_REGISTRIES``: JSON object, ACR name or login server -> ARM resource ID (ARM engine).
    registries: dict[str, str] = Field(default_factory=dict)
    #: ``FERRY_SOURCE_REGISTRIES``: when set, the only registries imports may come from.
    source_registries: frozenset[str] = frozenset()
    arm_endpoint: str = ARM_ENDPOINT
    arm_timeout: float = _bounded(environment.ARM_TIMEOUT)
    #: ``FERRY_CREDENTIAL_KEY``: 32 bytes, base64, for sealing inline credentials in queue messages.
    credential_key: Secret | None = None
    credentials: dict[str, NamedCredential] = Field(default_factory=dict)
    transport: TransportOptions = Field(default_factory=TransportOptions)
    #: Where run events go (``FERRY_WEBHOOK_*``, ``FERRY_EVENTGRID_*``, ``FERRY_EVENT_*``).
    events: EventsConfig = Field(default_factory=EventsConfig)
    #: ``WEBSITE_AUTH_ENABLED``: App Service authentication is on (its principal headers count).
    easy_auth: bool = False

    def credential(self, name: str | None) -> Credential:
        if name is None:
            return Anonymous()
        return named_credential(self.credentials, name)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read the environment (app settings); :class:`ConfigurationError` names a bad one."""
        values: dict[str, Any] = {}
        for field, setting in ENV_NAMES.items():
            if env.get(setting, "") != "":
                values[field] = env[setting]
        values.setdefault("client_id", env.get("AZURE_CLIENT_ID") or None)
        if "storage_connection_string" not in values and not (
            "storage_account" in values or "queue_service_uri" in values
        ):
            raise ConfigurationError(
                "setting AzureWebJobsStorage: missing (a connection string, or AzureWebJobsStorage__accountName "
                "for storage by identity)"
            )
        values["limits"] = environment.limits(env)
        key = env.get("FERRY_CREDENTIAL_KEY", "")
        if key:
            try:
                raw = base64.b64decode(key, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                raise ConfigurationError("setting FERRY_CREDENTIAL_KEY: must be 32 bytes, base64-encoded")
            values["credential_key"] = Secret(key)
        values["credentials"] = named_credentials(env)
        values["registries"] = environment.registries(env.get("FERRY_REGISTRIES", ""))
        values["events"] = events(env)
        values["easy_auth"] = env.get("WEBSITE_AUTH_ENABLED", "").strip().lower() == "true"
        values["source_registries"] = _registry_list(env.get("FERRY_SOURCE_REGISTRIES", ""), "FERRY_SOURCE_REGISTRIES")
        try:
            values["transport"] = environment.transport(env)
            settings = cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else "?"
            raise ConfigurationError(f"setting {ENV_NAMES.get(field, field)}: {first['msg']}") from None
        if settings.allow_inline_credentials and settings.credential_key is None:
            raise ConfigurationError("setting FERRY_CREDENTIAL_KEY: required when FERRY_ALLOW_INLINE_CREDENTIALS is on")
        return settings


def _registry_list(raw: str, setting: str) -> frozenset[str]:
    from shared.oci.reference import parse_registry  # noqa: PLC0415

    try:
        return frozenset(parse_registry(r) for r in raw.split(",") if r.strip())
    except ValueError as exc:
        raise ConfigurationError(f"setting {setting}: {exc}") from None


def named_credential(credentials: Mapping[str, NamedCredential], name: str) -> Credential:
    """The credential configured as ``name`` (``FERRY_CREDENTIAL_<NAME>_*``), or an error naming
    the settings to set."""
    found = credentials.get(credential_key(name))
    if found is None:
        prefix = credential_env(name)
        raise ConfigurationError(
            f"credential {name!r} is not configured (set {prefix}_USERNAME and {prefix}_PASSWORD; "
            "a password alone is an access token)"
        )
    return found.credential()


def named_credentials(env: Mapping[str, str]) -> dict[str, NamedCredential]:
    parts: dict[str, dict[str, str]] = {}
    for key, value in env.items():
        match = _CREDENTIAL.fullmatch(key)
        if match and value:
            parts.setdefault(credential_key(match.group(1)), {})[match.group(2).lower()] = value
    out = {}
    for name, fields in parts.items():
        if "password" not in fields:
            raise ConfigurationError(f"setting {credential_env(name)}_PASSWORD: missing (its USERNAME is set)")
        out[name] = NamedCredential(username=fields.get("username"), password=Secret(fields["password"]))
    return out
