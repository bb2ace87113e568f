"""A stand-in for Entra ID: a ``TokenCredential`` that mints tokens the test token server's
``/oauth2/exchange`` accepts. Entra cannot run here; this follows what ACR needs of it: a JWT
for the ACR audience with the tenant (``tid``) and object id (``oid``) claims."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from azure.core.credentials import AccessToken

ENTRA_SECRET = "fake-entra-signing-secret-for-tests-only-0123456789"
ACR_AUDIENCE_CLAIM = "https://containerregistry.azure.net"


class FakeTokenCredential:
    """Sync ``azure.core.credentials.TokenCredential``; counts its calls."""

    def __init__(self, tenant: str = "tenant-one", oid: str | None = None, lifetime: int = 3600) -> None:
        self.tenant = tenant
        self.oid = oid or str(uuid.uuid4())
        self.lifetime = lifetime
        self.calls: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls.append(scopes)
        if scopes != (ACR_AUDIENCE_CLAIM + "/.default",):
            raise ValueError(f"unexpected scopes {scopes}")
        now = int(time.time())
        claims = {
            "aud": ACR_AUDIENCE_CLAIM,
            "tid": self.tenant,
            "oid": self.oid,
            "iat": now,
            "exp": now + self.lifetime,
        }
        return AccessToken(jwt.encode(claims, ENTRA_SECRET, algorithm="HS256"), now + self.lifetime)

    def close(self) -> None:
        pass


class AsyncFakeTokenCredential(FakeTokenCredential):
    """The same, as ``azure.core.credentials_async.AsyncTokenCredential``."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:  # type: ignore[override]
        return FakeTokenCredential.get_token(self, *scopes, **kwargs)
