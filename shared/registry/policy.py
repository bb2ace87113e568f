"""Where Ferry may connect, and how: the transport options one import runs with.

Plain HTTP is allowed only for loopback hosts and hosts listed in ``FERRY_INSECURE_REGISTRIES``;
TLS is verified everywhere else. A token realm must be HTTPS (or plain HTTP where the registry
itself may be), and never a literal private, link-local or reserved address other than loopback.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

import httpx

from shared.errors import InsecureEndpointError


def host_of(authority: str) -> str:
    """``host`` from ``host[:port]`` or ``[v6]:port``."""
    if authority.startswith("["):
        return authority[1 : authority.find("]")]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_private_literal(host: str) -> bool:
    """A literal address that is private, link-local (cloud metadata), reserved or unspecified."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_loopback and (
        address.is_private or address.is_link_local or address.is_reserved or address.is_unspecified
    )


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """How Ferry talks to registries. Every field has a production default."""

    #: Registries (``host[:port]``) that may be reached over plain HTTP besides loopback ones.
    insecure_registries: frozenset[str] = frozenset()
    #: Attempts per request for retryable failures (429, 408, 5xx, connection errors).
    max_attempts: int = 5
    #: First backoff in seconds; doubles each attempt, with full jitter.
    backoff_base: float = 0.5
    #: Longest single wait, including a registry's ``Retry-After``.
    backoff_cap: float = 30.0
    #: Total time budget for one request's retries, in seconds.
    retry_budget: float = 120.0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    #: Connections per registry host.
    max_connections: int = 16
    #: Tokens are renewed this many seconds before they expire (at most a quarter of their life).
    token_margin: float = 10.0
    user_agent: str = "ferry/0.1"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> TransportOptions:
        env = os.environ if environ is None else environ
        raw = env.get("FERRY_INSECURE_REGISTRIES", "")
        return cls(insecure_registries=frozenset(h.strip().lower() for h in raw.split(",") if h.strip()))

    def allows_http(self, authority: str) -> bool:
        return is_loopback(host_of(authority)) or authority.lower() in self.insecure_registries

    def scheme_for(self, authority: str) -> str:
        return "http" if self.allows_http(authority) else "https"

    def check_url(self, url: httpx.URL, what: str) -> None:
        """Refuse plain HTTP to a host that may not use it (also on redirects)."""
        if url.scheme == "https":
            return
        authority = url.netloc.decode("ascii")
        if url.scheme != "http" or not self.allows_http(authority):
            raise InsecureEndpointError(
                f"{what}: refusing {url.scheme}://{authority}: plain HTTP is allowed only for "
                "loopback hosts and FERRY_INSECURE_REGISTRIES"
            )

    def check_realm(self, realm: str, registry: str) -> httpx.URL:
        """A token realm Ferry may send credentials to, or :class:`InsecureEndpointError`."""
        try:
            url = httpx.URL(realm)
        except (httpx.InvalidURL, TypeError) as exc:
            raise InsecureEndpointError(f"token realm of {registry} is not a URL") from exc
        host = url.host
        if not host or url.scheme not in ("http", "https"):
            raise InsecureEndpointError(f"token realm of {registry} is not an http(s) URL")
        if is_private_literal(host):
            raise InsecureEndpointError(f"token realm of {registry} is on private address {host}: refused")
        self.check_url(url, f"token realm of {registry}")
        return url
