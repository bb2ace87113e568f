"""The one credential resolver: a given secret, else a named credential, else the Entra
identity for an ACR, else anonymous."""

from __future__ import annotations

import pytest

from shared.credentials import AccessToken, Anonymous, Credential, EntraIdentity, Secret, UsernamePassword
from shared.credentials.resolver import Resolver, from_secret
from shared.errors import ConfigurationError


def _named(name: str) -> Credential:
    if name == "dockerhub":
        return UsernamePassword("hub-user", Secret("hub-pat-123456"))
    raise ConfigurationError(f"credential {name!r} is not configured")


class _Identity:
    def get_token(self, *scopes: str) -> object:
        raise AssertionError("not asked for a token here")


def test_the_order_is_given_then_named_then_identity_then_anonymous() -> None:
    resolve = Resolver(_named, _Identity)
    given = resolve("myacr.azurecr.io", name="dockerhub", given=("ci", Secret("given-secret-1")))
    assert isinstance(given, UsernamePassword) and given.username == "ci"
    named = resolve("docker.io", name="dockerhub")
    assert isinstance(named, UsernamePassword) and named.username == "hub-user"
    assert isinstance(resolve("myacr.azurecr.io"), EntraIdentity)
    assert resolve("ghcr.io") == Anonymous()


def test_a_password_alone_is_an_access_token() -> None:
    assert isinstance(from_secret(None, Secret("token-only-1")), AccessToken)
    assert isinstance(from_secret("", Secret("token-only-2")), AccessToken)
    assert isinstance(from_secret("u", Secret("with-user-3")), UsernamePassword)


def test_an_unknown_name_says_which_setting_is_missing() -> None:
    with pytest.raises(ConfigurationError, match="'nope' is not configured"):
        Resolver(_named)("docker.io", name="nope")
