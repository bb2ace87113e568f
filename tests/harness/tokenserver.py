"""A token server for real ``docker-registry`` processes, following the documented protocols:

- Docker token spec (distribution ``docs/spec/auth/token.md``): ``GET <realm>?service=&scope=…``,
  optional Basic credentials, answering ``{"token", "access_token", "expires_in", "issued_at"}``
  (and a ``refresh_token`` with ``offline_token=true``);
- Docker OAuth2 (``docs/spec/auth/oauth.md``): ``POST <realm>`` form with
  ``grant_type=password|refresh_token``, space-separated ``scope``;
- ACR (Azure/acr ``docs/AAD-OAuth.md``): ``POST /oauth2/exchange`` (``grant_type=access_token``,
  ``service``, ``tenant``, ``access_token`` → ``{"refresh_token"}``) and ``POST /oauth2/token``
  (``grant_type=refresh_token``, ``service``, ``scope`` repeated, ``refresh_token`` →
  ``{"access_token"}``), plus ``GET /oauth2/token`` with Basic as ACR also serves.

Registry JWTs are ES256, signed with a test key whose self-signed certificate the registry trusts
(``rootcertbundle``), named in the header by ``x5c``.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.harness.entra import ACR_AUDIENCE_CLAIM, ENTRA_SECRET
from tests.harness.loopback import LoopbackServer, reply

ISSUER = "ferry-test-issuer"
ACR_ISSUER = "Azure Container Registry"
NULL_USER = "00000000-0000-0000-0000-000000000000"

#: (user or None, type, name, requested actions) -> granted actions
Policy = Callable[[str | None, str, str, list[str]], list[str]]


def default_policy(user: str | None, kind: str, name: str, actions: list[str]) -> list[str]:
    """Signed-in users get what they ask for; anonymous callers only ``pull``."""
    if user is None:
        return [a for a in actions if a == "pull"]
    return actions


def _scopes(texts: list[str]) -> list[tuple[str, str, list[str]]]:
    out = []
    for text in texts:
        for one in text.split():
            kind, _, rest = one.partition(":")
            name, _, actions = rest.rpartition(":")
            out.append((kind, name, [a for a in actions.split(",") if a]))
    return out


class TokenServer(LoopbackServer):
    """Run with :meth:`start`; stop with :meth:`stop`. Knobs are plain attributes."""

    def __init__(self, workdir: Path, users: dict[str, str] | None = None) -> None:
        self.users = dict(users or {})
        self.policy: Policy = default_policy
        #: What ``expires_in`` says, and how long the JWT really lives (``exp``).
        self.expires_in: int | None = 300
        self.jwt_lifetime = 300
        #: When False, ``GET /token`` answers 404 so clients must use the OAuth2 POST.
        self.get_enabled = True
        #: ACR refresh token lifetime in seconds.
        self.refresh_lifetime = 3 * 3600
        self.requests: Counter[str] = Counter()
        self.seen_tenants: list[str] = []
        #: Every token and refresh token handed out, so tests can look for them where they must not be.
        self.issued: list[str] = []
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ferry test token issuer")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        workdir.mkdir(parents=True, exist_ok=True)
        self.certfile = workdir / "token-issuer.pem"
        self.certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()

    # -- tokens -----------------------------------------------------------------------------

    def sign(self, claims: dict[str, Any]) -> str:
        token = jwt.encode(claims, self._key, algorithm="ES256", headers={"x5c": [self._x5c]})
        self.issued.append(token)
        return token

    def access_token(
        self, user: str | None, service: str, scope_texts: list[str], issuer: str = ISSUER
    ) -> tuple[str, list[dict[str, Any]]]:
        access = []
        for kind, name, actions in _scopes(scope_texts):
            granted = self.policy(user, kind, name, actions)
            if granted:
                access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {
            "iss": issuer,
            "sub": user or "",
            "aud": service,
            "exp": now + self.jwt_lifetime,
            "nbf": now - 5,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        return self.sign(claims), access

    def refresh_token(self, user: str, service: str, tenant: str = "") -> str:
        now = int(time.time())
        return self.sign(
            {
                "iss": ACR_ISSUER,
                "sub": user,
                "aud": service,
                "exp": now + self.refresh_lifetime,
                "nbf": now - 5,
                "iat": now,
                "jti": uuid.uuid4().hex,
                "grant_type": "refresh_token",
                "tenant": tenant,
            }
        )

    def user_of_refresh(self, token: str, service: str) -> str | None:
        try:
            claims = jwt.decode(token, self._key.public_key(), algorithms=["ES256"], audience=service)
        except jwt.PyJWTError:
            return None
        return str(claims.get("sub")) if claims.get("grant_type") == "refresh_token" else None

    def check_basic(self, header: str | None, service: str = "") -> tuple[bool, str | None]:
        """(ok, user): no header is anonymous; a bad one is not ok."""
        if not header:
            return True, None
        if not header.startswith("Basic "):
            return False, None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False, None
        return self.check_password(user, password, service)

    def check_password(self, user: str, password: str, service: str = "") -> tuple[bool, str | None]:
        if user == NULL_USER:  # ACR: the password is an ACR refresh token
            holder = self.user_of_refresh(password, service)
            return holder is not None, holder
        if self.users.get(user) == password and user:
            return True, user
        return False, None


class _Handler(BaseHTTPRequestHandler):
    owner: TokenServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, doc: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        reply(self, status, doc or {}, headers)

    def _deny(self, status: int = 401, message: str = "authentication required") -> None:
        self._send(
            status,
            {"errors": [{"code": "UNAUTHORIZED", "message": message}]},
            {"WWW-Authenticate": 'Basic realm="token"'},
        )

    def _token_doc(self, token: str) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "token": token,
            "access_token": token,
            "issued_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        if self.owner.expires_in is not None:
            doc["expires_in"] = self.owner.expires_in
        return doc

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = parse_qsl(parts.query)
        o = self.owner
        o.requests[f"GET {parts.path}"] += 1
        if parts.path not in ("/token", "/oauth2/token") or (parts.path == "/token" and not o.get_enabled):
            return self._send(404, {"errors": [{"code": "NOT_FOUND", "message": "no such endpoint"}]})
        service = dict(query).get("service", "")
        ok, user = o.check_basic(self.headers.get("Authorization"), service)
        if not ok:
            return self._deny()
        scopes = [v for k, v in query if k == "scope"]
        token, _ = o.access_token(user, service, scopes, ACR_ISSUER if parts.path.startswith("/oauth2") else ISSUER)
        doc = self._token_doc(token)
        if user and dict(query).get("offline_token") == "true":
            doc["refresh_token"] = o.refresh_token(user, service)
        self._send(200, doc)

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        o = self.owner
        o.requests[f"POST {parts.path}"] += 1
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qsl(self.rfile.read(length).decode())
        fields = dict(form)
        service = fields.get("service", "")
        scopes = [v for k, v in form if k == "scope"]
        grant = fields.get("grant_type")
        if parts.path == "/oauth2/exchange":
            return self._exchange(fields)
        if parts.path not in ("/token", "/oauth2/token"):
            return self._send(404, {})
        user: str | None
        if grant == "password":
            ok, user = o.check_password(fields.get("username", ""), fields.get("password", ""), service)
            if not ok:
                return self._deny()
        elif grant == "refresh_token":
            user = o.user_of_refresh(fields.get("refresh_token", ""), service)
            if user is None:
                return self._deny(401, "invalid refresh token")
        else:
            return self._send(400, {"error": "unsupported_grant_type"})
        issuer = ACR_ISSUER if parts.path.startswith("/oauth2") else ISSUER
        token, _ = o.access_token(user, service, scopes, issuer)
        doc: dict[str, object] = {"access_token": token, "scope": " ".join(scopes)}
        if o.expires_in is not None:
            doc["expires_in"] = o.expires_in
        if grant == "password" and fields.get("access_type") == "offline":
            doc["refresh_token"] = o.refresh_token(user or "", service)
        self._send(200, doc)

    def _exchange(self, fields: dict[str, str]) -> None:
        o = self.owner
        if fields.get("grant_type") != "access_token":
            return self._send(400, {"error": "unsupported_grant_type"})
        try:
            claims = jwt.decode(
                fields.get("access_token", ""), ENTRA_SECRET, algorithms=["HS256"], audience=ACR_AUDIENCE_CLAIM
            )
        except jwt.PyJWTError:
            return self._deny(401, "invalid Entra token")
        tenant = fields.get("tenant", "")
        o.seen_tenants.append(tenant)
        if tenant and tenant != claims.get("tid"):
            return self._deny(401, "tenant does not match the token")
        self._send(200, {"refresh_token": o.refresh_token(str(claims.get("oid")), fields.get("service", ""), tenant)})


TokenServer.handler = _Handler
