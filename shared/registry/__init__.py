"""The OCI distribution API over httpx: authentication, transport, retries, error mapping."""

from shared.registry.client import RegistryClient, next_link
from shared.registry.policy import TransportOptions

__all__ = ["RegistryClient", "TransportOptions", "next_link"]
