"""The storage verbs the engine walks over (after oras-go's ``content`` package): a source can
``resolve``, ``fetch`` and list ``referrers``; a target can say what ``exists``, ``push``,
``mount`` and ``tag``. Both are one repository of one registry.

Blob content is passed as an :data:`Opener`: ``open_at(offset)`` streams the blob from
``offset``, so a target can resume an upload where its registry says it stands.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

from shared.oci.manifest import Descriptor

Opener = Callable[[int], AsyncIterator[bytes]]


class Source(Protocol):
    registry: str
    repository: str

    async def resolve(self, reference: str) -> Descriptor:
        """The descriptor a tag or digest points at."""
        ...

    async def fetch_manifest(self, desc: Descriptor) -> bytes:
        """A manifest's exact bytes, verified against ``desc``."""
        ...

    def fetch(self, desc: Descriptor, offset: int = 0) -> AsyncIterator[bytes]:
        """A blob's bytes from ``offset``; verified against ``desc`` when read from 0."""
        ...

    async def referrers(self, desc: Descriptor) -> list[Descriptor]:
        """Manifests whose ``subject`` is ``desc``."""
        ...


class Target(Protocol):
    registry: str
    repository: str

    async def exists(self, desc: Descriptor) -> bool: ...

    async def push(self, desc: Descriptor, open_at: Opener) -> None:
        """Store a blob; it is committed only when its size and digest check out."""
        ...

    async def mount(self, desc: Descriptor, from_repository: str) -> bool:
        """Link a blob from another repository of the same registry; False when it cannot."""
        ...

    async def push_manifest(self, desc: Descriptor, data: bytes) -> bool:
        """Store a manifest by digest; True when the registry indexed its ``subject``
        (``OCI-Subject``), so no referrers tag needs maintaining."""
        ...

    async def tag(self, desc: Descriptor, data: bytes, tag: str) -> None:
        """Point ``tag`` at the manifest ``data``."""
        ...

    async def lookup(self, reference: str) -> Descriptor | None:
        """What a tag or digest points at in the target, or None."""
        ...

    async def fetch_manifest(self, desc: Descriptor) -> bytes: ...
