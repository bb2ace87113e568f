"""Phase two of a copy: walk the planned graph into the target (after oras-go's ``copy.go``).

Children before parents; one task per digest however many manifests share it; a sub-graph
skipped when the target already has its root; blobs mounted when the target's registry holds
them in another repository, else streamed from the source (verified in flight by the source,
and again by the target registry on commit). Concurrency is bounded by one semaphore held
around I/O only, never while waiting for children. Tags are not this module's business: the
caller tags the root once the walk has finished, so a tag never points at a partial image.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from shared import stopping, telemetry
from shared.content.protocols import SMALL_BLOB, Opener, Source, Target
from shared.content.streams import aclose
from shared.engine.ahead import ReadAhead
from shared.engine.plan import Plan
from shared.engine.progress import Progress, Reporter
from shared.errors import NotFoundError
from shared.oci import mediatypes as mt
from shared.oci.digest import Digest
from shared.oci.manifest import Descriptor, Index, Manifest, parse_manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CopyOptions:
    #: Registry operations in flight at once.
    concurrency: int = 8
    #: Another repository of the target's registry that already holds the blobs (an earlier
    #: target of the same import): mounted from, instead of streamed again.
    mount_from: str | None = None
    #: Push the root manifest by digest. A caller that tags the root next can say no: the tag's
    #: push stores the same bytes, one request later, once everything under it is in place.
    push_root: bool = True
    #: What the caller already knows of the root in the target: True, it is there (nothing to
    #: do); False, it is not (walk without asking); None, ask (``HEAD``).
    root_present: bool | None = None


def totals(plan: Plan, progress: Progress) -> None:
    progress.manifests_total = len(plan.manifests)
    progress.blobs_total = len(plan.blobs)
    progress.bytes_total = plan.unique_bytes


class _Walk:
    def __init__(self, src: Source, dst: Target, plan: Plan, opts: CopyOptions, reporter: Reporter) -> None:
        self.src, self.dst, self.plan, self.opts = src, dst, plan, opts
        self.reporter = reporter
        self.progress = reporter.progress
        self.gate = asyncio.Semaphore(opts.concurrency)
        self.tasks: dict[Digest, asyncio.Future[None]] = {}
        self.subjects = {ref.digest: subject for ref, subject in plan.referrers}
        #: Referrers pushed to a target that did not index their subject, by subject.
        self.unindexed: dict[Digest, list[Descriptor]] = defaultdict(list)
        same_registry = src.registry == dst.registry and src.repository != dst.repository
        self.mount_source = src.repository if same_registry else opts.mount_from
        self.group: asyncio.TaskGroup | None = None
        #: A task stopped at a safe point (:mod:`shared.stopping`): the walk stops when all have.
        self.stopped = False

    def visit(self, desc: Descriptor) -> asyncio.Future[None]:
        task = self.tasks.get(desc.digest)
        if task is None:
            assert self.group is not None
            task = self.tasks[desc.digest] = self.group.create_task(self.copy(desc))
        return task

    async def run(self) -> None:
        async with asyncio.TaskGroup() as self.group:
            self.visit(self.plan.root)
            for ref, _ in self.plan.referrers:
                self.visit(ref)
        if self.stopped:
            raise stopping.Stopped
        for subject, refs in self.unindexed.items():
            await index_referrers(self.dst, subject, refs, self.plan)

    async def copy(self, desc: Descriptor) -> None:
        """One node. A stop is no failure: it ends this task alone, so its siblings are not
        cancelled mid-request and each closes its own upload session cleanly."""
        try:
            stopping.check()
            if desc.is_manifest:  # its span holds its children's: the graph is the trace's tree
                attributes = {"ferry.digest": str(desc.digest), "ferry.media_type": desc.media_type}
                with telemetry.phase("manifest", **attributes):
                    await self.copy_manifest(desc)
            else:
                await self.copy_blob(desc)
        except stopping.Stopped:
            self.stopped = True
            return
        self.reporter.tick()

    async def copy_manifest(self, desc: Descriptor) -> None:
        # Only roots are looked for: under a root the target lacks, manifests are pushed (the same
        # bytes again, should one be there) and blobs probed; a HEAD per manifest would cost a
        # request and a round trip on every level for a case that is rare.
        if desc.digest == self.plan.root.digest:
            known = self.opts.root_present
        else:
            known = None if desc.digest in self.subjects else False
        if known is None:
            async with self.gate:
                present = await self.dst.exists(desc)
        else:
            present = known
        if present:
            self.settle(desc)
            return
        await asyncio.gather(*(self.visit(child) for child in self.plan.children[desc.digest]))
        stopping.check()  # a child may have stopped: nothing is pushed above a missing part
        self.progress.manifests_done += 1
        if desc.digest == self.plan.root.digest and not self.opts.push_root:
            return
        async with self.gate:
            indexed = await self.dst.push_manifest(desc, self.plan.data[desc.digest])
        subject = self.subjects.get(desc.digest)
        if subject is not None and not indexed:
            self.unindexed[subject.digest].append(desc)

    def settle(self, desc: Descriptor) -> None:
        """The target has ``desc``, so it has everything under it: count that sub-graph as present."""
        self.progress.manifests_done += 1
        self.progress.manifests_present += 1
        for child in self.plan.children.get(desc.digest, ()):
            if child.digest in self.tasks:
                continue
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            self.tasks[child.digest] = done
            if child.is_manifest:
                self.settle(child)
            elif child.is_foreign:
                self.progress.blobs_foreign += 1
            else:
                self.progress.blobs_present += 1
                self.progress.bytes_skipped += child.size

    async def copy_blob(self, desc: Descriptor) -> None:
        if desc.is_foreign:  # non-distributable: registries fetch it from its urls
            self.progress.blobs_foreign += 1
            return
        with telemetry.phase("blob", **{"ferry.digest": str(desc.digest), "ferry.size": desc.size}) as span:
            async with self.gate:
                ahead = self._read_ahead(desc)
                try:
                    landed = await self.dst.put_blob(desc, self.opener(desc, ahead), self.mount_source)
                finally:
                    if ahead is not None:
                        ahead.drop()
            span.set_attribute("ferry.blob.landed", landed)
        if landed == "copied":
            self.progress.blobs_copied += 1
            return
        if landed == "mounted":
            self.progress.blobs_mounted += 1
        else:
            self.progress.blobs_present += 1
        self.progress.bytes_skipped += desc.size

    def _read_ahead(self, desc: Descriptor) -> ReadAhead | None:
        """A small blob from another registry is read while the target is asked for it."""
        if desc.size > SMALL_BLOB or self.mount_source:
            return None
        return ReadAhead(desc, self.src.fetch(desc))

    def opener(self, desc: Descriptor, ahead: ReadAhead | None = None) -> Opener:
        def open_at(offset: int) -> AsyncIterator[bytes]:
            if ahead is not None and offset == 0 and not ahead.taken:
                return self._counted(ahead.pieces())
            return self._counted(self.src.fetch(desc, offset))

        return open_at

    async def _counted(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                self.progress.bytes_moved += len(chunk)
                self.reporter.tick()
                yield chunk
        finally:  # closed with this (a stopped upload reads no further): its connection too
            await aclose(chunks)


async def copy_graph(
    src: Source, dst: Target, plan: Plan, opts: CopyOptions | None = None, reporter: Reporter | None = None
) -> Progress:
    """Copy ``plan`` from ``src`` into ``dst``, untagged. Returns what it did."""
    reporter = reporter or Reporter(Progress(), None)
    if not reporter.progress.manifests_total:
        totals(plan, reporter.progress)
    try:
        await _Walk(src, dst, plan, opts or CopyOptions(), reporter).run()
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return reporter.progress


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that failed the walk: the first leaf that is not a cancellation of its siblings."""
    leaves: list[BaseException] = []

    def collect(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                collect(inner)
        else:
            leaves.append(exc)

    collect(group)
    return next((e for e in leaves if not isinstance(e, asyncio.CancelledError)), leaves[0])


def referrer_descriptor(desc: Descriptor, data: bytes) -> Descriptor:
    """The entry for a referrer in a referrers index: its ``artifactType`` (else its config's
    media type) and its annotations (distribution-spec 1.1 "Listing Referrers")."""
    node = parse_manifest(data, desc.media_type)
    artifact_type = node.artifact_type
    if artifact_type is None and isinstance(node, Manifest):
        artifact_type = node.config.media_type
    annotations = json.loads(data).get("annotations") or {}
    return Descriptor(desc.media_type, desc.digest, desc.size, artifact_type=artifact_type, annotations=annotations)


async def index_referrers(dst: Target, subject: Digest, refs: list[Descriptor], plan: Plan) -> None:
    """Add ``refs`` to the target's ``<alg>-<hex>`` referrers tag for ``subject``, keeping what
    is there (distribution-spec 1.1 "Pushing Manifests with Subject", the client's part)."""
    tag = subject.tag_schema
    entries: list[dict[str, object]] = []
    current = await dst.lookup(tag)
    if current is not None:
        try:
            node = parse_manifest(await dst.fetch_manifest(current), current.media_type)
        except NotFoundError:
            node = None
        if isinstance(node, Index):
            entries = [m.to_json() for m in node.manifests]
    have = {e["digest"] for e in entries}
    added = [referrer_descriptor(r, plan.data[r.digest]).to_json() for r in refs if str(r.digest) not in have]
    if not added:
        return
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries + added}
    data = json.dumps(doc).encode()
    await dst.tag(Descriptor(mt.OCI_INDEX, Digest.of(data), len(data)), data, tag)
