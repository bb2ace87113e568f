"""Registry authentication as one ``httpx.Auth`` flow.

- Before a request: attach what the last challenge of this registry asked for: Basic credentials,
  or a cached bearer token that covers the request's scopes (fetched first when there is none).
- On a ``401`` from the same origin: parse the challenge, get credentials for it, retry once.
  A request whose streaming body was already sent is never replayed: uploads authenticate on the
  bodyless ``POST .../blobs/uploads/`` first.

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
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from shared.credentials import AccessToken, Credential, EntraIdentity, UsernamePassword
from shared.errors import AuthenticationError, ConfigurationError, ProtocolError
from shared.registry import scopes as sc
from shared.registry.challenge import Challenge, parse_challenge
from shared.registry.errors import error_from_exception, error_from_response
from shared.registry.policy import TransportOptions
from shared.registry.tokens import CachedToken, expires_at, jwt_claims

log = logging.getLogger(__name__)

#: The request extension that carries the scopes a request needs (a frozenset of scope triples).
SCOPES = "ferry.scopes"
#: Scopes are accumulated per registry so one token serves a whole import; past this many the
#: set starts again from the request's own.
_MAX_SCOPES = 32
_CLIENT_ID = "ferry"


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


def _replayable(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


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
    ) -> None:
        self.registry = registry
        self._credential = credential
        self._options = options
        self._http = token_http
        self._clock = clock
        self._challenge: Challenge | None = None
        self._grants: dict[tuple[str, str], _Grant] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._acr_refresh: CachedToken | None = None
        self._acr_lock = asyncio.Lock()
        #: Token endpoint calls made, by kind; tests and benchmarks read these.
        self.fetches: dict[str, int] = {"token": 0, "exchange": 0}

    # -- the flow ---------------------------------------------------------------------------

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        wanted: frozenset[sc.Scope] = request.extensions.get(SCOPES, frozenset())
        sent = await self._authorize(request, self._challenge, wanted, rejected=None)
        response = yield request
        if response.status_code != 401:
            return
        if _origin(response.request.url) != _origin(request.url):
            return  # a challenge from another origin (after a redirect) is not answered
        challenge = parse_challenge(response.headers.get("www-authenticate"))
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            return
        self._challenge = challenge
        if not _replayable(request):
            return  # its body is gone; the caller starts over, now with the challenge known
        if challenge.scheme == "basic" and not isinstance(self._credential, UsernamePassword):
            return
        await response.aread()
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
        if challenge.scheme == "basic" and isinstance(self._credential, UsernamePassword):
            value = _basic(self._credential.username, self._credential.password.reveal())
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
            raise ProtocolError("authenticate", self.registry, "GET", "", 401, "", "bearer challenge without realm")
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
        if isinstance(credential, AccessToken) and not acr:
            # A registry token given as is: nothing to fetch.
            return CachedToken(credential.token.reveal(), now, expires_at(now, None, credential.token.reveal()))
        if isinstance(credential, EntraIdentity) and not acr:
            raise ConfigurationError(
                f"an Entra identity can sign in only to Azure Container Registry; {self.registry} is not one"
            )
        self.fetches["token"] += 1
        if acr and (
            isinstance(credential, (EntraIdentity, AccessToken))
            or (isinstance(credential, UsernamePassword) and credential.is_acr_refresh_token)
        ):
            refresh = await self._acr_refresh_token(url, service)
            form = [("grant_type", "refresh_token"), ("service", service), ("refresh_token", refresh)]
            # ACR takes ``scope`` more than once for several scopes (AAD-OAuth.md, "Getting an ACR access token").
            form += [("scope", s) for s in sc.render(scopes)]
            doc = await self._post(url, form, "fetch token")
            return self._cached(doc, now)
        params = [("service", service), *[("scope", s) for s in sc.render(scopes)]]
        headers = {}
        if isinstance(credential, UsernamePassword):
            headers["Authorization"] = _basic(credential.username, credential.password.reveal())
        response = await self._call("GET", url, "fetch token", params=params, headers=headers)
        if response.status_code in (404, 405) and isinstance(credential, UsernamePassword):
            form = [
                ("grant_type", "password"),
                ("service", service),
                ("client_id", _CLIENT_ID),
                ("username", credential.username),
                ("password", credential.password.reveal()),
                ("scope", " ".join(sc.render(scopes))),
            ]
            return self._cached(await self._post(url, form, "fetch token"), now)
        return self._cached(self._json(response, "fetch token"), now)

    async def _acr_refresh_token(self, realm: httpx.URL, service: str) -> str:
        credential = self._credential
        if isinstance(credential, UsernamePassword):
            return credential.password.reveal()
        async with self._acr_lock:
            now = self._clock()
            cached = self._acr_refresh
            if cached is not None and cached.fresh(now, self._options.token_margin):
                return cached.value
            if isinstance(credential, EntraIdentity):
                entra = await credential.entra_token()
                tenant = credential.tenant_id
            elif isinstance(credential, AccessToken):
                entra, tenant = credential.token.reveal(), None
            else:  # pragma: no cover - guarded by the caller
                raise ConfigurationError("no Entra token to exchange")
            tenant = tenant or str(jwt_claims(entra).get("tid", ""))
            form = [("grant_type", "access_token"), ("service", service), ("access_token", entra)]
            if tenant:
                form.append(("tenant", tenant))
            self.fetches["exchange"] += 1
            exchange = realm.copy_with(path=realm.path[: -len("/token")] + "/exchange", query=None)
            doc = await self._post(exchange, form, "exchange token")
            refresh = doc.get("refresh_token")
            if not isinstance(refresh, str) or not refresh:
                raise AuthenticationError(
                    "exchange token", self.registry, "POST", str(exchange), 200, "", "no refresh_token in the answer"
                )
            self._acr_refresh = CachedToken(refresh, now, expires_at(now, None, refresh))
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
            return await self._http.request(method, url, headers=headers, content=content)
        except httpx.HTTPError as exc:
            raise error_from_exception(op, self.registry, exc) from None

    async def _post(self, url: httpx.URL, form: Sequence[tuple[str, str]], op: str) -> dict[str, object]:
        return self._json(await self._call("POST", url, op, form=form), op)

    def _json(self, response: httpx.Response, op: str) -> dict[str, object]:
        if response.status_code != 200:
            error = error_from_response(op, self.registry, response, response.content[:65536])
            if response.status_code in (400, 401, 403, 404, 405):
                raise AuthenticationError(
                    op, self.registry, error.method, error.url, error.status, error.registry_code, error.detail
                )
            raise error
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise ProtocolError(
                op,
                self.registry,
                response.request.method,
                str(response.request.url),
                200,
                "",
                "answer is not a JSON object",
            )
        return doc

    def _cached(self, doc: dict[str, object], now: float) -> CachedToken:
        # The spec names it ``token``; OAuth2 clients expect ``access_token``: accept both.
        value = doc.get("token") or doc.get("access_token")
        if not isinstance(value, str) or not value:
            raise AuthenticationError("fetch token", self.registry, "", "", 200, "", "no token in the answer")
        return CachedToken(value, now, expires_at(now, doc.get("expires_in"), value))
