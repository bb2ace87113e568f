"""An in-memory repository that is both a :class:`Source` and a :class:`Target`: the engine's
test double, and a counting record of what the engine asked of it."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

from shared.content.protocols import Landed, Opener
from shared.errors import DigestMismatchError, NotFoundError, SizeMismatchError
from shared.oci.digest import Digest
from shared.oci.manifest import Descriptor, Index, parse_manifest


class MemoryStore:
    def __init__(self, registry: str = "memory", repository: str = "repo") -> None:
        self.registry = registry
        self.repository = repository
        self.blobs: dict[Digest, bytes] = {}
        self.manifests: dict[Digest, tuple[str, bytes]] = {}
        self.tags: dict[str, Digest] = {}
        self.calls: Counter[str] = Counter()
        #: Blobs this store's registry holds in other repositories (for mounts).
        self.siblings: dict[str, MemoryStore] = {}

    def _missing(self, what: str) -> NotFoundError:
        return NotFoundError(
            op=what,
            origin=self.registry,
            method="GET",
            url=f"memory://{self.registry}/{self.repository}",
            status=404,
            registry_code="NOT_FOUND",
            registry_message=what,
        )

    # -- Source -----------------------------------------------------------------------------

    async def resolve(self, reference: str) -> Descriptor:
        self.calls["resolve"] += 1
        found = await self.lookup(reference)
        if found is None:
            raise self._missing(f"manifest {reference}")
        return found

    async def lookup(self, reference: str) -> Descriptor | None:
        self.calls["lookup"] += 1
        digest = self.tags.get(reference) if ":" not in reference else Digest.parse(reference)
        if digest is None or digest not in self.manifests:
            return None
        media_type, data = self.manifests[digest]
        return Descriptor(media_type, digest, len(data))

    async def fetch_manifest(self, desc: Descriptor) -> bytes:
        self.calls["fetch_manifest"] += 1
        if desc.digest not in self.manifests:
            raise self._missing(f"manifest {desc.digest}")
        return self.manifests[desc.digest][1]

    async def fetch(self, desc: Descriptor, offset: int = 0) -> AsyncIterator[bytes]:
        self.calls["fetch"] += 1
        if desc.digest not in self.blobs:
            raise self._missing(f"blob {desc.digest}")
        data = self.blobs[desc.digest]
        for i in range(offset, len(data), 65536):
            yield data[i : i + 65536]

    async def referrers(self, desc: Descriptor) -> list[Descriptor]:
        self.calls["referrers"] += 1
        found = []
        for digest, (media_type, data) in self.manifests.items():
            node = parse_manifest(data, media_type)
            if node.subject is not None and node.subject.digest == desc.digest:
                found.append(Descriptor(media_type, digest, len(data), artifact_type=node.artifact_type))
        return found

    # -- Target -----------------------------------------------------------------------------

    async def exists(self, desc: Descriptor) -> bool:
        self.calls["exists"] += 1
        return desc.digest in self.blobs or desc.digest in self.manifests

    async def put_blob(self, desc: Descriptor, open_at: Opener, mount_from: str | None = None) -> Landed:
        if await self.exists(desc):
            return "present"
        if mount_from is not None and await self.mount(desc, mount_from):
            return "mounted"
        await self.push(desc, open_at)
        return "copied"

    async def push(self, desc: Descriptor, open_at: Opener) -> None:
        self.calls["push"] += 1
        data = b"".join([chunk async for chunk in open_at(0)])
        if len(data) != desc.size:
            raise SizeMismatchError(f"push {desc.digest}", desc.size, len(data))
        if Digest.of(data, desc.digest.algorithm) != desc.digest:
            raise DigestMismatchError(f"push {desc.digest}", str(desc.digest), str(Digest.of(data)))
        self.blobs[desc.digest] = data

    async def mount(self, desc: Descriptor, from_repository: str) -> bool:
        self.calls["mount"] += 1
        sibling = self.siblings.get(from_repository)
        if sibling is None or desc.digest not in sibling.blobs:
            return False
        self.blobs[desc.digest] = sibling.blobs[desc.digest]
        return True

    async def push_manifest(self, desc: Descriptor, data: bytes) -> bool:
        self.calls["push_manifest"] += 1
        node = parse_manifest(data, desc.media_type)
        children = node.manifests if isinstance(node, Index) else node.blobs
        for child in children:  # like a registry that checks references (MANIFEST_BLOB_UNKNOWN)
            if child.digest not in self.blobs and child.digest not in self.manifests and not child.is_foreign:
                raise self._missing(f"reference {child.digest} of manifest {desc.digest}")
        self.manifests[Digest.of(data)] = (desc.media_type, data)
        return True

    async def tag(self, desc: Descriptor, data: bytes, tag: str) -> None:
        self.calls["tag"] += 1
        self.manifests[Digest.of(data)] = (desc.media_type, data)
        self.tags[tag] = Digest.of(data)

    def put_manifest(self, media_type: str, data: bytes, tag: str | None = None) -> Digest:
        """Test set-up: store a manifest (and tag it) without the engine."""
        digest = Digest.of(data)
        self.manifests[digest] = (media_type, data)
        if tag:
            self.tags[tag] = digest
        return digest
