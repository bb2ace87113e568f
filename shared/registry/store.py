"""One repository of a registry as a :class:`~shared.content.protocols.Source` and
:class:`~shared.content.protocols.Target`: the engine's view of :class:`RegistryClient`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from shared.content.protocols import SMALL_BLOB, Landed, Opener
from shared.errors import NotFoundError, RegistryError
from shared.oci.manifest import Descriptor, parse_manifest, successors
from shared.registry.client import PushedManifest, RegistryClient

log = logging.getLogger(__name__)

#: Answers to a manifest ``PUT`` that a concurrent writer of the same blobs can cause.
_RACE_CODES = frozenset({"DIGEST_INVALID", "BLOB_UNKNOWN", "MANIFEST_BLOB_UNKNOWN"})
#: Seconds before asking again: long enough for the other upload's link to land.
_RACE_PAUSE = 0.2


@dataclass(frozen=True, slots=True)
class UploadOptions:
    #: Ask whether a blob is there with a mount request from the repository itself (one ``POST``
    #: that answers ``201`` when it is, and otherwise opens the upload) instead of ``HEAD`` then
    #: ``POST``. distribution, ACR, Docker Hub, GHCR and Harbor link the blob (``201``); a registry
    #: without mounts (ECR) answers ``202`` and the blob is sent even when present. Turn off for those.
    probe_with_mount: bool = True


class RegistryRepository:
    """``registry/repository`` through ``client``; both a source and a target."""

    def __init__(self, client: RegistryClient, repository: str, upload: UploadOptions | None = None) -> None:
        self.client = client
        self.registry = client.registry
        self.repository = repository
        self.upload = upload or UploadOptions()

    def __repr__(self) -> str:
        return f"RegistryRepository({self.registry}/{self.repository})"

    # -- Source -----------------------------------------------------------------------------

    async def resolve(self, reference: str) -> Descriptor:
        return await self.client.resolve(self.repository, reference)

    async def fetch_manifest(self, desc: Descriptor) -> bytes:
        _, data = await self.client.fetch_manifest(self.repository, str(desc.digest), expected=desc.digest)
        return data

    def fetch(self, desc: Descriptor, offset: int = 0) -> AsyncIterator[bytes]:
        return self.client.fetch_blob(self.repository, desc, offset=offset)

    async def referrers(self, desc: Descriptor) -> list[Descriptor]:
        return await self.client.referrers(self.repository, desc.digest)

    # -- Target -----------------------------------------------------------------------------

    async def exists(self, desc: Descriptor) -> bool:
        if desc.is_manifest:
            return await self.lookup(str(desc.digest)) is not None
        return await self.client.blob_exists(self.repository, desc.digest) is not None

    async def lookup(self, reference: str) -> Descriptor | None:
        try:
            return await self.client.resolve(self.repository, reference)
        except NotFoundError:
            return None

    async def put_blob(self, desc: Descriptor, open_at: Opener, mount_from: str | None = None) -> Landed:
        if mount_from is None and not self.upload.probe_with_mount:
            if await self.client.blob_exists(self.repository, desc.digest) is not None:
                return "present"
            location = await self.client.start_upload(self.repository)
        else:
            location = await self.client.start_upload(
                self.repository, mount=desc.digest, source_repo=mount_from or self.repository
            )
            if location is None:
                return "mounted" if mount_from else "present"
        assert location is not None
        await self._upload(desc, open_at, location)
        return "copied"

    async def _upload(self, desc: Descriptor, open_at: Opener, location: httpx.URL) -> None:
        """A small blob read whole, then one ``PUT`` from memory that a stop lets finish (into a
        blob nothing references yet); a larger one in a streamed ``PATCH`` that a stop ends at a
        piece, then ``PUT ?digest=``. Either way a stop leaves no session holding data."""
        if desc.size <= SMALL_BLOB:
            await self.client.push_blob_whole(self.repository, desc, open_at, location=location)
        else:
            await self.client.push_blob_chunked(self.repository, desc, open_at, location=location)

    async def push_manifest(self, desc: Descriptor, data: bytes) -> bool:
        pushed = await self._put_manifest(str(desc.digest), desc, data)
        return pushed.subject_indexed

    async def tag(self, desc: Descriptor, data: bytes, tag: str) -> None:
        await self._put_manifest(tag, desc, data)

    async def _put_manifest(self, ref: str, desc: Descriptor, data: bytes) -> PushedManifest:
        """``PUT`` the manifest. A registry that answers ``DIGEST_INVALID`` or ``BLOB_UNKNOWN``
        while another import writes the same blobs into the same repository (distribution links
        a blob into a repository after the upload that made it commits) is asked once more,
        after checking that every blob and child is there; a blob that really is missing fails."""
        try:
            return await self.client.push_manifest(self.repository, ref, data, desc.media_type)
        except RegistryError as exc:
            if exc.registry_code not in _RACE_CODES:
                raise
            missing = await self._missing(desc, data)
            if missing:
                raise
            log.info("%s: %s answered %s with every blob present; asking once more", self, ref, exc.registry_code)
            await asyncio.sleep(_RACE_PAUSE)
            return await self.client.push_manifest(self.repository, ref, data, desc.media_type)

    async def _missing(self, desc: Descriptor, data: bytes) -> list[Descriptor]:
        """The successors of a manifest that the repository lacks."""
        node = parse_manifest(data, desc.media_type)
        kids = [k for k in successors(node) if not k.is_foreign]
        present = await asyncio.gather(*(self.exists(k) for k in kids))
        return [k for k, here in zip(kids, present, strict=True) if not here]


class RegistryTargets:
    """The repositories of one target registry as the engine's targets, one object each."""

    def __init__(self, client: RegistryClient, upload: UploadOptions | None = None) -> None:
        self.client = client
        self.upload = upload
        self._repositories: dict[str, RegistryRepository] = {}

    def __call__(self, repository: str) -> RegistryRepository:
        found = self._repositories.get(repository)
        if found is None:
            found = self._repositories[repository] = RegistryRepository(self.client, repository, self.upload)
        return found
