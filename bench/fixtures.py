"""The benchmark's images, generated (no internet): layers of pseudo-random bytes, streamed into
the source registry so a 1 GiB layer never sits in memory whole."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

from shared.oci import mediatypes as mt
from shared.oci.digest import Digest
from shared.oci.manifest import Descriptor, Platform
from shared.registry import RegistryClient, TransportOptions

MiB = 1024 * 1024
_BLOCK = 16 * MiB


@dataclass(frozen=True)
class Layer:
    size: int
    seed: str

    def chunks(self, offset: int = 0) -> Iterator[bytes]:
        """16 MiB blocks of one random block, each block made unique by its index."""
        base = random.Random(self.seed).randbytes(min(_BLOCK, self.size))
        position = 0
        index = 0
        while position < self.size:
            block = index.to_bytes(8, "big") + base[8:]
            block = block[: min(len(block), self.size - position)]
            if position + len(block) > offset:
                yield block[max(0, offset - position) :]
            position += len(block)
            index += 1

    def descriptor(self) -> Descriptor:
        h = hashlib.sha256()
        for chunk in self.chunks():
            h.update(chunk)
        return Descriptor(mt.OCI_LAYER_GZIP, Digest("sha256", h.hexdigest()), self.size)


@dataclass
class Fixture:
    name: str
    repo: str
    platforms: list[str]
    unique_per_platform: list[int]
    shared: list[int] = field(default_factory=list)
    same_registry: bool = False
    again: bool = False
    ceiling: bool = True
    blob_list: list[tuple[str, int]] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.repo}:bench"

    @property
    def unique_bytes(self) -> int:
        return len(self.platforms) * sum(self.unique_per_platform) + sum(self.shared)


FIXTURES = [
    Fixture("small", "fixtures/small", ["linux/amd64"], [MiB] * 3),
    Fixture(
        "multi",
        "fixtures/multi",
        ["linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/ppc64le"],
        [14 * MiB] * 3,
        [14 * MiB] * 2,
    ),
    Fixture("many", "fixtures/many", ["linux/amd64"], [256 * 1024] * 100),
    Fixture("big", "fixtures/big", ["linux/amd64"], [1024 * MiB]),
    Fixture(
        "same-registry",
        "fixtures/multi",
        ["linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/ppc64le"],
        [14 * MiB] * 3,
        [14 * MiB] * 2,
        same_registry=True,
        ceiling=False,
    ),
    Fixture(
        "again",
        "fixtures/multi",
        ["linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/ppc64le"],
        [14 * MiB] * 3,
        [14 * MiB] * 2,
        again=True,
        ceiling=False,
    ),
]


async def _push_layer(client: RegistryClient, repo: str, layer: Layer, desc: Descriptor) -> None:
    if await client.blob_exists(repo, desc.digest) is not None:
        return

    async def open_at(offset: int) -> AsyncIterator[bytes]:
        for chunk in layer.chunks(offset):
            yield chunk

    await client.push_blob_chunked(repo, desc, open_at)


async def _push_json(client: RegistryClient, repo: str, doc: dict[str, object], media_type: str) -> Descriptor:
    data = json.dumps(doc).encode()
    desc = Descriptor(media_type, Digest.of(data), len(data))
    if media_type in (mt.OCI_CONFIG,):
        await client.push_blob(repo, desc, data)
    else:
        await client.push_manifest(repo, str(desc.digest), data, media_type)
    return desc


async def push_fixture(host: str, fixture: Fixture) -> None:
    """Push the fixture's image (an index when it has several platforms) as ``:bench``."""
    shared = [Layer(size, f"{fixture.repo}-shared-{i}") for i, size in enumerate(fixture.shared)]
    children = []
    blobs: dict[str, int] = {}
    async with RegistryClient(host, options=TransportOptions(allow_loopback=True)) as client:
        for p in fixture.platforms:
            layers = shared + [
                Layer(size, f"{fixture.repo}-{p}-{i}") for i, size in enumerate(fixture.unique_per_platform)
            ]
            descs = [layer.descriptor() for layer in layers]
            for layer, desc in zip(layers, descs, strict=True):
                await _push_layer(client, fixture.repo, layer, desc)
                blobs[str(desc.digest)] = desc.size
            platform = Platform.parse(p)
            config = await _push_json(
                client,
                fixture.repo,
                {
                    "architecture": platform.architecture,
                    "os": platform.os,
                    "rootfs": {"type": "layers", "diff_ids": [str(d.digest) for d in descs]},
                },
                mt.OCI_CONFIG,
            )
            blobs[str(config.digest)] = config.size
            manifest = {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "config": config.to_json(),
                "layers": [d.to_json() for d in descs],
            }
            desc = await _push_json(client, fixture.repo, manifest, mt.OCI_MANIFEST)
            children.append(Descriptor(desc.media_type, desc.digest, desc.size, platform=platform))
        if len(children) == 1:
            _, data = await client.fetch_manifest(fixture.repo, str(children[0].digest))
            await client.push_manifest(fixture.repo, "bench", data, mt.OCI_MANIFEST)
        else:
            index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [c.to_json() for c in children]}
            data = json.dumps(index).encode()
            await client.push_manifest(fixture.repo, "bench", data, mt.OCI_INDEX)
    fixture.blob_list = list(blobs.items())
