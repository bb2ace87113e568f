"""Who Ferry is to a registry: anonymous, username/password, an ACR token, or an Entra identity."""

from shared.credentials.model import (
    ACR_AUDIENCE,
    ACR_NULL_USERNAME,
    AccessToken,
    Anonymous,
    Credential,
    EntraIdentity,
    Secret,
    UsernamePassword,
)

__all__ = [
    "ACR_AUDIENCE",
    "ACR_NULL_USERNAME",
    "AccessToken",
    "Anonymous",
    "Credential",
    "EntraIdentity",
    "Secret",
    "UsernamePassword",
]
