"""The storage verbs the engine walks over (after oras-go's ``content`` package): a source can
``resolve``, ``fetch`` and list ``referrers``; a target can say what ``exists``, ``push``,
``mount`` and ``tag``. Both are one repository of one registry.

Blob content is passed as an :data:`Opener`: ``open_at(offset)`` streams the blob from
``offset``, so a target can resume an upload where its registry says it stands.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Literal, Protocol

from shared.oci.manifest import Descriptor

Opener = Callable[[int], AsyncIterator[bytes]]
#: How a blob came to be in the target: it was there, it was mounted, or its bytes were sent.
Landed = Literal["present", "mounted", "copied"]
#: Blobs up to this size are small: a registry target reads one whole before sending it in one
#: request, and the engine starts reading it while the target is asked whether it needs it. At
#: most this much is held per operation in flight (64 of them: 64 MiB); beyond it the request
#: saved is lost in the transfer's own time.
SMALL_BLOB = 1 << 20


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

    async def put_blob(self, desc: Descriptor, open_at: Opener, mount_from: str | None = None) -> Landed:
        """Make sure the target has a blob: already there, mounted from ``mount_from`` (another
        repository of the same registry), or streamed from ``open_at`` and committed only when
        its size and digest check out."""
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
