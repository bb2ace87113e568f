"""Pure values: digests, manifests, challenges, scopes, token freshness, error mapping."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import httpx
import pytest

from shared.errors import (
    AuthenticationError,
    AuthRequiredError,
    InvalidReferenceError,
    ManifestError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitedError,
    RegistryUnavailableError,
    TooLargeError,
    UnsupportedContentError,
    redact_url,
)
from shared.http.mapping import Side, error_from_response, retry_after
from shared.oci import mediatypes as mt
from shared.oci.digest import Digest
from shared.oci.manifest import MAX_MANIFEST_BYTES, Index, Manifest, Platform, parse_manifest, successors
from shared.registry import scopes as sc
from shared.registry.challenge import parse_challenge
from shared.registry.tokens import CachedToken, expires_at, is_fresh, jwt_claims
from tests.harness.images import make_artifact, make_image, make_multiarch


def test_digest_of_and_parse() -> None:
    d = Digest.of(b"hello")
    assert str(d) == "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert Digest.parse(str(d)) == d
    assert d.tag_schema == "sha256-" + d.encoded
    for algorithm in ("sha384", "sha512"):
        digest = Digest.of(b"hello", algorithm)
        assert Digest.parse(str(digest)) == digest and digest.hasher().name == algorithm


@pytest.mark.parametrize("text", ["blake3:" + "a" * 64, "sha1:" + "a" * 40, "md5:" + "a" * 32])
def test_digests_ferry_cannot_verify_are_refused_naming_their_algorithm(text: str) -> None:
    algorithm = text.split(":", maxsplit=1)[0]
    with pytest.raises(InvalidReferenceError, match=f"digest algorithm {algorithm} cannot be verified"):
        Digest.parse(text)


def test_parse_image_index_and_successors() -> None:
    index = make_multiarch(["linux/amd64", "linux/arm64/v8"])
    node = parse_manifest(index.manifest)
    assert isinstance(node, Index) and node.media_type == mt.OCI_INDEX
    assert [str(m.platform) for m in node.manifests] == ["linux/amd64", "linux/arm64/v8"]
    child = parse_manifest(index.children[0].manifest)
    assert isinstance(child, Manifest)
    assert [b.digest for b in successors(child)] == [b.descriptor.digest for b in index.children[0].blobs]


def test_parse_docker_manifest_list() -> None:
    index = make_multiarch(docker=True)
    node = parse_manifest(index.manifest)
    assert isinstance(node, Index) and node.media_type == mt.DOCKER_MANIFEST_LIST
    assert parse_manifest(index.children[0].manifest).media_type == mt.DOCKER_MANIFEST


def test_artifact_subject_is_not_a_successor() -> None:
    image = make_image()
    artifact = make_artifact(image.descriptor, "application/vnd.example.sbom", b"{}")
    node = parse_manifest(artifact.manifest)
    assert isinstance(node, Manifest)
    assert node.subject is not None and node.subject.digest == image.digest
    assert node.artifact_type == "application/vnd.example.sbom"
    assert node.config.media_type == mt.OCI_EMPTY
    assert image.digest not in [d.digest for d in successors(node)]


def test_media_type_from_content_type_when_missing() -> None:
    doc = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert parse_manifest(doc, mt.DOCKER_MANIFEST_LIST).media_type == mt.DOCKER_MANIFEST_LIST
    assert parse_manifest(doc).media_type == mt.OCI_INDEX


@pytest.mark.parametrize(
    "doc",
    [
        {"schemaVersion": 1, "name": "x", "fsLayers": []},
        {"mediaType": mt.DOCKER_SCHEMA1_SIGNED, "schemaVersion": 1},
    ],
)
def test_schema1_is_refused_with_advice(doc: dict[str, object]) -> None:
    with pytest.raises(UnsupportedContentError, match=r"schema 1 .* not supported.*skopeo copy --format v2s2"):
        parse_manifest(json.dumps(doc).encode())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({"mediaType": "application/x-unknown"}).encode(), "unknown manifest media type"),
        (json.dumps({"mediaType": mt.OCI_INDEX, "manifests": "x"}).encode(), "no manifests list"),
        (
            json.dumps(
                {"mediaType": mt.OCI_MANIFEST, "config": {"mediaType": "a", "digest": "sha256:x", "size": 1}}
            ).encode(),
            "64 lowercase hex",
        ),
        (
            json.dumps(
                {"mediaType": mt.OCI_MANIFEST, "config": {"mediaType": "a", "digest": str(Digest.of(b"")), "size": -1}}
            ).encode(),
            "no valid size",
        ),
        (json.dumps({"mediaType": mt.OCI_MANIFEST}).encode(), "config is not an object"),
        (b"[" * 100_000, "not valid JSON"),
        (b" " * (MAX_MANIFEST_BYTES + 1), "over the"),
    ],
)
def test_bad_manifests(data: bytes, reason: str) -> None:
    with pytest.raises(ManifestError, match=reason):
        parse_manifest(data)


def test_platform() -> None:
    assert Platform.parse("linux/arm64/v8") == Platform("linux", "arm64", "v8")
    assert Platform("linux", "arm", "v7").matches(Platform.parse("linux/arm"))
    assert not Platform("linux", "arm", "v6").matches(Platform.parse("linux/arm/v7"))
    with pytest.raises(ValueError, match="os/arch"):
        Platform.parse("linux")


@pytest.mark.parametrize(
    ("header", "scheme", "params"),
    [
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"',
            "bearer",
            {
                "realm": "https://auth.docker.io/token",
                "service": "registry.docker.io",
                "scope": "repository:library/nginx:pull",
            },
        ),
        ('Basic realm="Registry Realm"', "basic", {"realm": "Registry Realm"}),
        ("bearer realm=https://x/token, service=x", "bearer", {"realm": "https://x/token", "service": "x"}),
        (
            'Bearer realm="a\\"b",scope="repository:a:push,pull repository:b:pull"',
            "bearer",
            {"realm": 'a"b', "scope": "repository:a:push,pull repository:b:pull"},
        ),
    ],
)
def test_parse_challenge(header: str, scheme: str, params: dict[str, str]) -> None:
    challenge = parse_challenge(header)
    assert challenge is not None and challenge.scheme == scheme and challenge.params == params


def test_challenge_scopes_with_ports() -> None:
    challenge = parse_challenge('Bearer realm="r",scope="repository:localhost:5000/a:push,pull repository:b:pull"')
    assert challenge is not None
    parsed = sc.parse_all(challenge.scopes)
    assert ("repository", "localhost:5000/a", "push") in parsed and ("repository", "b", "pull") in parsed
    assert sc.render(parsed) == ["repository:b:pull", "repository:localhost:5000/a:pull,push"]
    assert parse_challenge("") is None and parse_challenge(None) is None


def _jwt(claims: dict[str, object]) -> str:
    def enc(doc: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    return f"{enc({'alg': 'none'})}.{enc(claims)}.sig"


def test_jwt_claims_use_base64url() -> None:
    # '>>>' and '???' encode to '-' and '_' in base64url: standard base64 would fail on them.
    claims = {"tid": ">>>???", "exp": 2000000000}
    assert jwt_claims(_jwt(claims)) == claims
    assert jwt_claims("not-a-jwt") == {} and jwt_claims("a.!!!.c") == {}


def test_token_expiry_and_freshness() -> None:
    assert expires_at(100.0, 300) == 400.0
    assert expires_at(100.0, None) == 160.0  # the Docker token spec's 60 s default
    assert expires_at(100.0, None, _jwt({"exp": 1000})) == 1000.0
    assert expires_at(100.0, True) == 160.0
    assert is_fresh(400.0, 389.0, 10.0) and not is_fresh(400.0, 391.0, 10.0)
    # A 2-second token is renewed half a second before its end, not 10 s before (always stale).
    assert is_fresh(102.0, 101.4, 10.0, lifetime=2.0) and not is_fresh(102.0, 101.6, 10.0, lifetime=2.0)
    token = CachedToken("t", 100.0, 160.0)
    assert token.fresh(140.0, 10.0) and not token.fresh(151.0, 10.0)


def test_retry_after_parsing() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after("120") == 120.0
    assert retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now) == 30.0
    assert retry_after("Thu, 01 Jan 2025 00:00:30 GMT", now) == 0.0
    assert retry_after("soon") is None and retry_after(None) is None


def _response(
    status: int, body: dict[str, object] | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    request = httpx.Request("GET", "https://r.example/v2/a/manifests/x?token=SECRET")
    return httpx.Response(status, headers=headers, request=request)


@pytest.mark.parametrize(
    ("status", "code", "cls", "retryable"),
    [
        (401, "UNAUTHORIZED", AuthenticationError, False),
        (403, "DENIED", PermissionDeniedError, False),
        (404, "MANIFEST_UNKNOWN", NotFoundError, False),
        (404, "NAME_UNKNOWN", NotFoundError, False),
        (413, "SIZE_INVALID", TooLargeError, False),
        (429, "TOOMANYREQUESTS", RateLimitedError, True),
        (408, "", RegistryUnavailableError, True),
        (500, "", RegistryUnavailableError, True),
        (502, "", RegistryUnavailableError, True),
        (400, "MANIFEST_INVALID", ProtocolError, False),
        (400, "DENIED", PermissionDeniedError, False),
        (400, "TOOMANYREQUESTS", RateLimitedError, True),
        (400, "BLOB_UNKNOWN", NotFoundError, False),
        (418, "", ProtocolError, False),
    ],
)
def test_error_mapping(status: int, code: str, cls: type, retryable: bool) -> None:
    body = json.dumps({"errors": [{"code": code, "message": "the message"}]}).encode() if code else b""
    side = Side.of("r.example", "source", "user ci")
    error = error_from_response("fetch manifest", side, _response(status, headers={"Retry-After": "7"}), body)
    assert type(error) is cls and error.retryable is retryable
    assert "SECRET" not in str(error) + error.detail and "?" not in str(error) + error.detail
    assert str(error).startswith("source registry r.example: ")
    assert error.detail.startswith(f"fetch manifest: GET https://r.example/v2/a/manifests/x: {status}")
    assert error.retry_after == 7.0


@pytest.mark.parametrize(
    ("status", "code", "who", "message", "cls"),
    [
        (404, "NAME_UNKNOWN", "", "source registry r.example: repository a not found", NotFoundError),
        (404, "MANIFEST_UNKNOWN", "", "source registry r.example: a:x not found", NotFoundError),
        (401, "UNAUTHORIZED", "user ci", "source registry r.example: rejected the credentials of user ci",
         AuthenticationError),
        (401, "UNAUTHORIZED", "", "source registry r.example: requires credentials: name a credential or pass "
         "--username", AuthRequiredError),
        (403, "DENIED", "user ci", "source registry r.example: denied access to a:x to user ci", PermissionDeniedError),
        (429, "", "", "source registry r.example: rate limit reached; asked to wait 7 s", RateLimitedError),
        (503, "", "", "source registry r.example: unavailable (503)", RegistryUnavailableError),
    ],
)  # fmt: skip
def test_messages_name_the_problem_and_the_side(status: int, code: str, who: str, message: str, cls: type) -> None:
    body = json.dumps({"errors": [{"code": code, "message": "m"}]}).encode() if code else b""
    side = Side.of("r.example", "source", who)
    error = error_from_response("fetch manifest", side, _response(status, headers={"Retry-After": "7"}), body)
    assert type(error) is cls and str(error) == message
    assert error.code == ("AUTH_REQUIRED" if cls is AuthRequiredError else error.code)


def test_redact_url() -> None:
    assert redact_url("https://user:pw@host:8443/p/a?sig=abc#frag") == "https://host:8443/p/a"
    assert redact_url("http://[::1]:5000/v2/") == "http://[::1]:5000/v2/"


def test_tls_is_verified_and_shared() -> None:
    import ssl

    from shared.http.exchange import tls_context

    ctx = tls_context(None, None)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert tls_context(None, None) is ctx
