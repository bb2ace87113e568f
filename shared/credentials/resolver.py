"""From what a request, a rule or the command line names to the :data:`Credential` to use, in
one place. The order is the same everywhere:

1. a secret given with the import (sealed inline credentials, ``--username``/``--password``):
   Basic with a username, an access token without one;
2. a named credential (``"credential": "dockerhub"`` → ``FERRY_CREDENTIAL_DOCKERHUB_*``);
3. for an Azure Container Registry, the Entra identity (the function app's managed identity,
   ``DefaultAzureCredential`` on a terminal);
4. anonymous.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.credentials.model import AccessToken, Anonymous, Credential, EntraIdentity, Secret, UsernamePassword
from shared.oci.reference import is_acr

#: A named credential's lookup: its credential, or :class:`ConfigurationError` naming the setting.
Named = Callable[[str], Credential]


def from_secret(username: str | None, password: Secret) -> Credential:
    """Basic credentials with a username; a password alone is an access token (exchanged at ACR,
    sent as a bearer token elsewhere)."""
    return UsernamePassword(username, password) if username else AccessToken(password)


class Resolver:
    """Credentials for registries, as one deployment (or one terminal) is configured.

    ``named`` looks up named credentials; ``identity`` makes the Entra token credential, asked
    for only when an ACR needs it (building ``DefaultAzureCredential`` costs an import)."""

    def __init__(self, named: Named | None = None, identity: Callable[[], Any] | None = None) -> None:
        self._named = named
        self._identity = identity

    def __call__(
        self, registry: str, *, name: str | None = None, given: tuple[str | None, Secret] | None = None
    ) -> Credential:
        if given is not None:
            return from_secret(*given)
        if name:
            if self._named is None:
                raise ValueError(f"no named credentials here (asked for {name!r})")
            return self._named(name)
        return self.identity() if is_acr(registry) else Anonymous()

    def identity(self) -> EntraIdentity:
        """The Entra identity (``DefaultAzureCredential`` unless another was given)."""
        if self._identity is None:
            from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - only where an ACR is reached

            self._identity = DefaultAzureCredential
        return EntraIdentity(self._identity())
