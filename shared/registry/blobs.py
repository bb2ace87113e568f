"""Blobs over the distribution API (spec v1.1, "Pulling blobs", "Pushing blobs", "Mounting a blob").

- ``fetch_blob`` streams a blob, verifying size and digest in flight, and resumes a dropped
  connection with ``Range`` (RFC 9110 §14). The last chunk is held back until the digest checks
  out, so a consumer that streams into an upload never completes a corrupt one.
- ``push_blob_whole`` is how the engine uploads a small blob (up to
  :data:`~shared.content.protocols.SMALL_BLOB`): read whole from the source first (a stop ends
  that wait, and the session, which holds nothing yet, is deleted), then sent from memory in one
  ``PUT ?digest=`` of stated length, which a stop lets finish (milliseconds: the bytes are at
  hand); the blob it makes is referenced by nothing until a manifest names it, and the registry's
  garbage collection removes it. One request per blob fewer than a streamed ``PATCH`` and
  ``PUT``, which is what many small layers cost.
- ``push_blob_chunked`` is how the engine uploads every larger blob: the blob in one ``PATCH`` of
  no stated length (``Transfer-Encoding: chunked``, as go-containerregistry streams), then a
  bodyless ``PUT ?digest=``; a stop ends the body at once (:mod:`shared.stopping`) and the session
  is deleted. With ``chunk_size`` it sends ``PATCH`` chunks with ``Content-Range`` instead (a stop
  then waits for the chunk in flight). After a ``416`` or a dropped connection it asks the registry
  where the upload stands (``GET`` → ``204`` + ``Range``) and goes on from there.
- ``push_blob`` is a monolithic ``PUT`` of stated length, which cannot end early: streamed, for
  callers that no stop reaches (fixtures, benchmarks); from memory, the second half of
  ``push_blob_whole``.
- ``start_upload(mount=...)`` tries a cross-repository mount: ``201`` means no bytes need to move,
  ``202`` opens an ordinary upload session to continue with.
- A failed or stopped upload session is cancelled with ``DELETE``, whose answer is never read
  (its connection closed) unless it is an error; a session the registry would not delete is
  logged and noted for the stop's report (:func:`shared.stopping.left_behind`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from contextlib import aclosing

import httpx

from shared import stopping
from shared.content.streams import whole
from shared.errors import (
    DigestMismatchError,
    FerryError,
    NotFoundError,
    RegistryError,
    SizeMismatchError,
)
from shared.http.exchange import refuse_encoding
from shared.http.mapping import Side, refused
from shared.http.retry import Attempts
from shared.oci.digest import Digest
from shared.oci.manifest import Descriptor
from shared.registry import scopes as sc
from shared.registry.streams import Opener, Session, Slicer, SourceFailed, opener, watched
from shared.registry.transport import Response, Transport
from shared.strict import header_int

log = logging.getLogger(__name__)

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
    return header_int(value[len(_CONTENT_RANGE_START) :].split("-", 1)[0])


class BlobOps:
    """Blob operations; mixed into :class:`~shared.registry.client.RegistryClient`."""

    transport: Transport
    registry: str
    side: Side

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
        return header_int(response.headers.get("content-length")) or 0

    # -- download ---------------------------------------------------------------------------

    async def fetch_blob(self, repo: str, desc: Descriptor, *, offset: int = 0) -> AsyncIterator[bytes]:
        """The blob's bytes from ``offset``, verified against ``desc`` (the digest only when
        ``offset`` is 0), resuming with ``Range`` after a failure worth retrying (one operation
        under the retry policy). The last piece is held back until the digest checks out."""
        what = f"fetch blob {desc.digest} from {self.registry}/{repo}"
        hasher = desc.digest.hasher() if offset == 0 else None
        received = offset
        held: bytes | None = None
        attempts = self.transport.retry.start()
        while True:
            try:
                async with aclosing(self._blob_from(repo, desc, received, what)) as chunks:
                    async for chunk in chunks:
                        received += len(chunk)
                        if hasher is not None:
                            hasher.update(chunk)
                        if held is not None:
                            yield held
                        held = chunk
                break
            except FerryError as error:
                await attempts.failed(error)
                log.info("%s: %s at byte %d; resuming with Range", what, error.code, received)
        if received != desc.size:
            raise SizeMismatchError(what, desc.size, received)
        if hasher is not None and hasher.hexdigest() != desc.digest.encoded:
            raise DigestMismatchError(what, str(desc.digest), f"{desc.digest.algorithm}:{hasher.hexdigest()}")
        if held is not None:
            yield held

    async def _blob_from(self, repo: str, desc: Descriptor, start: int, what: str) -> AsyncGenerator[bytes, None]:
        """One ``GET`` of the blob from byte ``start``: the new bytes, never more than its size."""
        headers = {"Range": f"bytes={start}-"} if start else None
        url = self._blob_url(repo, desc.digest)
        async with self.transport.open(
            "fetch blob", "GET", url, scopes=_pull(repo), headers=headers, ok=(200, 206),
            follow_redirects=True, cap=None, retry=False,
        ) as response:  # fmt: skip
            refuse_encoding(response, "fetch blob", self.side)
            skip = start if start and response.status_code == 200 else 0
            if response.status_code == 206 and _range_start(response) != start:
                raise refused("fetch blob", self.side, response, f"{what}: Content-Range does not start where asked")
            received = start
            async for raw in response.aiter_raw():
                chunk = raw
                if skip:  # the registry ignored Range: drop what we already have
                    cut = min(skip, len(raw))
                    chunk, skip = raw[cut:], skip - cut
                    if not chunk:
                        continue
                received += len(chunk)
                if received > desc.size:
                    raise SizeMismatchError(what, desc.size, received)
                yield chunk

    # -- upload -----------------------------------------------------------------------------

    async def start_upload(
        self, repo: str, *, mount: Digest | None = None, source_repo: str | None = None, retry: bool = True
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
            retry=retry,
        )
        if response.status_code == 201 and mount is not None:
            return None
        return self._location(response)

    def _location(self, response: Response) -> httpx.URL:
        location = response.headers.get("location")
        if not location:
            raise refused("upload", self.side, response, "answered an upload without Location")
        try:
            return response.request.url.join(location)
        except httpx.InvalidURL:
            raise refused(
                "upload", self.side, response, "answered an upload with a Location that is not a URL"
            ) from None

    async def cancel_upload(self, location: httpx.URL, repo: str) -> None:
        """``DELETE`` the session. A success's body is not read (the connection is closed unless
        it has none); a session the registry would not delete is logged and noted."""
        try:
            async with self.transport.open(
                "cancel upload", "DELETE", location, scopes=_push(repo), ok=(200, 202, 204), retry=False
            ):
                return
        except NotFoundError as exc:
            # Gone already; distribution's BLOB_UPLOAD_INVALID means its state no longer matches
            # the URL's (a body was cut), and the session stays with its data.
            if exc.registry_code != "BLOB_UPLOAD_INVALID":
                return
            error: FerryError = exc
        except FerryError as exc:
            error = exc
        url = str(location.copy_with(query=None, fragment=None))
        log.warning("upload session %s was not deleted (%s): the registry purges it later", url, error.code)
        stopping.left_behind(url)

    async def push_blob(
        self,
        repo: str,
        desc: Descriptor,
        body: bytes | AsyncIterable[bytes] | Opener,
        *,
        location: httpx.URL | None = None,
    ) -> None:
        """A monolithic upload: one streaming ``PUT`` with the digest and the exact length (not
        stoppable: a body of stated length cannot end early). Streamed even from memory: the
        wire resends a ``bytes`` body on a broken reused connection, into a session the cut made
        unusable. One operation: after a failure worth retrying (a dropped connection, 503, 429)
        the session is cancelled and the upload starts again in a fresh one (when ``body`` can
        be opened again)."""
        open_at, reopenable = opener(body)
        attempts = self.transport.retry.start()
        while True:
            location = location or await self.start_upload(repo, retry=False)
            assert location is not None
            try:
                await self.transport.request(
                    "upload blob", "PUT", location.copy_merge_params({"digest": str(desc.digest)}),
                    scopes=_push(repo), content=watched(open_at(0)), ok=(201, 204), retry=False,
                    headers={"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)},
                )  # fmt: skip
                return
            except SourceFailed as failed:
                await self.cancel_upload(location, repo)
                raise failed.error from None
            except FerryError as error:
                await self.cancel_upload(location, repo)
                location = None
                await attempts.failed(error, retryable=error.retryable and reopenable)
            except BaseException:
                await self.cancel_upload(location, repo)
                raise

    async def push_blob_whole(self, repo: str, desc: Descriptor, open_at: Opener, *, location: httpx.URL) -> None:
        """A small blob into the open session at ``location``: read whole (a stop ends the wait;
        the session, empty still, is deleted), then one ``PUT`` from memory that a stop lets
        finish."""
        try:
            data = await whole(open_at(0), desc.size, f"upload {desc.digest}")
            stopping.check()
        except BaseException:
            await self.cancel_upload(location, repo)
            raise
        await self.push_blob(repo, desc, data, location=location)

    async def upload_offset(self, location: httpx.URL, repo: str) -> tuple[httpx.URL, int]:
        """Where an upload session stands: ``GET`` → ``204`` with ``Range: 0-<last>``."""
        response = await self.transport.request(
            "upload status", "GET", location, scopes=_push(repo), ok=(204,), retry=False
        )
        last = header_int(response.headers.get("range", "").rpartition("-")[2])
        return self._location(response) if "location" in response.headers else location, (
            last + 1 if last is not None else 0
        )

    async def _recover_upload(self, location: httpx.URL, repo: str, lost: bool) -> tuple[httpx.URL, int]:
        """Where to go on after a failed chunk: the registry's offset, or a new session from 0."""
        if not lost:
            try:
                return await self.upload_offset(location, repo)
            except NotFoundError:
                pass
        await self.cancel_upload(location, repo)
        fresh = await self.start_upload(repo, retry=False)
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
        calling ``open_at`` again from there. After a failed finishing ``PUT`` (its answer lost:
        did it commit?) a blob that is not there starts over in a fresh session, under the retry
        policy, as a monolithic upload does. Nothing is buffered beyond one read."""
        attempts = self.transport.retry.start()
        while True:
            session = Session(location or await self.start_upload(repo))
            location = None
            try:
                await self._send_chunks(repo, desc, open_at, chunk_size, session)
                finish = session.location.copy_merge_params({"digest": str(desc.digest)})
            except SourceFailed as failed:
                await self.cancel_upload(session.location, repo)
                raise failed.error from None
            except BaseException:
                await self.cancel_upload(session.location, repo)
                raise
            try:
                await self.transport.request(
                    "finish upload", "PUT", finish, scopes=_push(repo), content=b"", ok=(201, 204), retry=False
                )
                return
            except FerryError as error:
                if await self._landed(repo, desc, session):
                    return
                await attempts.failed(error, retryable=error.retryable or session.resumed)  # see Session
            except BaseException:
                await self.cancel_upload(session.location, repo)
                raise

    async def _landed(self, repo: str, desc: Descriptor, session: Session) -> bool:
        """After a failed finishing ``PUT``: whether the blob landed all the same (its answer was
        lost); if not, the session is cancelled, to start over."""
        if await self.blob_exists(repo, desc.digest) == desc.size:
            return True
        await self.cancel_upload(session.location, repo)
        return False

    async def _send_chunks(
        self, repo: str, desc: Descriptor, open_at: Opener, chunk_size: int | None, session: Session
    ) -> None:
        """Every byte of the blob into ``session``, which follows the registry's ``Location``; the
        source is opened again where the registry stands after a failure, and closed on the way out
        (a stop leaves it part read)."""
        attempts = self.transport.retry.start()
        offset = 0
        while offset < desc.size:
            source = Slicer(aiter(watched(open_at(offset))), f"upload {desc.digest}", desc.size - offset)
            try:
                offset = await self._send_from(repo, source, offset, desc.size, chunk_size, session)
            except SourceFailed:
                raise
            except FerryError as exc:
                session.location, offset = await self._chunk_failed(repo, session.location, exc, attempts)
                session.resumed = True
                log.info("upload of %s to %s/%s resumes at byte %d", desc.digest, self.registry, repo, offset)
            finally:
                await source.aclose()

    async def _send_from(
        self, repo: str, source: Slicer, offset: int, size: int, chunk_size: int | None, session: Session
    ) -> int:
        """Chunks from ``source`` until the blob is sent; returns the offset reached."""
        while offset < size:
            stopping.check()  # the session is deleted on the way out
            length = size - offset if chunk_size is None else min(chunk_size, size - offset)
            response = await self._patch(repo, session.location, source, offset, length, chunk_size is None)
            session.location = self._location(response)
            stopping.check()  # the body ended early, as asked: the session is deleted on the way out
            offset += length
        return offset

    async def _patch(
        self, repo: str, location: httpx.URL, source: Slicer, offset: int, length: int, streamed: bool
    ) -> Response:
        """One chunk; ``streamed``: the rest of the blob in one body of no stated length
        (``Transfer-Encoding: chunked``, as go-containerregistry streams every upload), which a
        stop can end between pieces and still get the registry's answer."""
        headers = {"Content-Type": "application/octet-stream"}
        if not streamed:
            headers.update({"Content-Length": str(length), "Content-Range": f"{offset}-{offset + length - 1}"})
        return await self.transport.request(
            "upload chunk", "PATCH", location, scopes=_push(repo), content=source.take(length, stoppable=streamed),
            ok=(202,), retry=False, headers=headers,
        )  # fmt: skip

    async def _chunk_failed(
        self, repo: str, location: httpx.URL, exc: FerryError, attempts: Attempts
    ) -> tuple[httpx.URL, int]:
        """After a failed chunk: wait as the policy says, then where to go on from. 416: the
        registry has another offset; 404: the session is gone (distribution invalidates one
        whose body was cut); retryable: the connection or the registry failed."""
        lost = isinstance(exc, NotFoundError)
        worth = exc.retryable or lost or (isinstance(exc, RegistryError) and exc.status == 416)
        await attempts.failed(exc, retryable=worth)
        return await self._recover_upload(location, repo, lost)
