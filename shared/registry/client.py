"""An async client for one registry: the OCI distribution spec v1.1 over httpx.

Manifests (``HEAD``/``GET``/``PUT``), tags, referrers here; blobs in :mod:`shared.registry.blobs`.
Every manifest's bytes are checked against ``Docker-Content-Digest`` and any digest asked for, and
pushed exactly as fetched, so digests never change.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import httpx

from shared.credentials import Anonymous, Credential
from shared.errors import DigestMismatchError, InvalidReferenceError, ManifestError, NotFoundError, ProtocolError
from shared.http.exchange import PAGE_BODY, refuse_encoding
from shared.http.mapping import refused
from shared.http.policy import TransportOptions
from shared.oci import mediatypes as mt
from shared.oci.digest import Digest
from shared.oci.manifest import MAX_MANIFEST_BYTES, Descriptor, Index, parse_manifest
from shared.oci.reference import api_host_of
from shared.registry import blobs
from shared.registry import scopes as sc
from shared.registry.transport import Response, Transport
from shared.strict import header_int, loads_bounded

log = logging.getLogger(__name__)

#: Tags kept from one listing: far beyond any real repository's (Docker Hub's largest have tens
#: of thousands), short of what a registry that never stops paging could fill memory with.
MAX_TAGS = 200_000


def _pull(repo: str) -> frozenset[sc.Scope]:
    return sc.repository(repo, "pull")


def _push(repo: str) -> frozenset[sc.Scope]:
    return sc.repository(repo, "pull", "push")


def next_link(response: httpx.Response | Response) -> httpx.URL | None:
    """The ``Link: <url>; rel="next"`` of a paginated answer (RFC 8288), resolved against it.
    Read by a forward scan (linear in the header's length)."""
    value = ", ".join(response.headers.get_list("link"))
    at = 0
    while (start := value.find("<", at)) >= 0:
        end = value.find(">", start)
        if end < 0:
            return None
        following = value.find("<", end)
        params = value[end + 1 : following if following >= 0 else len(value)]
        for param in params.split(";")[1:]:
            name, _, rel = param.partition("=")
            if name.strip().lower() == "rel" and "next" in rel.strip().strip(",").strip().strip('"').lower().split():
                try:
                    return response.request.url.join(value[start + 1 : end])
                except httpx.InvalidURL:
                    return None
        at = end + 1
    return None


def _content_type(response: httpx.Response | Response) -> str:
    return str(response.headers.get("content-type", "")).split(";")[0].strip()


class PushedManifest(NamedTuple):
    digest: Digest
    subject_indexed: bool


class RegistryClient(blobs.BlobOps):
    """The distribution API of one registry, as one credential. Use as an async context manager."""

    def __init__(
        self,
        registry: str,
        credential: Credential | None = None,
        options: TransportOptions | None = None,
        **transport: Any,
    ) -> None:
        api_host = api_host_of(registry)
        self.transport = Transport(registry, api_host, credential, options, **transport)
        self.side = self.transport.side
        self.registry = registry
        self.credential: Credential = credential or Anonymous()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def ping(self) -> None:
        """``GET /v2/``: the registry answers and speaks the v2 API (401 counts: it asked for auth)."""
        await self.transport.request("ping", "GET", self.transport.url("/v2/"), ok=(200, 401))

    # -- manifests --------------------------------------------------------------------------

    def _manifest_url(self, repo: str, ref: str) -> httpx.URL:
        return self.transport.url(f"/v2/{repo}/manifests/{ref}")

    async def resolve(self, repo: str, ref: str) -> Descriptor:
        """The descriptor a tag or digest points at, by ``HEAD`` (which Docker Hub does not count as
        a pull); by ``GET`` when the registry sends no digest on ``HEAD``."""
        response = await self.transport.request(
            "resolve manifest",
            "HEAD",
            self._manifest_url(repo, ref),
            scopes=_pull(repo),
            headers={"Accept": mt.MANIFEST_ACCEPT},
        )
        digest_header = response.headers.get("docker-content-digest")
        media_type = _content_type(response)
        length = header_int(response.headers.get("content-length"), MAX_MANIFEST_BYTES)
        pinned = ":" in ref
        if digest_header and media_type and length is not None:
            try:
                digest = Digest.parse(digest_header)
            except InvalidReferenceError:
                digest = None
            if digest is not None and (not pinned or ref.startswith(f"{digest.algorithm}:")):
                if pinned and str(digest) != ref:
                    raise DigestMismatchError(f"resolve {repo}@{ref} on {self.registry}", ref, str(digest))
                if mt.is_schema1(media_type):
                    parse_manifest(b"{}", media_type)  # raises the schema 1 refusal
                return Descriptor(media_type, digest, length)
        # No usable digest on HEAD, or one of another algorithm than the pin's: fetch and verify.
        descriptor, _ = await self.fetch_manifest(repo, ref)
        return descriptor

    async def fetch_manifest(self, repo: str, ref: str, *, expected: Digest | None = None) -> tuple[Descriptor, bytes]:
        """A manifest's exact bytes and descriptor, verified, at most 4 MiB."""
        if expected is None and ":" in ref:
            expected = Digest.parse(ref)
        what = f"fetch manifest {repo}@{ref} on {self.registry}"
        op = "fetch manifest"
        response = await self.transport.request(
            op,
            "GET",
            self._manifest_url(repo, ref),
            scopes=_pull(repo),
            headers={"Accept": mt.MANIFEST_ACCEPT},
            cap=MAX_MANIFEST_BYTES,
        )
        refuse_encoding(response, op, self.side)
        body = response.content
        algorithm = expected.algorithm if expected else "sha256"
        actual = Digest.of(body, algorithm)
        if expected is not None and actual != expected:
            raise DigestMismatchError(what, str(expected), str(actual))
        header = response.headers.get("docker-content-digest")
        if header and header.startswith(f"{algorithm}:") and header != str(actual):
            raise DigestMismatchError(what, header, str(actual))
        try:
            node = parse_manifest(body, _content_type(response))
        except ManifestError as exc:
            raise ManifestError(f"{what}: {exc}") from None
        return Descriptor(node.media_type, expected or actual, len(body), artifact_type=node.artifact_type), body

    async def push_manifest(self, repo: str, ref: str, data: bytes, media_type: str) -> PushedManifest:
        """``PUT`` the exact bytes under a tag or their digest."""
        digest = Digest.of(data)
        response = await self.transport.request(
            "push manifest",
            "PUT",
            self._manifest_url(repo, ref),
            scopes=_push(repo),
            headers={"Content-Type": media_type},
            content=data,
            ok=(200, 201),
        )
        header = response.headers.get("docker-content-digest")
        if header and header.startswith("sha256:") and header != str(digest):
            raise DigestMismatchError(f"push manifest {repo}:{ref} on {self.registry}", str(digest), header)
        # distribution-spec 1.1 "Pushing Manifests with Subject": OCI-Subject says the registry
        # indexed the subject itself; without it, the client maintains the referrers tag.
        return PushedManifest(digest, bool(response.headers.get("oci-subject")))

    async def delete_manifest(self, repo: str, digest: Digest) -> None:
        await self.transport.request(
            "delete manifest",
            "DELETE",
            self._manifest_url(repo, str(digest)),
            scopes=sc.repository(repo, "delete"),
            ok=(200, 202),
        )

    # -- discovery --------------------------------------------------------------------------

    async def _pages(
        self, op: str, url: httpx.URL, scopes: frozenset[sc.Scope], params: Any = None
    ) -> AsyncIterator[Response]:
        """Each page of a ``Link``-paginated listing: same origin only, no URL twice, at most
        ``max_pages`` of them."""
        next_url: httpx.URL | None = url
        seen: set[str] = set()
        limit = self.transport.options.max_pages
        while next_url is not None:
            problem = None
            if str(next_url) in seen:
                problem = "pagination loops (Link names a page already read)"
            elif len(seen) >= limit:
                problem = f"pagination goes on past {limit} pages"
            elif (next_url.scheme, next_url.host, next_url.port) != (url.scheme, url.host, url.port):
                problem = "pagination leads to another origin (Link not followed)"
            if problem is not None:
                raise ProtocolError(
                    op=op,
                    origin=self.side.label,
                    method="GET",
                    url=str(next_url),
                    status=200,
                    problem=f"{op}: {problem}",
                )
            seen.add(str(next_url))
            response = await self.transport.request(op, "GET", next_url, scopes=scopes, params=params, cap=PAGE_BODY)
            params = None  # the Link URL carries its own query
            refuse_encoding(response, op, self.side)
            yield response
            next_url = next_link(response)

    async def list_tags(self, repo: str, page_size: int | None = None) -> list[str]:
        """Every tag of ``repo``, following ``Link`` pagination."""
        tags: list[str] = []
        params = {"n": str(page_size)} if page_size else None
        op = "list tags"
        async for page in self._pages(op, self.transport.url(f"/v2/{repo}/tags/list"), _pull(repo), params):
            doc = loads_bounded(page.content)
            listed = doc.get("tags") if isinstance(doc, dict) else None
            if not isinstance(doc, dict) or not isinstance(listed, list | None):
                raise refused(op, self.side, page, 'tag list is not {"tags": [...]}')
            tags.extend(t for t in listed or () if isinstance(t, str))
            if len(tags) > MAX_TAGS:
                raise refused(op, self.side, page, f"more than {MAX_TAGS} tags")
        return tags

    async def referrers(self, repo: str, subject: Digest, artifact_type: str | None = None) -> list[Descriptor]:
        """Manifests whose ``subject`` is ``subject``: the referrers API, or, where the registry
        answers 404, the ``<alg>-<hex>`` tag schema (distribution-spec 1.1 "Listing Referrers")."""
        url = self.transport.url(f"/v2/{repo}/referrers/{subject}")
        params = {"artifactType": artifact_type} if artifact_type else None
        found: list[Descriptor] = []
        try:
            async for page in self._pages("list referrers", url, _pull(repo), params):
                if not mt.is_index(_content_type(page)):
                    raise NotFoundError(
                        op="list referrers",
                        origin=self.registry,
                        method="GET",
                        url=str(url),
                        status=404,
                        registry_code="",
                        registry_message="not an index",
                    )
                found.extend(self._index_entries(page.content))
        except NotFoundError:
            found = await self._referrers_by_tag(repo, subject)
        if artifact_type:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    async def _referrers_by_tag(self, repo: str, subject: Digest) -> list[Descriptor]:
        try:
            _, body = await self.fetch_manifest(repo, subject.tag_schema)
        except (NotFoundError, ManifestError):
            return []  # no tag, or not a valid index: no referrers (the spec says to assume so)
        return self._index_entries(body)

    @staticmethod
    def _index_entries(body: bytes) -> list[Descriptor]:
        try:
            node = parse_manifest(body, mt.OCI_INDEX)
        except ManifestError:
            return []
        return list(node.manifests) if isinstance(node, Index) else []
