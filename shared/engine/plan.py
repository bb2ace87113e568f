"""Phase one of a copy: read the source graph, manifests only, and decide what to copy.

The plan holds every manifest's exact bytes (at most ``max_manifests`` of at most 4 MiB each)
and every blob's descriptor, so limits are checked and totals known before a byte moves. An
index can be filtered to some platforms; the filtered index is new bytes with a new digest.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from shared.content.protocols import Source
from shared.errors import CycleError, IndexTooLargeError, LimitExceededError, NoMatchingPlatformError
from shared.oci.digest import Digest
from shared.oci.manifest import (
    Descriptor,
    Index,
    Manifest,
    Platform,
    parse_manifest,
    successors,
)

#: Annotations buildx puts on attestation manifests in an index, naming the image they attest.
_REFERENCE_TYPE = "vnd.docker.reference.type"
_REFERENCE_DIGEST = "vnd.docker.reference.digest"


@dataclass(frozen=True, slots=True)
class PlanOptions:
    #: Copy only these platforms of an index (and their attestations); all when empty.
    platforms: tuple[Platform, ...] = ()
    #: Also copy manifests whose ``subject`` is a copied manifest, recursively.
    include_referrers: bool = False
    #: Manifests per import (az acr import: 50).
    max_manifests: int = 50
    #: Descriptors per import, manifests and blobs (each config and layer entry) together:
    #: bounds the memory a plan takes, whatever the manifests list.
    max_descriptors: int = 20_000
    #: Bytes per blob, or None for no limit (az acr import: 2 GiB from public registries).
    max_blob_bytes: int | None = None
    #: Manifests fetched at once while planning.
    concurrency: int = 8


@dataclass
class Plan:
    root: Descriptor
    #: The source's root when the plan filtered it to some platforms (``root`` is then new).
    source_root: Descriptor | None = None
    #: Manifest bytes by digest, and each node's successors.
    data: dict[Digest, bytes] = field(default_factory=dict)
    children: dict[Digest, tuple[Descriptor, ...]] = field(default_factory=dict)
    manifests: dict[Digest, Descriptor] = field(default_factory=dict)
    blobs: dict[Digest, Descriptor] = field(default_factory=dict)
    #: Referrer manifests (roots of their own sub-graphs) with the subject each refers to.
    referrers: list[tuple[Descriptor, Descriptor]] = field(default_factory=list)

    @property
    def unique_bytes(self) -> int:
        return sum(d.size for d in self.blobs.values() if not d.is_foreign)

    @property
    def manifest_bytes(self) -> int:
        return sum(len(b) for b in self.data.values())

    @property
    def filtered(self) -> bool:
        return self.source_root is not None


def _filter_index(
    root: Descriptor, data: bytes, node: Index, platforms: tuple[Platform, ...]
) -> tuple[Descriptor, bytes]:
    kept = {
        str(m.digest)
        for m in node.manifests
        if m.platform is not None and any(m.platform.matches(p) for p in platforms)
    }
    if not kept:
        offered = ", ".join(sorted({str(m.platform) for m in node.manifests if m.platform})) or "none"
        wanted = ", ".join(str(p) for p in platforms)
        raise NoMatchingPlatformError(f"no manifest of {root.digest} is for {wanted}; it has {offered}")
    for m in node.manifests:  # keep the attestations of kept images
        if (
            m.annotations.get(_REFERENCE_TYPE) == "attestation-manifest"
            and m.annotations.get(_REFERENCE_DIGEST) in kept
        ):
            kept.add(str(m.digest))
    doc = json.loads(data)
    doc["manifests"] = [m for m in doc["manifests"] if m.get("digest") in kept]
    filtered = json.dumps(doc, indent=3).encode()
    return Descriptor(root.media_type, Digest.of(filtered), len(filtered)), filtered


class _Planner:
    def __init__(self, src: Source, opts: PlanOptions) -> None:
        self.src = src
        self.opts = opts
        self.plan: Plan | None = None
        self.gate = asyncio.Semaphore(opts.concurrency)
        #: Descriptors read so far: manifests, and every blob entry of every manifest.
        self.descriptors = 0

    def _count_descriptors(self, more: int, desc: Descriptor) -> None:
        self.descriptors += more
        if self.descriptors > self.opts.max_descriptors:
            raise LimitExceededError(
                f"the import lists more than {self.opts.max_descriptors} descriptors (the max_descriptors "
                f"limit, FERRY_MAX_DESCRIPTORS); {desc.media_type} {desc.digest} takes it over"
            )

    def _count(self, plan: Plan, more: int, desc: Descriptor) -> None:
        if len(plan.manifests) + more > self.opts.max_manifests:
            raise LimitExceededError(
                f"the import has more than {self.opts.max_manifests} manifests "
                f"(the max_manifests limit); {desc.media_type} {desc.digest} takes it over"
            )

    def parse(self, plan: Plan, desc: Descriptor, data: bytes) -> Manifest | Index:
        """``desc``'s manifest (already counted in ``plan``); an index whose children would take
        the import over the limit is refused before they are fetched, or even read into
        descriptors."""
        room = self.opts.max_manifests - len(plan.manifests)
        left = self.opts.max_descriptors - self.descriptors
        try:
            node = parse_manifest(data, desc.media_type, max_children=max(min(room, left), 0), max_blobs=max(left, 0))
        except IndexTooLargeError as exc:
            if exc.what == "manifests":
                self._count(plan, exc.count, desc)
            self._count_descriptors(exc.count, desc)
            raise  # pragma: no cover - one of the counts raised
        self._count_descriptors(len(successors(node)), desc)
        return node

    async def walk(self, plan: Plan, desc: Descriptor, data: bytes | None = None) -> None:
        """Add ``desc`` and everything under it to ``plan`` (children fetched concurrently)."""
        if desc.digest in plan.manifests:
            return
        self._count(plan, 1, desc)
        plan.manifests[desc.digest] = desc
        if data is None:
            async with self.gate:
                data = await self.src.fetch_manifest(desc)
        node = self.parse(plan, desc, data)
        plan.data[desc.digest] = data
        kids = successors(node)
        plan.children[desc.digest] = kids
        for blob in node.blobs if isinstance(node, Manifest) else ():
            self._check_blob(blob)
            plan.blobs.setdefault(blob.digest, blob)
        await asyncio.gather(*(self.walk(plan, k) for k in kids if k.is_manifest))

    def _check_blob(self, blob: Descriptor) -> None:
        limit = self.opts.max_blob_bytes
        if limit is not None and blob.size > limit and not blob.is_foreign:
            raise LimitExceededError(
                f"blob {blob.digest} ({blob.media_type}) is {blob.size} bytes, over the {limit}-byte "
                "limit for a source reached without credentials (max_blob_bytes)"
            )

    async def referrers(self, plan: Plan) -> None:
        """Add the referrers of every planned manifest, and theirs, until none are new."""
        seen: set[Digest] = set()
        while pending := [d for d in list(plan.manifests.values()) if d.digest not in seen]:
            seen.update(d.digest for d in pending)
            found = await asyncio.gather(*(self._referrers_of(d) for d in pending))
            for subject, refs in zip(pending, found, strict=True):
                for ref in refs:
                    if ref.digest not in plan.manifests:
                        plan.referrers.append((ref, subject))
                        await self.walk(plan, ref)

    async def _referrers_of(self, desc: Descriptor) -> list[Descriptor]:
        async with self.gate:
            return await self.src.referrers(desc)


def check_acyclic(plan: Plan) -> None:
    """:class:`CycleError` when a manifest reaches itself through its children. Verified digests
    cannot form a cycle (a manifest would have to contain its own hash); this holds whatever
    a source store checks, because the copy, children first, would otherwise wait on itself."""
    done: set[Digest] = set()
    for start in plan.children:
        if start in done:
            continue
        path: set[Digest] = {start}
        stack = [(start, iter(plan.children.get(start, ())))]
        while stack:
            digest, kids = stack[-1]
            child = next((k for k in kids if k.is_manifest), None)
            if child is None:
                stack.pop()
                path.discard(digest)
                done.add(digest)
            elif child.digest in path:
                raise CycleError(f"manifest {child.digest} reaches itself through its children")
            elif child.digest not in done:
                path.add(child.digest)
                stack.append((child.digest, iter(plan.children.get(child.digest, ()))))


async def build_plan(src: Source, root: Descriptor, opts: PlanOptions) -> Plan:
    """Read ``root``'s graph from ``src``; apply the platform filter and the limits."""
    planner = _Planner(src, opts)
    data = await src.fetch_manifest(root)
    plan = Plan(root)
    if opts.platforms:  # the filter reads every platform; what it keeps is counted by walk
        node = parse_manifest(data, root.media_type)
        if isinstance(node, Index):
            plan.source_root = root
            plan.root, data = _filter_index(root, data, node, opts.platforms)
    await planner.walk(plan, plan.root, data)
    if opts.include_referrers:
        await planner.referrers(plan)
    check_acyclic(plan)
    return plan
