"""What one import asks for, validated, with ``az acr import``'s naming rules.

- Without ``--image``/``--repository`` the target is the source's repository and tag
  (``docker.io/library/nginx:1.27`` → ``library/nginx:1.27``); a digest-only source lands as
  ``latest``, as the ARM API fills it in.
- An ``--image`` without a tag takes the source's tag, or ``latest`` when the source is a digest.
- ``--repository`` is an untagged, manifest-only copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.errors import InvalidReferenceError
from shared.oci.manifest import Platform
from shared.oci.reference import Reference, parse_reference, parse_registry, parse_repository, parse_tag

DEFAULT_MAX_MANIFESTS = 50
DEFAULT_MAX_PUBLIC_BLOB_BYTES = 2 * 1024**3
#: Descriptors (manifests, configs and layers) per import: 50 manifests of 127 layers each (the
#: most Docker builds) are 6,400; 20,000 is past every real image and short of the 4 million a
#: hostile registry could list in 49 manifests of 4 MiB each.
DEFAULT_MAX_DESCRIPTORS = 20_000


@dataclass(frozen=True, slots=True)
class TargetRef:
    repository: str
    tag: str | None = None  # None: untagged (manifest-only) copy

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}" if self.tag else self.repository


@dataclass(frozen=True, slots=True)
class Limits:
    """az acr import's limits and the descriptor bound, configurable (read by
    :func:`shared.environment.limits`)."""

    max_manifests: int = DEFAULT_MAX_MANIFESTS
    #: Per blob, when the source is reached without credentials (a public registry); None: no limit.
    max_public_blob_bytes: int | None = DEFAULT_MAX_PUBLIC_BLOB_BYTES
    #: Descriptors per import, manifests and blobs together.
    max_descriptors: int = DEFAULT_MAX_DESCRIPTORS


@dataclass(frozen=True, slots=True)
class ImportSpec:
    source: Reference
    target_registry: str
    targets: tuple[TargetRef, ...]
    force: bool = False
    platforms: tuple[Platform, ...] = ()
    include_referrers: bool = False
    dry_run: bool = False
    limits: Limits = field(default_factory=Limits)

    @property
    def tagged(self) -> tuple[TargetRef, ...]:
        return tuple(t for t in self.targets if t.tag)

    @property
    def repositories(self) -> tuple[str, ...]:
        """Target repositories in order, each once."""
        return tuple(dict.fromkeys(t.repository for t in self.targets))


def parse_source(source: str, registry: str | None = None) -> Reference:
    """``--source``, read as ``az acr import`` does: with ``--registry``, a path inside that
    registry (a repeated login-server prefix is dropped); otherwise a full reference."""
    if registry is None:
        return parse_reference(source)
    login_server = parse_registry(registry)
    prefix = f"{login_server}/"
    if source.lower().startswith(prefix):
        source = source[len(prefix) :]
    return parse_reference(source, default_registry=login_server)


def parse_target_image(text: str, source: Reference | None = None) -> TargetRef:
    """``--image REPO[:TAG]``: a repository in the target, the tag defaulting to the source's
    (without a source, the tag given or None: what validation needs)."""
    if "@" in text:
        raise InvalidReferenceError(text, "a target image takes a tag, not a digest")
    repository, tag = text, None
    colon = text.rfind(":")
    if colon > text.rfind("/"):
        repository, tag = text[:colon], parse_tag(text[colon + 1 :], whole=text)
    parse_repository(repository, whole=text)
    if source is not None:
        tag = tag or source.tag or "latest"
    return TargetRef(repository, tag)


def build_spec(
    source: str,
    target_registry: str,
    images: list[str] | tuple[str, ...] = (),
    repositories: list[str] | tuple[str, ...] = (),
    *,
    registry: str | None = None,
    force: bool = False,
    platforms: list[str] | tuple[str, ...] = (),
    include_referrers: bool = False,
    dry_run: bool = False,
    limits: Limits | None = None,
) -> ImportSpec:
    """An :class:`ImportSpec` from ``az acr import``-style strings; raises
    :class:`InvalidReferenceError` (a ``ValueError``) naming what is wrong."""
    ref = parse_source(source, registry)
    targets = [parse_target_image(i, ref) for i in images]
    targets += [TargetRef(parse_repository(r)) for r in repositories]
    if not targets:
        targets = [TargetRef(ref.repository, ref.tag or "latest")]
    try:
        wanted = tuple(Platform.parse(p) for p in platforms)
    except ValueError as exc:
        raise InvalidReferenceError(", ".join(platforms), str(exc)) from None
    return ImportSpec(
        source=ref,
        target_registry=parse_registry(target_registry),
        targets=tuple(dict.fromkeys(targets)),
        force=force,
        platforms=wanted,
        include_referrers=include_referrers,
        dry_run=dry_run,
        limits=limits or Limits(),
    )
