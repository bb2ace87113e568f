"""Blobs over the distribution API (spec v1.1, "Pulling blobs", "Pushing blobs", "Mounting a blob").

- ``fetch_blob`` streams a blob, verifying size and digest in flight, and resumes a dropped
  connection with ``Range`` (RFC 9110 §14). The last chunk is held back until the digest checks
  out, so a consumer that streams into an upload never completes a corrupt one.
- ``push_blob`` is a monolithic streaming ``PUT``; ``push_blob_chunked`` sends ``PATCH`` chunks with
  ``Content-Range`` and, after a ``416`` or a dropped connection, asks the registry where the upload
  stands (``GET`` → ``204`` + ``Range``) and goes on from there.
- ``start_upload(mount=...)`` tries a cross-repository mount: ``201`` means no bytes need to move,
  ``202`` opens an ordinary upload session to continue with.
- A failed upload session is cancelled with ``DELETE``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import suppress

import httpx

from shared.errors import (
    DigestMismatchError,
    FerryError,
    NotFoundError,
    ProtocolError,
    RegistryError,
    SizeMismatchError,
    TransportError,
)
from shared.oci.digest import Digest
from shared.oci.manifest import Descriptor
from shared.registry import scopes as sc
from shared.registry.transport import Transport

log = logging.getLogger(__name__)

Opener = Callable[[int], AsyncIterable[bytes]]
_CONTENT_RANGE_START = "bytes "


def _pull(repo: str) -> frozenset[sc.Scope]:
    return sc.repository(repo, "pull")


def _push(repo: str) -> frozenset[sc.Scope]:
    return sc.repository(repo, "pull", "push")


def _range_start(response: httpx.Response) -> int | None:
    """The first byte of a ``206``'s ``Content-Range: bytes start-end/total``."""
    value = response.headers.get("content-range", "")
    if not value.startswith(_CONTENT_RANGE_START):
        return None
    first = value[len(_CONTENT_RANGE_START) :].split("-", 1)[0]
    return int(first) if first.isdigit() else None


class ReadBudget:
    """Total seconds a body's reads may take (waiting on the source only, not on the consumer)."""

    def __init__(self, seconds: float, what: str) -> None:
        self.left = seconds
        self.what = what

    async def read(self, reads: AsyncIterator[bytes]) -> bytes | None:
        """The next piece, None at the end; :class:`TransportError` once the budget is spent."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(max(self.left, 0.001)):
                return await anext(reads)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise TransportError(f"{self.what}: the registry sends too slowly; gave up") from None
        finally:
            self.left -= time.monotonic() - started


class _Slicer:
    """Hands out a byte stream in consecutive slices of given lengths, each as its own stream."""

    def __init__(self, source: AsyncIterator[bytes], what: str, size: int) -> None:
        self._source = source
        self._left = b""
        self._what = what
        self._size = size
        self._read = 0

    async def take(self, length: int) -> AsyncIterator[bytes]:
        while length > 0:
            if not self._left:
                try:
                    self._left = await anext(self._source)
                except StopAsyncIteration:
                    raise SizeMismatchError(self._what, self._size, self._read) from None
                self._read += len(self._left)
            if len(self._left) <= length:
                piece, self._left = self._left, b""
            else:
                piece, self._left = self._left[:length], self._left[length:]
            length -= len(piece)
            yield piece


class BlobOps:
    """Blob operations; mixed into :class:`~shared.registry.client.RegistryClient`."""

    transport: Transport
    registry: str

    def _blob_url(self, repo: str, digest: Digest) -> httpx.URL:
        return self.transport.url(f"/v2/{repo}/blobs/{digest}")

    async def blob_exists(self, repo: str, digest: Digest) -> int | None:
        """The blob's size when ``repo`` has it, else ``None`` (``HEAD``)."""
        try:
            response = await self.transport.request(
                "check blob", "HEAD", self._blob_url(repo, digest), scopes=_pull(repo), follow_redirects=True
            )
        except NotFoundError:
            return None
        length = response.headers.get("content-length", "")
        return int(length) if length.isdigit() else 0

    # -- download ---------------------------------------------------------------------------

    async def fetch_blob(self, repo: str, desc: Descriptor, *, offset: int = 0) -> AsyncIterator[bytes]:
        """The blob's bytes from ``offset``, verified against ``desc`` (the digest only when
        ``offset`` is 0), resuming dropped connections with ``Range``."""
        what = f"fetch blob {desc.digest} from {self.registry}/{repo}"
        hasher = desc.digest.hasher() if offset == 0 and desc.digest.verifiable else None
        received = offset
        held: bytes | None = None
        resumes = 0
        url = self._blob_url(repo, desc.digest)
        options = self.transport.options
        budget = ReadBudget(options.body_grace + desc.size / options.min_throughput, what)
        while True:
            headers = {"Range": f"bytes={received}-"} if received else None
            try:
                async with self.transport.open(
                    "fetch blob",
                    "GET",
                    url,
                    scopes=_pull(repo),
                    headers=headers,
                    ok=(200, 206),
                    follow_redirects=True,
                ) as response:
                    skip = received if received and response.status_code == 200 else 0
                    if response.status_code == 206 and _range_start(response) != received:
                        raise ProtocolError(
                            "fetch blob",
                            self.registry,
                            "GET",
                            str(url),
                            206,
                            "",
                            "Content-Range does not start where asked",
                        )
                    reads = response.aiter_raw().__aiter__()
                    while True:
                        raw = await budget.read(reads)
                        if raw is None:
                            break
                        chunk = raw
                        if skip:  # the registry ignored Range: drop what we already have
                            cut = min(skip, len(raw))
                            chunk, skip = raw[cut:], skip - cut
                            if not chunk:
                                continue
                        received += len(chunk)
                        if received > desc.size:
                            raise SizeMismatchError(what, desc.size, received)
                        if hasher is not None:
                            hasher.update(chunk)
                        if held is not None:
                            yield held
                        held = chunk
                break
            except (httpx.TransportError, httpx.RemoteProtocolError) as exc:
                resumes += 1
                if resumes >= self.transport.options.max_attempts:
                    raise TransportError(
                        f"{what}: connection lost {resumes} times; giving up at byte {received}"
                    ) from None
                log.info("%s: %s at byte %d; resuming with Range", what, type(exc).__name__, received)
        if received != desc.size:
            raise SizeMismatchError(what, desc.size, received)
        if hasher is not None and hasher.hexdigest() != desc.digest.encoded:
            raise DigestMismatchError(what, str(desc.digest), f"{desc.digest.algorithm}:{hasher.hexdigest()}")
        if held is not None:
            yield held

    # -- upload -----------------------------------------------------------------------------

    async def start_upload(
        self, repo: str, *, mount: Digest | None = None, source_repo: str | None = None
    ) -> httpx.URL | None:
        """Open an upload session (``POST``, no body: it is also where a push token is obtained).
        With ``mount``, try a cross-repository mount first: ``None`` means it is mounted."""
        scopes = _push(repo)
        params: dict[str, str] | None = None
        if mount is not None:
            params = {"mount": str(mount)}
            if source_repo:
                params["from"] = source_repo
                scopes |= _pull(source_repo)
        response = await self.transport.request(
            "start upload",
            "POST",
            self.transport.url(f"/v2/{repo}/blobs/uploads/"),
            scopes=scopes,
            params=params,
            content=b"",
            ok=(201, 202),
        )
        if response.status_code == 201 and mount is not None:
            return None
        return self._location(response)

    def _location(self, response: httpx.Response) -> httpx.URL:
        location = response.headers.get("location")
        if not location:
            raise ProtocolError(
                "upload",
                self.registry,
                response.request.method,
                str(response.request.url),
                response.status_code,
                "",
                "no Location in the answer",
            )
        return response.request.url.join(location)

    async def cancel_upload(self, location: httpx.URL, repo: str) -> None:
        with suppress(FerryError):
            await self.transport.request(
                "cancel upload", "DELETE", location, scopes=_push(repo), ok=(200, 202, 204, 404)
            )

    async def push_blob(
        self, repo: str, desc: Descriptor, body: bytes | AsyncIterable[bytes], *, location: httpx.URL | None = None
    ) -> None:
        """A monolithic upload: one streaming ``PUT`` with the digest and the exact length."""
        location = location or await self.start_upload(repo)
        assert location is not None
        try:
            await self.transport.request(
                "upload blob",
                "PUT",
                location.copy_merge_params({"digest": str(desc.digest)}),
                scopes=_push(repo),
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)},
                content=body,
                ok=(201, 204),
            )
        except BaseException:
            await self.cancel_upload(location, repo)
            raise

    async def upload_offset(self, location: httpx.URL, repo: str) -> tuple[httpx.URL, int]:
        """Where an upload session stands: ``GET`` → ``204`` with ``Range: 0-<last>``."""
        response = await self.transport.request("upload status", "GET", location, scopes=_push(repo), ok=(204,))
        last = response.headers.get("range", "").rpartition("-")[2]
        return self._location(response) if "location" in response.headers else location, (
            int(last) + 1 if last.isdigit() else 0
        )

    async def _recover_upload(self, location: httpx.URL, repo: str, lost: bool) -> tuple[httpx.URL, int]:
        """Where to go on after a failed chunk: the registry's offset, or a new session from 0."""
        if not lost:
            try:
                return await self.upload_offset(location, repo)
            except NotFoundError:
                pass
        await self.cancel_upload(location, repo)
        fresh = await self.start_upload(repo)
        assert fresh is not None
        return fresh, 0

    async def push_blob_chunked(
        self,
        repo: str,
        desc: Descriptor,
        open_at: Opener,
        *,
        chunk_size: int | None = None,
        location: httpx.URL | None = None,
    ) -> None:
        """A resumable upload: ``PATCH`` requests with ``Content-Range`` (one for the whole blob when
        ``chunk_size`` is None), streamed from ``open_at(offset)``, then ``PUT ?digest=``. After a
        dropped connection, a ``416`` or a lost session, it goes on from the registry's offset,
        calling ``open_at`` again from there. Nothing is buffered beyond one read."""
        location = location or await self.start_upload(repo)
        assert location is not None
        try:
            offset, recoveries = 0, 0
            source = _Slicer(aiter(open_at(0)), f"upload {desc.digest}", desc.size)
            while offset < desc.size:
                length = desc.size - offset if chunk_size is None else min(chunk_size, desc.size - offset)
                try:
                    response = await self.transport.request(
                        "upload chunk",
                        "PATCH",
                        location,
                        scopes=_push(repo),
                        content=source.take(length),
                        ok=(202,),
                        headers={
                            "Content-Type": "application/octet-stream",
                            "Content-Length": str(length),
                            "Content-Range": f"{offset}-{offset + length - 1}",
                        },
                    )
                except (TransportError, RegistryError) as exc:
                    # 416: the registry has a different offset; 404: the session is gone (distribution
                    # invalidates one whose body was cut); retryable: the connection or registry failed.
                    lost = isinstance(exc, NotFoundError)
                    if isinstance(exc, RegistryError) and not (exc.status == 416 or exc.retryable or lost):
                        raise
                    recoveries += 1
                    if recoveries >= self.transport.options.max_attempts:
                        raise
                    location, offset = await self._recover_upload(location, repo, lost)
                    log.info("upload of %s to %s/%s resumes at byte %d", desc.digest, self.registry, repo, offset)
                    source = _Slicer(aiter(open_at(offset)), f"upload {desc.digest}", desc.size - offset)
                    continue
                location = self._location(response)
                offset += length
            await self.transport.request(
                "finish upload",
                "PUT",
                location.copy_merge_params({"digest": str(desc.digest)}),
                scopes=_push(repo),
                content=b"",
                ok=(201, 204),
            )
        except BaseException:
            await self.cancel_upload(location, repo)
            raise
