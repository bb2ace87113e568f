"""Generated images, so that tests never depend on the internet: random layers, valid OCI and
Docker v2 manifests, indexes with several platforms and shared layers, artifacts with a subject."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from shared.oci import mediatypes as mt
from shared.oci.digest import Digest
from shared.oci.manifest import Descriptor, Platform
from shared.registry import RegistryClient


@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, Digest.of(self.data), len(self.data))


@dataclass
class Image:
    """A manifest with its blobs (an image, or an artifact)."""

    manifest: bytes
    media_type: str
    blobs: list[Blob]
    platform: Platform | None = None
    artifact_type: str | None = None

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(
            self.media_type,
            Digest.of(self.manifest),
            len(self.manifest),
            platform=self.platform,
            artifact_type=self.artifact_type,
        )

    @property
    def digest(self) -> Digest:
        return Digest.of(self.manifest)


@dataclass
class IndexImage:
    manifest: bytes
    media_type: str
    children: list[Image] = field(default_factory=list)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, Digest.of(self.manifest), len(self.manifest))

    @property
    def digest(self) -> Digest:
        return Digest.of(self.manifest)

    @property
    def blobs(self) -> list[Blob]:
        unique: dict[Digest, Blob] = {}
        for child in self.children:
            for blob in child.blobs:
                unique.setdefault(blob.descriptor.digest, blob)
        return list(unique.values())


def random_bytes(size: int, seed: int | str) -> bytes:
    return random.Random(seed).randbytes(size)


def _desc_json(desc: Descriptor) -> dict[str, Any]:
    return desc.to_json()


def make_image(
    layer_sizes: list[int] | tuple[int, ...] = (1024, 2048),
    *,
    seed: int | str = 0,
    docker: bool = False,
    platform: Platform | None = None,
    shared_layers: list[Blob] | None = None,
) -> Image:
    """An image whose layers are random bytes (the registry does not look inside)."""
    platform = platform or Platform("linux", "amd64")
    layer_type = mt.DOCKER_LAYER if docker else mt.OCI_LAYER_GZIP
    layers = list(shared_layers or []) + [
        Blob(random_bytes(size, f"{seed}-layer-{i}"), layer_type) for i, size in enumerate(layer_sizes)
    ]
    config_doc = {
        "architecture": platform.architecture,
        "os": platform.os,
        "rootfs": {"type": "layers", "diff_ids": [str(Digest.of(b.data)) for b in layers]},
        "config": {"Labels": {"seed": str(seed)}},
    }
    config = Blob(json.dumps(config_doc, sort_keys=True).encode(), mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG)
    media_type = mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": _desc_json(config.descriptor),
        "layers": [_desc_json(b.descriptor) for b in layers],
    }
    return Image(json.dumps(doc, indent=3).encode(), media_type, [config, *layers], platform)


def make_index(images: list[Image], *, docker: bool = False, annotations: dict[str, str] | None = None) -> IndexImage:
    media_type = mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [_desc_json(i.descriptor) for i in images],
    }
    if annotations:
        doc["annotations"] = annotations
    return IndexImage(json.dumps(doc, indent=2).encode(), media_type, images)


def index_of_strangers(count: int) -> bytes:
    """An OCI index of ``count`` made-up platforms whose manifests exist nowhere (a hostile index)."""
    children = [
        {
            "mediaType": mt.OCI_MANIFEST,
            "digest": str(Digest.of(str(i).encode())),
            "size": 10,
            "platform": {"os": "linux", "architecture": f"a{i}"},
        }
        for i in range(count)
    ]
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": children}).encode()


def make_multiarch(
    platforms: list[str] = ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"],  # noqa: B006
    layer_sizes: tuple[int, ...] = (4096, 8192),
    shared_sizes: tuple[int, ...] = (16384,),
    *,
    seed: int | str = 0,
    docker: bool = False,
) -> IndexImage:
    """An index over ``platforms``; every platform shares the ``shared_sizes`` layers."""
    shared = [
        Blob(random_bytes(s, f"{seed}-shared-{i}"), mt.DOCKER_LAYER if docker else mt.OCI_LAYER_GZIP)
        for i, s in enumerate(shared_sizes)
    ]
    images = [
        make_image(layer_sizes, seed=f"{seed}-{p}", docker=docker, platform=Platform.parse(p), shared_layers=shared)
        for p in platforms
    ]
    return make_index(images, docker=docker)


def make_artifact(subject: Descriptor, artifact_type: str, payload: bytes, *, seed: int | str = 0) -> Image:
    """An OCI artifact (empty config, one blob) that refers to ``subject``."""
    empty = Blob(mt.EMPTY_JSON, mt.OCI_EMPTY)
    blob = Blob(payload, "application/octet-stream")
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": _desc_json(empty.descriptor),
        "layers": [_desc_json(blob.descriptor)],
        "subject": _desc_json(subject),
        "annotations": {"seed": str(seed)},
    }
    return Image(json.dumps(doc).encode(), mt.OCI_MANIFEST, [empty, blob], artifact_type=artifact_type)


async def push_image(client: RegistryClient, repo: str, image: Image | IndexImage, tag: str | None = None) -> Digest:
    """Push blobs, then child manifests, then the root (by tag, or by digest)."""
    children = image.children if isinstance(image, IndexImage) else []
    for blob in image.blobs:
        if await client.blob_exists(repo, blob.descriptor.digest) is None:
            await client.push_blob(repo, blob.descriptor, blob.data)
    for child in children:
        await client.push_manifest(repo, str(child.digest), child.manifest, child.media_type)
    pushed = await client.push_manifest(repo, tag or str(image.digest), image.manifest, image.media_type)
    return pushed.digest


async def seed(reg: Any, repo: str, image: Image | IndexImage, tag: str | None = "v1") -> Digest:
    """Push ``image`` into ``reg`` (a running test registry) as ``repo:tag``."""
    async with reg.client() as client:
        return await push_image(client, repo, image, tag)
