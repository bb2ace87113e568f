"""Descriptors, platforms and manifests as values (OCI image-spec descriptor.md, manifest.md,
image-index.md; Docker manifest-v2-2.md).

:func:`parse_manifest` reads a manifest's bytes once and names what it references; the bytes
themselves are never re-serialised: what is pushed is what was fetched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.errors import IndexTooLargeError, InvalidReferenceError, ManifestError, UnsupportedContentError
from shared.oci import mediatypes as mt
from shared.oci.digest import Digest
from shared.strict import loads_strict

#: Manifests larger than this are refused: ACR's cap, and the size the distribution spec says
#: clients and registries SHOULD support ("Pushing Manifests").
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``os/arch[/variant]``, as ``--platform`` takes it."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform {text!r} must be os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def matches(self, wanted: Platform) -> bool:
        """True when this platform satisfies ``wanted`` (a missing variant in ``wanted`` matches any)."""
        return (
            self.os == wanted.os
            and self.architecture == wanted.architecture
            and (wanted.variant is None or self.variant == wanted.variant)
        )

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    platform: Platform | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_manifest(self) -> bool:
        return mt.is_manifest(self.media_type)

    @property
    def is_foreign(self) -> bool:
        """A non-distributable layer: registries fetch it from ``urls``; it is never pushed."""
        return self.media_type in mt.FOREIGN_LAYERS

    @classmethod
    def from_json(cls, data: Any, where: str = "descriptor") -> Descriptor:
        if not isinstance(data, dict):
            raise ManifestError(f"{where} is not an object")
        media_type = data.get("mediaType")
        digest = data.get("digest")
        size = data.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise ManifestError(f"{where} has no mediaType")
        if not isinstance(digest, str):
            raise ManifestError(f"{where} has no digest")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"{where} has no valid size")
        try:
            parsed = Digest.parse(digest)
        except InvalidReferenceError as exc:
            raise ManifestError(f"{where}: {exc.reason}") from exc
        platform = None
        raw_platform = data.get("platform")
        if isinstance(raw_platform, dict):
            platform = Platform(
                _text(raw_platform.get("os")) or "",
                _text(raw_platform.get("architecture")) or "",
                _text(raw_platform.get("variant")),
                _text(raw_platform.get("os.version")),
            )
        urls = data.get("urls") or ()
        annotations = data.get("annotations") or {}
        return cls(
            media_type=media_type,
            digest=parsed,
            size=size,
            urls=tuple(str(u) for u in urls) if isinstance(urls, list) else (),
            platform=platform,
            artifact_type=_text(data.get("artifactType")),
            # The image spec says string to string; anything else is dropped, not trusted.
            annotations={k: v for k, v in annotations.items() if isinstance(v, str)}
            if isinstance(annotations, dict)
            else {},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            p: dict[str, Any] = {"architecture": self.platform.architecture, "os": self.platform.os}
            if self.platform.variant:
                p["variant"] = self.platform.variant
            if self.platform.os_version:
                p["os.version"] = self.platform.os_version
            out["platform"] = p
        return out


def _text(value: object) -> str | None:
    """A string field of a manifest, or None when it is missing or not a string."""
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class Manifest:
    """An image manifest (or artifact manifest): a config, layers, maybe a subject."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    artifact_type: str | None = None

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        return (self.config, *self.layers)


@dataclass(frozen=True, slots=True)
class Index:
    """An image index or Docker manifest list: a list of manifests."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    artifact_type: str | None = None


def parse_manifest(
    data: bytes, media_type: str | None = None, *, max_children: int | None = None, max_blobs: int | None = None
) -> Manifest | Index:
    """Parse manifest bytes. ``media_type`` is the ``Content-Type`` the registry sent, used when
    the document itself carries none (it is optional in OCI manifests). An index with more than
    ``max_children`` entries, or a manifest with more than ``max_blobs`` config and layers, raises
    :class:`IndexTooLargeError` before they become descriptors (a hostile index of tens of
    thousands would otherwise cost tens of MB)."""
    doc = _document(data)
    declared = doc.get("mediaType")
    kind = declared if isinstance(declared, str) and declared else (media_type or "")
    if doc.get("schemaVersion") == 1 or mt.is_schema1(kind):
        raise UnsupportedContentError(
            "Docker schema 1 manifests are deprecated and not supported: "
            "push the image again with a current Docker or buildx, or convert it with "
            "`skopeo copy --format v2s2`"
        )
    if not kind:
        kind = mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
    subject = Descriptor.from_json(doc["subject"], "subject") if doc.get("subject") else None
    artifact_type = _text(doc.get("artifactType"))
    if mt.is_index(kind):
        return Index(kind, _children(doc, max_children), subject, artifact_type)
    if kind in mt.MANIFESTS:
        config, layers = _blobs(doc, max_blobs)
        return Manifest(kind, config, layers, subject, artifact_type)
    raise ManifestError(f"unknown manifest media type {kind!r}")


def _document(data: bytes) -> dict[str, Any]:
    """The manifest's JSON object, within the size and nesting limits."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest is {len(data)} bytes, over the {MAX_MANIFEST_BYTES}-byte limit")
    try:
        doc = loads_strict(data)
    except ValueError as exc:
        raise ManifestError(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError("manifest is not a JSON object")
    return doc


def _children(doc: dict[str, Any], limit: int | None) -> tuple[Descriptor, ...]:
    children = doc.get("manifests")
    if not isinstance(children, list):
        raise ManifestError("index has no manifests list")
    if limit is not None and len(children) > limit:
        raise IndexTooLargeError(len(children))
    return tuple(Descriptor.from_json(c, f"manifests[{i}]") for i, c in enumerate(children))


def _blobs(doc: dict[str, Any], limit: int | None) -> tuple[Descriptor, tuple[Descriptor, ...]]:
    layers = doc.get("layers")
    if layers is None:
        layers = []
    if not isinstance(layers, list):
        raise ManifestError("manifest layers is not a list")
    if limit is not None and len(layers) + 1 > limit:
        raise IndexTooLargeError(len(layers) + 1, "blobs")
    config = Descriptor.from_json(doc.get("config"), "config")
    return config, tuple(Descriptor.from_json(layer, f"layers[{i}]") for i, layer in enumerate(layers))


def successors(node: Manifest | Index) -> tuple[Descriptor, ...]:
    """What a manifest references and must be present before it: children, config and layers.
    The ``subject`` is a weak reference and not a successor (distribution-spec "Pushing Manifests
    with Subject")."""
    if isinstance(node, Index):
        return node.manifests
    return node.blobs
