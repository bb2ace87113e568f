"""Where Ferry may connect, and how: the transport options one import runs with.

Plain HTTP is allowed only for loopback hosts and hosts listed in ``FERRY_INSECURE_REGISTRIES``;
TLS is verified everywhere else. A token realm must be HTTPS (or plain HTTP where the registry
itself may be), and never a literal private, link-local or reserved address other than loopback.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from shared.errors import ConfigurationError, InsecureEndpointError


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
class Proxy:
    """An HTTP proxy (``http://[user:password@]host:port``): ``CONNECT`` tunnels for https,
    absolute-form requests for plain http."""

    host: str
    port: int
    #: The ``Proxy-Authorization`` value, when the proxy URL carries credentials.
    authorization: bytes | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str, setting: str) -> Proxy:
        """``text`` as a proxy, or :class:`ConfigurationError` naming ``setting``."""
        try:
            url = httpx.URL(text if "://" in text else f"http://{text}")
        except httpx.InvalidURL:
            url = None
        if url is None or url.scheme != "http" or not url.host:
            raise ConfigurationError(f"setting {setting}: must be an http://host:port proxy URL")
        authorization = None
        if url.username:
            pair = f"{url.username}:{url.password or ''}".encode()  # httpx has decoded them
            authorization = b"Basic " + base64.b64encode(pair)
        return cls(url.host, url.port or 80, authorization)


def _bypassed(host: str, no_proxy: tuple[str, ...]) -> bool:
    """``NO_PROXY`` as curl reads it: ``*``, or names that match the host or a domain above it."""
    host = host.lower()
    for name in (host_of(entry).lstrip(".") for entry in no_proxy):
        if name in ("*", host) or host.endswith("." + name):
            return True
    return False


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """How Ferry talks to registries. Every field has a production default."""

    #: Registries (``host[:port]``) that may be reached over plain HTTP besides loopback ones.
    insecure_registries: frozenset[str] = frozenset()
    #: Hosts (``host`` or ``host:port``) that may be on private, link-local or loopback addresses
    #: (``FERRY_ALLOWED_REGISTRIES``); every other such destination is refused (SSRF).
    allowed_registries: frozenset[str] = frozenset()
    #: Loopback destinations (``FERRY_ALLOW_LOOPBACK``): on for the CLI and local runs, off in Azure.
    allow_loopback: bool = False
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
    #: Slow bodies: a manifest must arrive within ``manifest_deadline`` seconds, and a blob's
    #: reads may take ``body_grace`` seconds plus its size at ``min_throughput`` bytes/s, all
    #: told; a registry that trickles bytes forever fails instead of holding a worker.
    manifest_deadline: float = 60.0
    body_grace: float = 60.0
    min_throughput: int = 32 * 1024
    #: Tokens are renewed this many seconds before they expire (at most a quarter of their life).
    token_margin: float = 10.0
    user_agent: str = "ferry/0.1"
    #: ``HTTPS_PROXY`` / ``HTTP_PROXY`` (also lower-case) and ``NO_PROXY``. Loopback is never
    #: proxied. Through a proxy the proxy resolves names, so only literal addresses can be
    #: checked for SSRF (and ``FERRY_ALLOWED_REGISTRIES`` still applies).
    https_proxy: Proxy | None = None
    http_proxy: Proxy | None = None
    no_proxy: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, loopback_default: bool = False) -> TransportOptions:
        env = os.environ if environ is None else environ

        def hosts(name: str) -> frozenset[str]:
            return frozenset(h.strip().lower() for h in env.get(name, "").split(",") if h.strip())

        def proxy(name: str) -> Proxy | None:
            for setting in (name, name.lower()):
                if env.get(setting, "").strip():
                    return Proxy.parse(env[setting].strip(), setting)
            return None

        loopback = env.get("FERRY_ALLOW_LOOPBACK", "").strip().lower()
        no_proxy = env.get("NO_PROXY", env.get("no_proxy", ""))
        return cls(
            insecure_registries=hosts("FERRY_INSECURE_REGISTRIES"),
            allowed_registries=hosts("FERRY_ALLOWED_REGISTRIES"),
            allow_loopback=loopback in ("1", "true", "yes") if loopback else loopback_default,
            https_proxy=proxy("HTTPS_PROXY"),
            http_proxy=proxy("HTTP_PROXY"),
            no_proxy=tuple(h.strip().lower() for h in no_proxy.split(",") if h.strip()),
        )

    def proxy_for(self, scheme: str, host: str) -> Proxy | None:
        """The proxy to reach ``host`` over ``scheme`` through, if any."""
        proxy = self.https_proxy if scheme == "https" else self.http_proxy
        if proxy is None or is_loopback(host) or _bypassed(host, self.no_proxy):
            return None
        return proxy

    def allowed(self, authority: str) -> bool:
        authority = authority.lower()
        return authority in self.allowed_registries or host_of(authority) in self.allowed_registries

    def refusal(self, authority: str, addresses: list[str] | None = None) -> str | None:
        """Why ``authority`` may not be a destination, or None. ``addresses`` are what its name
        resolved to (checked at connection time); without them only a literal address is judged."""
        if self.allowed(authority):
            return None
        host = host_of(authority)
        for address in [host, *(addresses or [])]:
            if is_loopback(address) and not self.allow_loopback:
                return f"{authority} is on loopback address {address}"
            if is_private_literal(address):
                return f"{authority} is on private, link-local or reserved address {address}"
        return None

    def refuse(self, authority: str, addresses: list[str], *, what: str) -> None:
        """Raises :class:`InsecureEndpointError` when :meth:`refusal` has a reason; the check a
        transport runs on every connection it opens (``what`` says for whom)."""
        reason = self.refusal(authority, addresses)
        if reason is not None:
            raise InsecureEndpointError(f"{what}: refused: {reason} (FERRY_ALLOWED_REGISTRIES can allow it)")

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
