"""Image references: ``[registry/]repository[:tag][@digest]``, parsed once.

The grammar is distribution/reference's (``reference.go`` and ``normalize.go``):

- the first path component is a registry when it contains ``.`` or ``:`` or is ``localhost``;
  otherwise the reference is on Docker Hub (an upper-case first component is refused, as Docker
  does, rather than read as a registry the canonical form could not name again);
- Docker Hub's one-component names live under ``library/`` (``nginx`` → ``docker.io/library/nginx``);
- repository components are ``[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*``, the whole name at most 255
  characters with its registry;
- tags are ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``; a digest follows ``@``. ``name:tag@digest`` is
  kept whole: the copy checks the tag still resolves to that digest.

Registries are normalised in :func:`normalize_registry`, the only place that knows host aliases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from shared.errors import InvalidReferenceError
from shared.oci.digest import Digest

DOCKER_HUB = "docker.io"
#: Docker Hub's familiar name is not its API host (normalize.go: ``defaultDomain`` vs
#: ``legacyDefaultDomain``; the registry API itself answers on registry-1.docker.io).
DOCKER_HUB_API = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = frozenset({DOCKER_HUB, "index.docker.io", DOCKER_HUB_API, "registry.hub.docker.com"})
#: Login-server suffixes of ACR in the public and sovereign clouds.
ACR_SUFFIXES = ("azurecr.io", "azurecr.cn", "azurecr.us")
#: An ACR registry name (ARM: 5-50 alphanumerics).
_ACR_NAME = re.compile(r"[a-zA-Z0-9]{5,50}")
#: Regional endpoints ``name.region.geo.azurecr.io`` are rewritten to the login server, as
#: az acr import does (azure-cli ``_regional_endpoint_uri_to_login_server``).
_ACR_REGIONAL = re.compile(r"([a-z0-9]+)\.[a-z0-9-]+\.geo\.(azurecr\.[a-z.-]+)")

_HOST_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(rf"(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[a-fA-F0-9:]+\])(?::(?P<port>[0-9]+))?")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_MAX_NAME = 255
#: An ACR's ARM resource ID:
#: /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries/{name}
RESOURCE_ID = re.compile(
    r"/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-\w._()]{1,90}"
    r"/providers/Microsoft\.ContainerRegistry/registries/(?P<name>[a-zA-Z0-9]{5,50})",
    re.IGNORECASE,
)


def api_host_of(registry: str) -> str:
    """The host a (canonical) registry's distribution API answers on."""
    return DOCKER_HUB_API if registry == DOCKER_HUB else registry


def is_resource_id(text: str) -> bool:
    """Whether ``text`` is shaped like an ARM resource ID (a container registry's or not): what
    ``--registry`` and ``source.resourceId`` are told apart by."""
    return text.startswith("/subscriptions/")


@dataclass(frozen=True, slots=True)
class ImagePath:
    """``repository[:tag][@digest]`` with no registry: an image inside a registry named apart
    (``az acr import --registry``, ARM's ``sourceImage`` beside a resource ID)."""

    repository: str
    tag: str | None = None
    digest: Digest | None = None

    def __str__(self) -> str:
        return self.repository + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def parse_image_path(text: str) -> ImagePath:
    """Parse ``repository[:tag][@digest]`` (no registry part, no Docker Hub rules)."""
    if not text or text != text.strip():
        raise InvalidReferenceError(text, "reference is empty or has surrounding spaces")
    remainder, at, digest_text = text.partition("@")
    if at and not digest_text:
        raise InvalidReferenceError(text, "digest is empty")
    digest = Digest.parse(digest_text) if at else None
    tag: str | None = None
    colon = remainder.rfind(":")
    if colon != -1 and "/" not in remainder[colon:]:
        remainder, tag = remainder[:colon], parse_tag(remainder[colon + 1 :], whole=text)
    return ImagePath(parse_repository(remainder, whole=text), tag, digest)


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed image reference. ``registry`` is canonical (``docker.io``, never an alias)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @property
    def api_host(self) -> str:
        """The host the distribution API answers on."""
        return api_host_of(self.registry)

    @property
    def identifier(self) -> str:
        """What goes after ``/manifests/``: the digest when there is one, else the tag (``latest``)."""
        return str(self.digest) if self.digest else (self.tag or "latest")

    @property
    def name(self) -> str:
        """``registry/repository``."""
        return f"{self.registry}/{self.repository}"

    def with_tag(self, tag: str | None) -> Reference:
        return replace(self, tag=tag)

    def with_digest(self, digest: Digest | None) -> Reference:
        return replace(self, digest=digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def normalize_registry(text: str) -> str:
    """The canonical form of a registry host: lower case, Docker Hub aliases folded to
    ``docker.io``, ACR regional endpoints to their login server."""
    host = text.strip().lower()
    if not host:
        raise InvalidReferenceError(text, "registry is empty")
    match = _HOST.fullmatch(host)
    if not match:
        raise InvalidReferenceError(text, "registry is not a valid host[:port]")
    port = match.group("port")
    if port is not None and not 0 < int(port) < 65536:
        raise InvalidReferenceError(text, f"registry port {port} is out of range")
    if host in _DOCKER_HUB_ALIASES:
        return DOCKER_HUB
    regional = _ACR_REGIONAL.fullmatch(host)
    if regional and regional.group(2) in ACR_SUFFIXES:
        return f"{regional.group(1)}.{regional.group(2)}"
    return host


def parse_registry(text: str) -> str:
    """A target or source registry as ``az acr import --name`` takes it: an ACR name
    (``myregistry`` → ``myregistry.azurecr.io``) or any login server ``host[:port]``."""
    stripped = text.strip()
    if "://" in stripped:
        scheme, _, stripped = stripped.partition("://")
        if scheme not in ("http", "https"):
            raise InvalidReferenceError(text, f"unsupported scheme {scheme!r}")
    stripped = stripped.rstrip("/")
    if "/" in stripped:
        raise InvalidReferenceError(text, "a registry is host[:port], without a path")
    if "." not in stripped and ":" not in stripped and stripped.lower() != "localhost":
        if not _ACR_NAME.fullmatch(stripped):
            raise InvalidReferenceError(text, "an ACR name is 5-50 letters and digits; otherwise give a login server")
        return f"{stripped.lower()}.azurecr.io"
    return normalize_registry(stripped)


def is_acr(registry: str) -> bool:
    return any(registry.endswith("." + suffix) for suffix in ACR_SUFFIXES)


def parse_repository(text: str, *, whole: str | None = None) -> str:
    """Check a repository path (``a/b/c``) and return it."""
    shown = whole if whole is not None else text
    if not text:
        raise InvalidReferenceError(shown, "repository is empty")
    for component in text.split("/"):
        if not component:
            raise InvalidReferenceError(shown, "repository has an empty path component")
        if not _PATH_COMPONENT.fullmatch(component):
            if _PATH_COMPONENT.fullmatch(component.lower()):
                raise InvalidReferenceError(shown, "repository name must be lowercase")
            raise InvalidReferenceError(
                shown,
                f"repository component {component!r} must be lowercase letters and digits "
                "separated by '.', '_', '__' or '-'",
            )
    return text


def parse_tag(text: str, *, whole: str | None = None) -> str:
    shown = whole if whole is not None else text
    if not text:
        raise InvalidReferenceError(shown, "tag is empty")
    if len(text) > 128:
        raise InvalidReferenceError(shown, f"tag is {len(text)} characters, over the limit of 128")
    if not _TAG.fullmatch(text):
        raise InvalidReferenceError(
            shown, "tag must start with a letter, digit or '_' and hold only those, '.' and '-'"
        )
    return text


def _split_registry(text: str, remainder: str) -> tuple[str, str]:
    first, sep, rest = remainder.partition("/")
    if sep and (any(c in first for c in ".:") or first == "localhost"):
        return normalize_registry(first), rest
    if sep and first.lower() != first:
        # distribution treats it as a registry; Docker refuses it: "repository name must be lowercase"
        raise InvalidReferenceError(text, "repository name must be lowercase")
    return DOCKER_HUB, remainder


def parse_reference(text: str, *, default_registry: str | None = None) -> Reference:
    """Parse ``[registry/]repository[:tag][@digest]``.

    ``default_registry`` replaces Docker Hub for names without a registry part (``az acr import
    --registry R --source repo:tag``); Docker Hub's ``library/`` rule applies only on Docker Hub.
    """
    if not text or text != text.strip():
        raise InvalidReferenceError(text, "reference is empty or has surrounding spaces")
    remainder, at, digest_text = text.partition("@")
    digest = Digest.parse(digest_text) if at else None
    if at and not digest_text:
        raise InvalidReferenceError(text, "digest is empty")

    if default_registry is not None:
        registry, path = normalize_registry(default_registry), remainder
    else:
        registry, path = _split_registry(text, remainder)

    tag: str | None = None
    colon = path.rfind(":")
    if colon != -1:
        path, tag = path[:colon], parse_tag(path[colon + 1 :], whole=text)

    repository = parse_repository(path, whole=text)
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if len(registry) + 1 + len(repository) > _MAX_NAME:
        raise InvalidReferenceError(text, f"name is longer than {_MAX_NAME} characters")
    return Reference(registry, repository, tag, digest)
