"""The reference grammar, as a table: valid references and how they normalise, invalid ones and why."""

from __future__ import annotations

import pytest

from shared.errors import InvalidReferenceError
from shared.oci.reference import is_acr, parse_reference, parse_registry

H64 = "a" * 64
D = f"sha256:{H64}"

VALID = [
    # text, registry, repository, tag, digest, api host
    ("nginx", "docker.io", "library/nginx", None, None, "registry-1.docker.io"),
    ("nginx:1.27", "docker.io", "library/nginx", "1.27", None, "registry-1.docker.io"),
    ("library/nginx:1.27", "docker.io", "library/nginx", "1.27", None, "registry-1.docker.io"),
    ("docker.io/library/nginx:1.27", "docker.io", "library/nginx", "1.27", None, "registry-1.docker.io"),
    ("docker.io/nginx", "docker.io", "library/nginx", None, None, "registry-1.docker.io"),
    ("index.docker.io/bitnami/redis:7", "docker.io", "bitnami/redis", "7", None, "registry-1.docker.io"),
    ("registry-1.docker.io/foo/bar", "docker.io", "foo/bar", None, None, "registry-1.docker.io"),
    (
        "registry.hub.docker.com/library/hello-world",
        "docker.io",
        "library/hello-world",
        None,
        None,
        "registry-1.docker.io",
    ),
    ("foo/bar", "docker.io", "foo/bar", None, None, "registry-1.docker.io"),
    ("mcr.microsoft.com/dotnet/runtime:8.0", "mcr.microsoft.com", "dotnet/runtime", "8.0", None, "mcr.microsoft.com"),
    ("ghcr.io/org/app/sub:v1.2.3", "ghcr.io", "org/app/sub", "v1.2.3", None, "ghcr.io"),
    ("quay.io/prometheus/node-exporter", "quay.io", "prometheus/node-exporter", None, None, "quay.io"),
    ("localhost/app", "localhost", "app", None, None, "localhost"),
    ("localhost:5000/app:dev", "localhost:5000", "app", "dev", None, "localhost:5000"),
    ("127.0.0.1:5000/a/b/c:latest", "127.0.0.1:5000", "a/b/c", "latest", None, "127.0.0.1:5000"),
    ("[::1]:5000/app:1", "[::1]:5000", "app", "1", None, "[::1]:5000"),
    ("myacr.azurecr.io/app:1", "myacr.azurecr.io", "app", "1", None, "myacr.azurecr.io"),
    ("MyACR.azurecr.io/app", "myacr.azurecr.io", "app", None, None, "myacr.azurecr.io"),
    ("myacr.westeurope.geo.azurecr.io/app:1", "myacr.azurecr.io", "app", "1", None, "myacr.azurecr.io"),
    ("myacr.chinanorth.geo.azurecr.cn/x", "myacr.azurecr.cn", "x", None, None, "myacr.azurecr.cn"),
    (f"nginx@{D}", "docker.io", "library/nginx", None, D, "registry-1.docker.io"),
    (f"ghcr.io/a/b:t@{D}", "ghcr.io", "a/b", "t", D, "ghcr.io"),
    (f"host.example:443/a@{D}", "host.example:443", "a", None, D, "host.example:443"),
    (
        "a/b_c/d__e/f-g/h--i/j.k:T_a-g.1",
        "docker.io",
        "a/b_c/d__e/f-g/h--i/j.k",
        "T_a-g.1",
        None,
        "registry-1.docker.io",
    ),
    ("x" + ":" + "t" * 128, "docker.io", "library/x", "t" * 128, None, "registry-1.docker.io"),
    ("app:_x", "docker.io", "library/app", "_x", None, "registry-1.docker.io"),
    (f"a@sha512:{'b' * 128}", "docker.io", "library/a", None, f"sha512:{'b' * 128}", "registry-1.docker.io"),
    (f"a@sha384:{'c' * 96}", "docker.io", "library/a", None, f"sha384:{'c' * 96}", "registry-1.docker.io"),
]


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest", "api_host"), VALID)
def test_valid(text: str, registry: str, repository: str, tag: str | None, digest: str | None, api_host: str) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag) == (registry, repository, tag)
    assert (str(ref.digest) if ref.digest else None) == digest
    assert ref.api_host == api_host
    assert parse_reference(str(ref)) == ref  # the canonical form parses to itself


INVALID = [
    # text, a fragment of the reason
    ("", "empty"),
    (" nginx", "spaces"),
    ("nginx ", "spaces"),
    ("docker.io/Library/nginx", "lowercase"),
    ("myacr.azurecr.io/MyApp:1", "lowercase"),
    ("nginx:" + "t" * 129, "129 characters, over the limit of 128"),
    ("nginx:-bad", "tag must start"),
    ("nginx:", "tag is empty"),
    ("nginx:a+b", "tag must start"),
    ("nginx@", "digest"),
    ("a@blake3:" + "c" * 64, "digest algorithm blake3 cannot be verified"),
    ("nginx@sha256:abc", "64 lowercase hex"),
    (f"nginx@sha256:{'A' * 64}", "64 lowercase hex"),
    (f"nginx@SHA256:{H64}", "bad digest algorithm"),
    ("nginx@sha256", "algorithm:hex"),
    (f"nginx@sha512:{H64}", "128 lowercase hex"),
    ("a//b", "empty path component"),
    ("a/b/", "empty path component"),
    ("/a", "empty path component"),
    ("ghcr.io/", "repository is empty"),
    ("a/-b", "must be lowercase letters"),
    ("a/b_", "must be lowercase letters"),
    ("a/b...c", "must be lowercase letters"),
    ("a/b___c", "must be lowercase letters"),
    ("host:99999/a", "out of range"),
    ("host:port/a", "not a valid host"),
    ("-host.io/a", "not a valid host"),
    ("_host.io/a", "not a valid host"),
    ("ghcr.io/" + "a" * 250, "longer than 255"),
    ("a/b:c:d", "must be lowercase letters"),
    ("Foo/bar", "repository name must be lowercase"),
]


@pytest.mark.parametrize(("text", "reason"), INVALID)
def test_invalid(text: str, reason: str) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_reference(text)
    assert reason in str(caught.value)
    assert caught.value.code == "INVALID_REFERENCE"


def test_default_registry_replaces_docker_hub() -> None:
    ref = parse_reference("team/app:1", default_registry="myacr.azurecr.io")
    assert (ref.registry, ref.repository, ref.tag) == ("myacr.azurecr.io", "team/app", "1")
    # Docker Hub's library/ rule is Docker Hub's only.
    assert parse_reference("app", default_registry="ghcr.io").repository == "app"


@pytest.mark.parametrize(
    ("text", "login_server"),
    [
        ("myregistry", "myregistry.azurecr.io"),
        ("MyRegistry", "myregistry.azurecr.io"),
        ("myregistry.azurecr.io", "myregistry.azurecr.io"),
        ("https://myregistry.azurecr.io/", "myregistry.azurecr.io"),
        ("myregistry.eastus.geo.azurecr.io", "myregistry.azurecr.io"),
        ("myregistry.azurecr.us", "myregistry.azurecr.us"),
        ("localhost", "localhost"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("docker.io", "docker.io"),
        ("index.docker.io", "docker.io"),
    ],
)
def test_parse_registry(text: str, login_server: str) -> None:
    assert parse_registry(text) == login_server


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("abc", "5-50 letters"),
        ("my-registry", "5-50 letters"),
        ("ftp://x.io", "scheme"),
        ("x.io/path", "without a path"),
    ],
)
def test_parse_registry_invalid(text: str, reason: str) -> None:
    with pytest.raises(InvalidReferenceError, match=reason):
        parse_registry(text)


def test_is_acr() -> None:
    assert is_acr("a.azurecr.io") and is_acr("a.azurecr.cn") and not is_acr("azurecr.io.evil.com")
