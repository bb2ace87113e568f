"""Where Ferry may connect, and how: the transport options one import runs with.

Plain HTTP is allowed only for loopback hosts and hosts listed in ``FERRY_INSECURE_REGISTRIES``;
TLS is verified everywhere else. A token realm must be HTTPS (or plain HTTP where the registry
itself may be), and never a literal private, link-local or reserved address other than loopback.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.errors import ConfigurationError, InsecureEndpointError
from shared.http.retry import RetryPolicy


def host_of(authority: str) -> str:
    """``host`` from ``host[:port]`` or ``[v6]:port``."""
    if authority.startswith("["):
        return authority[1 : authority.find("]")]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


#: Addresses that count as global but are a cloud's own: Azure's WireServer (host agent, DHCP,
#: DNS; reachable from every VM), besides the link-local metadata endpoints ``not is_global``
#: already covers (169.254.169.254; Alibaba's 100.100.100.200 is in the shared 100.64.0.0/10).
_CLOUD_INTERNAL = frozenset({ipaddress.ip_address("168.63.129.16")})
#: NAT64's well-known prefix (RFC 6052): the last 32 bits are an IPv4 address.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMERIC = re.compile(r"[0-9a-fA-FxX.]+")


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an address when it is one in any spelling ``inet_aton`` takes (and so the C
    resolver, curl and proxies do): ``2852039166``, ``0xa9fea9fe``, ``169.254.43518`` and octal
    ``0251.0376.0251.0376`` are all 169.254.169.254. None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not _NUMERIC.fullmatch(host) or not any(c.isdigit() for c in host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for: IPv4-mapped, 6to4 (2002::/16), NAT64."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@functools.lru_cache(maxsize=1024)  # a pure function of the name, asked on every request
def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    address = literal_address(host)
    if isinstance(address, ipaddress.IPv6Address):
        address = _embedded_ipv4(address) or address
    return address is not None and address.is_loopback


def address_refusal(host: str) -> str | None:
    """Why a literal address (in any spelling) may not be a destination, or None: anything not
    globally routable (private, shared, link-local, reserved, unspecified, multicast) and the
    cloud-internal addresses; an IPv6 address that embeds a refused IPv4 one is refused with it.
    Loopback is judged apart (it may be allowed). A name is not judged here: what it resolves
    to is, where the connection is made."""
    address = literal_address(host)
    if address is None or is_loopback(host):
        return None
    if isinstance(address, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(address)) is not None:
        reason = address_refusal(str(embedded))
        return f"{reason} (embedded in {address})" if reason else None
    if address in _CLOUD_INTERNAL:
        return f"cloud-internal address {address}"
    if address.is_multicast:
        return f"multicast address {address}"
    if not address.is_global:
        return f"private, link-local or reserved address {address}"
    return None


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


#: Defaults of the stall floor: 32 KiB/s over any 30 s spent waiting on a peer.
STALL_FLOOR = 32 * 1024
STALL_WINDOW = 30.0
#: Defaults of the retry policy: attempts per operation, and the seconds they may take in all.
MAX_ATTEMPTS = 5
RETRY_BUDGET = 120.0


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
    #: Attempts per operation for retryable failures (429, 408, 5xx, connection errors):
    #: ``FERRY_RETRY_ATTEMPTS``.
    max_attempts: int = MAX_ATTEMPTS
    #: First backoff in seconds; doubles each attempt, with full jitter.
    backoff_base: float = 0.5
    #: Longest single wait, including a registry's ``Retry-After``.
    backoff_cap: float = 30.0
    #: Total time budget for one operation's retries, in seconds: ``FERRY_RETRY_BUDGET_SECONDS``.
    retry_budget: float = RETRY_BUDGET
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    #: Connections per registry host.
    max_connections: int = 16
    #: Slow bodies (``FERRY_STALL_FLOOR_BYTES``, ``FERRY_STALL_WINDOW_SECONDS``): in any
    #: ``stall_window`` seconds spent waiting on a peer, ``stall_floor`` bytes per second must
    #: arrive (or the body end), else it fails as stalled. The deadline follows real progress,
    #: never the size a registry declares.
    stall_floor: int = STALL_FLOOR
    stall_window: float = STALL_WINDOW
    #: Informational (1xx) answers accepted before the final one.
    max_informational: int = 5
    #: Pages of a tag list or of referrers followed (``Link: rel="next"``).
    max_pages: int = 1000
    #: Tokens are renewed this many seconds before they expire (at most a quarter of their life).
    token_margin: float = 10.0
    user_agent: str = "ferry/0.1"
    #: ``HTTPS_PROXY`` / ``HTTP_PROXY`` (also lower-case) and ``NO_PROXY``. Loopback is never
    #: proxied. Through a proxy the proxy resolves names, so only literal addresses can be
    #: checked for SSRF (and ``FERRY_ALLOWED_REGISTRIES`` still applies).
    https_proxy: Proxy | None = None
    http_proxy: Proxy | None = None
    no_proxy: tuple[str, ...] = ()
    #: ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``: the CAs to trust instead of certifi's bundle (a
    #: private registry's internal CA), as OpenSSL and httpx read them.
    ca_file: str | None = None
    ca_dir: str | None = None

    def retry_policy(self, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> RetryPolicy:
        """The retry policy these options set (attempts, backoff, budget)."""
        return RetryPolicy(self.max_attempts, self.backoff_base, self.backoff_cap, self.retry_budget, sleep)

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
            reason = address_refusal(address)
            if reason is not None:
                return f"{authority} is on {reason}"
        return None

    def refuse(self, authority: str, addresses: list[str], *, what: str) -> None:
        """Raises :class:`InsecureEndpointError` when :meth:`refusal` has a reason; the check a
        transport runs on every connection it opens (``what`` says for whom)."""
        reason = self.refusal(authority, addresses)
        if reason is not None:
            hint = (
                "FERRY_ALLOW_LOOPBACK or FERRY_ALLOWED_REGISTRIES"
                if "loopback" in reason
                else "FERRY_ALLOWED_REGISTRIES"
            )
            raise InsecureEndpointError(f"{what}: refused: {reason} ({hint} can allow it)")

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
        reason = address_refusal(host)
        if reason is not None:
            raise InsecureEndpointError(f"token realm of {registry} is on {reason}: refused")
        self.check_url(url, f"token realm of {registry}")
        return url
