"""Credential values. Secrets are wrapped in :class:`Secret`, which never prints its value:
a credential can be logged, put in an exception or repr'd without leaking anything.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.text import register_secret

#: Entra ID scope for tokens that ACR's ``/oauth2/exchange`` accepts. The ACR audience (not ARM's)
#: keeps working on registries with ``azureADAuthenticationAsArmPolicy`` disabled.
ACR_AUDIENCE = "https://containerregistry.azure.net/.default"
#: The username that tells ACR the password is an ACR refresh token (Azure/acr AAD-OAuth.md).
ACR_NULL_USERNAME = "00000000-0000-0000-0000-000000000000"


class Secret:
    """A secret string that shows as ``***`` everywhere but :meth:`reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)  # redacted from every message from now on, echoed or not

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # refuse to be pickled into a queue message by accident
        raise TypeError("a Secret cannot be pickled")


class TokenSource(Protocol):
    """What Ferry needs of an ``azure.core.credentials.TokenCredential`` (sync or async)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


class _Sends:
    """What a credential sends, asked the same way of every kind, so that auth code never
    branches on the class: a Basic ``login``, a ``registry_token`` sent as a bearer token as is,
    an ``acr_refresh_token`` for ACR's ``/oauth2/token``, an Entra token to exchange at ACR
    (``exchangeable``, :meth:`entra_token`). Each answers ``None``/``False`` where it has none."""

    __slots__ = ()
    #: The Entra tenant to exchange in, when known (else read from the token's ``tid``).
    tenant_id: str | None = None

    def login(self) -> tuple[str, Secret] | None:
        return None

    def registry_token(self) -> Secret | None:
        return None

    def acr_refresh_token(self) -> Secret | None:
        return None

    @property
    def exchangeable(self) -> bool:
        return False

    @property
    def acr_only(self) -> bool:
        """Signs in to Azure Container Registry only (an Entra identity has nothing else to send)."""
        return False

    async def entra_token(self) -> str:
        raise TypeError(f"{type(self).__name__} has no Entra token")

    def describe(self) -> str:
        """Who Ferry is to a registry, for messages (never a secret): ``user ci``."""
        return ""


@dataclass(frozen=True, slots=True)
class Anonymous(_Sends):
    """No credential: anonymous pulls, or anonymous tokens from the realm."""


@dataclass(frozen=True, slots=True)
class UsernamePassword(_Sends):
    """Basic credentials: htpasswd, Docker Hub user + PAT, ACR admin user, a service principal
    (app id + secret), an ACR repository-scoped token, or ACR's null-GUID user with a refresh token."""

    username: str
    password: Secret

    @property
    def is_acr_refresh_token(self) -> bool:
        return self.username == ACR_NULL_USERNAME

    def login(self) -> tuple[str, Secret]:
        return self.username, self.password

    def acr_refresh_token(self) -> Secret | None:
        return self.password if self.is_acr_refresh_token else None

    def describe(self) -> str:
        return "the refresh token" if self.is_acr_refresh_token else f"user {self.username}"


@dataclass(frozen=True, slots=True)
class AccessToken(_Sends):
    """A token with no username. On ACR it is an Entra access token, exchanged for an ACR refresh
    token; elsewhere it is sent as a bearer token as is."""

    token: Secret

    def registry_token(self) -> Secret:
        return self.token

    @property
    def exchangeable(self) -> bool:
        return True

    async def entra_token(self) -> str:
        return self.token.reveal()

    def describe(self) -> str:
        return "the access token"


@dataclass(frozen=True, slots=True)
class EntraIdentity(_Sends):
    """A managed identity or any other Entra ``TokenCredential``; exchanged at ACR."""

    source: TokenSource = field(repr=False)
    tenant_id: str | None = None

    @property
    def exchangeable(self) -> bool:
        return True

    @property
    def acr_only(self) -> bool:
        return True

    async def entra_token(self) -> str:
        return await get_token(self.source, ACR_AUDIENCE)

    def describe(self) -> str:
        return "the Entra identity"


async def get_token(source: TokenSource, scope: str) -> str:
    """A token for ``scope`` from an ``azure.core`` token credential, sync or async, registered as
    a secret. A sync credential may block on IMDS: it is asked in a thread, off the event loop."""
    if inspect.iscoroutinefunction(source.get_token):
        result = await source.get_token(scope)
    else:
        result = await asyncio.to_thread(source.get_token, scope)
    token = getattr(result, "token", None)
    if not isinstance(token, str):
        raise TypeError("the token credential returned no token")
    register_secret(token)
    return token


Credential = Anonymous | UsernamePassword | AccessToken | EntraIdentity
