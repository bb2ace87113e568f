"""The OCI distribution API over httpx: authentication, transport, retries, error mapping."""

from shared.http.policy import TransportOptions
from shared.registry.client import RegistryClient, next_link

__all__ = ["RegistryClient", "TransportOptions", "next_link"]
