"""Registry authentication as one ``httpx.Auth`` flow.

- Before a request: attach what the last challenge of this registry asked for: Basic credentials,
  or a cached bearer token that covers the request's scopes (fetched first when there is none).
- On a ``401`` from the same origin: parse the challenge, get credentials for it, retry once.
  A request whose streaming body was already sent is never replayed: uploads authenticate on the
  bodyless ``POST .../blobs/uploads/`` first.
- Credentials follow the origin, not the URL: a request to any other origin (a ``Link`` page, a
  redirect) carries none, and a challenge it brings back is neither answered nor remembered.
  Tokens go only to the realm of a challenge the registry's own origin issued.

Bearer tokens follow the Docker token spec (distribution ``spec/auth/token.md``: ``GET <realm>``
with ``service`` and repeated ``scope``, Basic credentials when there are any; ``spec/auth/oauth.md``:
``POST`` with ``grant_type=password`` when the realm answers the GET with 404/405), and ACR's
Entra flow (Azure/acr ``docs/AAD-OAuth.md``: ``POST /oauth2/exchange`` → ACR refresh token,
``POST /oauth2/token`` per scope set → access token).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import httpx

from shared.credentials import Credential
from shared.errors import AuthenticationError, ConfigurationError, ProtocolError
from shared.http.exchange import extensions
from shared.http.mapping import Side, error_from_exception, error_from_response, refused
from shared.http.policy import TransportOptions
from shared.registry import scopes as sc
from shared.strict import loads_bounded
from shared.text import register_secret

if TYPE_CHECKING:  # both load once a registry asks for credentials (a 401): an open one never does
    from shared.registry.challenge import Challenge
    from shared.registry.tokens import CachedToken

log = logging.getLogger(__name__)

#: The request extension that carries the scopes a request needs (a frozenset of scope triples).
SCOPES = "ferry.scopes"
#: Scopes are accumulated per registry so one token serves a whole import; past this many the
#: set starts again from the request's own.
_MAX_SCOPES = 32
_CLIENT_ID = "ferry"


#: What may go into ``Authorization: Bearer``: visible ASCII (RFC 6750 ``b64token`` is narrower;
#: registries send JWTs and opaque strings), at most 16 KiB.
_TOKEN = re.compile(r"[\x21-\x7e]{1,16384}")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


def _replayable(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)


def _basic(username: str, password: str) -> str:
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    register_secret(encoded)  # a registry that echoes the header must not put it in a message
    return "Basic " + encoded


def _token(value: str, now: float, expires_in: object = None) -> CachedToken:
    """A fetched token, cached until it expires (as ``expires_in`` or its own ``exp`` says)."""
    from shared.registry.tokens import CachedToken, expires_at  # noqa: PLC0415 - see TYPE_CHECKING above

    return CachedToken(value, now, expires_at(now, expires_in, value))


def _tenant_of(entra_token: str) -> object:
    from shared.registry.tokens import jwt_claims  # noqa: PLC0415 - see TYPE_CHECKING above

    return jwt_claims(entra_token).get("tid", "")


@dataclass(slots=True)
class _Grant:
    token: CachedToken
    scopes: frozenset[sc.Scope]


class RegistryAuth(httpx.Auth):
    """Authentication for one registry host and one credential."""

    def __init__(
        self,
        registry: str,
        credential: Credential,
        options: TransportOptions,
        token_http: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
        *,
        origin: httpx.URL | None = None,
        side: Side | None = None,
    ) -> None:
        self.registry = registry
        #: The registry's own origin: the only one credentials go to and challenges come from.
        self._origin = _origin(origin) if origin is not None else None
        self.side = side or Side.of(registry)
        self._credential = credential
        self._options = options
        self._http = token_http
        self._clock = clock
        self._challenge: Challenge | None = None
        self._grants: dict[tuple[str, str], _Grant] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._acr_refresh: CachedToken | None = None
        self._acr_lock = asyncio.Lock()

    # -- the flow ---------------------------------------------------------------------------

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        wanted: frozenset[sc.Scope] = request.extensions.get(SCOPES, frozenset())
        home = self._origin if self._origin is not None else _origin(request.url)
        if _origin(request.url) != home:
            request.headers.pop("Authorization", None)
            yield request  # another origin: nothing attached, nothing learned
            return
        sent = await self._authorize(request, self._challenge, wanted, rejected=None)
        response = yield request
        if response.status_code != 401:
            return
        if _origin(response.request.url) != home:
            return  # a challenge from another origin (after a redirect) is not answered
        from shared.registry.challenge import parse_challenge  # noqa: PLC0415 - see TYPE_CHECKING above

        challenge = parse_challenge(", ".join(response.headers.get_list("www-authenticate")))
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            return
        self._challenge = challenge
        if not _replayable(request):
            return  # its body is gone; the caller starts over, now with the challenge known
        if challenge.scheme == "basic" and self._credential.login() is None:
            return
        if await self._authorize(request, challenge, wanted | sc.parse_all(challenge.scopes), sent) is None:
            return
        yield request

    async def _authorize(
        self,
        request: httpx.Request,
        challenge: Challenge | None,
        wanted: frozenset[sc.Scope],
        rejected: str | None,
    ) -> str | None:
        """Set ``Authorization`` for ``challenge``; returns the value set, if any."""
        if challenge is None:
            return None
        value: str | None = None
        login = self._credential.login()
        if challenge.scheme == "basic" and login is not None:
            value = _basic(login[0], login[1].reveal())
        elif challenge.scheme == "bearer":
            token = await self.token(challenge, wanted, rejected=rejected)
            value = f"Bearer {token}"
        if value is not None:
            request.headers["Authorization"] = value
        return value

    # -- bearer tokens ----------------------------------------------------------------------

    async def token(self, challenge: Challenge, wanted: frozenset[sc.Scope], rejected: str | None = None) -> str:
        """A token for ``wanted`` from ``challenge``'s realm: cached while fresh, else fetched once
        however many requests ask at the same time."""
        realm = challenge.realm
        if not realm:
            raise ProtocolError(
                op="authenticate",
                origin=self.side.label,
                method="GET",
                url="",
                status=401,
                problem="sent a bearer challenge without realm",
            )
        key = (realm, challenge.service or "")
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            grant = self._grants.get(key)
            now = self._clock()
            if (
                grant is not None
                and wanted <= grant.scopes
                and grant.token.fresh(now, self._options.token_margin)
                and (rejected is None or f"Bearer {grant.token.value}" != rejected)
            ):
                return grant.token.value
            scopes = wanted
            if grant is not None and len(grant.scopes | wanted) <= _MAX_SCOPES:
                scopes = grant.scopes | wanted
            token = await self._fetch(realm, challenge.service or "", scopes, now)
            self._grants[key] = _Grant(token, scopes)
            return token.value

    async def _fetch(self, realm: str, service: str, scopes: frozenset[sc.Scope], now: float) -> CachedToken:
        url = self._options.check_realm(realm, self.registry)
        credential = self._credential
        acr = url.path.endswith("/oauth2/token")
        given = credential.registry_token()
        if given is not None and not acr:
            # A registry token given as is: nothing to fetch.
            return _token(self._usable(given.reveal()), now)
        if credential.acr_only and not acr:
            raise ConfigurationError(
                f"an Entra identity can sign in only to Azure Container Registry; {self.registry} is not one"
            )
        if acr and (credential.exchangeable or credential.acr_refresh_token() is not None):
            refresh = await self._acr_refresh_token(url, service)
            form = [("grant_type", "refresh_token"), ("service", service), ("refresh_token", refresh)]
            # ACR takes ``scope`` more than once for several scopes (AAD-OAuth.md, "Getting an ACR access token").
            form += [("scope", s) for s in sc.render(scopes)]
            doc = await self._post(url, form, "fetch token")
            return self._cached(doc, now)
        params = [("service", service), *[("scope", s) for s in sc.render(scopes)]]
        login = credential.login()
        headers = {"Authorization": _basic(login[0], login[1].reveal())} if login is not None else {}
        response = await self._call("GET", url, "fetch token", params=params, headers=headers)
        if response.status_code in (404, 405) and login is not None:
            form = [
                ("grant_type", "password"),
                ("service", service),
                ("client_id", _CLIENT_ID),
                ("username", login[0]),
                ("password", login[1].reveal()),
                ("scope", " ".join(sc.render(scopes))),
            ]
            return self._cached(await self._post(url, form, "fetch token"), now)
        return self._cached(self._json(response, "fetch token"), now)

    async def _acr_refresh_token(self, realm: httpx.URL, service: str) -> str:
        credential = self._credential
        refresh_token = credential.acr_refresh_token()
        if refresh_token is not None:
            return refresh_token.reveal()
        async with self._acr_lock:
            now = self._clock()
            cached = self._acr_refresh
            if cached is not None and cached.fresh(now, self._options.token_margin):
                return cached.value
            entra = await credential.entra_token()
            tenant = credential.tenant_id or str(_tenant_of(entra))
            form = [("grant_type", "access_token"), ("service", service), ("access_token", entra)]
            if tenant:
                form.append(("tenant", tenant))
            exchange = realm.copy_with(path=realm.path[: -len("/token")] + "/exchange", query=None)
            doc = await self._post(exchange, form, "exchange token")
            refresh = self._usable(
                doc.get("refresh_token"),
                ("exchange token", "POST", str(exchange)),
                "token exchange answered without a usable refresh_token",
            )
            self._acr_refresh = _token(refresh, now)
            return refresh

    # -- token endpoint HTTP ----------------------------------------------------------------

    async def _call(
        self,
        method: str,
        url: httpx.URL,
        op: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        form: Sequence[tuple[str, str]] | None = None,
    ) -> httpx.Response:
        content = None
        if form is not None:
            headers = {**(headers or {}), "Content-Type": "application/x-www-form-urlencoded"}
            content = urlencode(form).encode()
        if params:
            url = url.copy_with(query=urlencode(params).encode())
        try:
            return await self._http.request(method, url, headers=headers, content=content, extensions=extensions(op))
        except httpx.HTTPError as exc:
            raise error_from_exception(op, self.side, exc) from None

    async def _post(self, url: httpx.URL, form: Sequence[tuple[str, str]], op: str) -> dict[str, object]:
        return self._json(await self._call("POST", url, op, form=form), op)

    def _json(self, response: httpx.Response, op: str) -> dict[str, object]:
        if response.status_code != 200:
            error = error_from_response(op, self.side, response, response.content)
            if response.status_code in (400, 401, 403, 404, 405):
                who = self.side.who
                raise AuthenticationError(
                    op=op,
                    origin=self.side.label,
                    method=error.method,
                    url=error.url,
                    status=error.status,
                    registry_code=error.registry_code,
                    registry_message=error.registry_message,
                    problem=f"token service refused {who}" if who else "token service refused an anonymous token",
                )
            raise error
        doc = loads_bounded(response.content)
        if not isinstance(doc, dict):
            raise refused(op, self.side, response, "token service answered with something that is not a JSON object")
        return doc

    def _usable(
        self,
        value: object,
        asked: tuple[str, str, str] = ("fetch token", "", ""),
        problem: str = "token service answered without a usable token",
    ) -> str:
        """A token that can go into a header, registered as a secret; else AuthenticationError
        naming what was ``asked`` (operation, method, URL) of the token service."""
        if not isinstance(value, str) or not _TOKEN.fullmatch(value):
            op, method, url = asked
            raise AuthenticationError(
                op=op, origin=self.side.label, method=method, url=url, status=200, problem=problem
            )
        register_secret(value)
        return value

    def _cached(self, doc: dict[str, object], now: float) -> CachedToken:
        # The spec names it ``token``; OAuth2 clients expect ``access_token``: accept both.
        value = self._usable(doc.get("token") or doc.get("access_token"))
        return _token(value, now, doc.get("expires_in"))
