"""The engine over in-memory stores, with counting and failing wrappers (no call-sequence mocks)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from shared.content.memory import MemoryStore
from shared.content.protocols import Opener
from shared.engine.copy import CopyOptions, copy_graph
from shared.engine.plan import PlanOptions, build_plan
from shared.engine.progress import Progress, Reporter
from shared.errors import DigestMismatchError, LimitExceededError, NoMatchingPlatformError, TransportError
from shared.oci import mediatypes as mt
from shared.oci.digest import Digest
from shared.oci.manifest import Descriptor, Index, Platform, parse_manifest
from tests.harness.images import Blob, Image, IndexImage, make_artifact, make_image, make_index, make_multiarch


def load(store: MemoryStore, image: Image | IndexImage, tag: str | None = "v1") -> Descriptor:
    for blob in image.blobs:
        store.blobs[blob.descriptor.digest] = blob.data
    for child in getattr(image, "children", []):
        store.put_manifest(child.media_type, child.manifest)
    store.put_manifest(image.media_type, image.manifest, tag)
    return image.descriptor


class CountingSource(MemoryStore):
    """Counts fetches per digest."""

    def __init__(self) -> None:
        super().__init__("src.example", "app")
        self.fetched: Counter[Digest] = Counter()

    async def fetch(self, desc: Descriptor, offset: int = 0) -> AsyncIterator[bytes]:
        self.fetched[desc.digest] += 1
        async for chunk in super().fetch(desc, offset):
            yield chunk


class FailingTarget(MemoryStore):
    """Fails the push of one blob."""

    def __init__(self, bad: Digest) -> None:
        super().__init__("dst.example", "app")
        self.bad = bad

    async def push(self, desc: Descriptor, open_at: Opener) -> None:
        if desc.digest == self.bad:
            raise TransportError("push failed on purpose")
        await super().push(desc, open_at)


class SlowTarget(MemoryStore):
    """Records how many pushes run at once."""

    def __init__(self) -> None:
        super().__init__("dst.example", "app")
        self.running = 0
        self.peak = 0

    async def push(self, desc: Descriptor, open_at: Opener) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        await asyncio.sleep(0.01)
        await super().push(desc, open_at)
        self.running -= 1


async def copy(src: MemoryStore, dst: MemoryStore, root: Descriptor, **plan_opts: object) -> Progress:
    plan = await build_plan(src, root, PlanOptions(**plan_opts))  # type: ignore[arg-type]
    return await copy_graph(src, dst, plan)


async def test_shared_blobs_are_fetched_once() -> None:
    src, dst = CountingSource(), MemoryStore("dst.example", "app")
    index = make_multiarch(["linux/amd64", "linux/arm64", "linux/s390x"], shared_sizes=(1000, 2000))
    root = load(src, index)
    progress = await copy(src, dst, root)
    assert set(src.fetched.values()) == {1}
    assert len(src.fetched) == len(index.blobs) == progress.blobs_copied
    assert progress.manifests_done == 4
    assert set(dst.manifests) == {index.digest, *(c.digest for c in index.children)}
    assert dst.tags == {}  # the engine never tags


async def test_children_are_pushed_before_parents() -> None:
    class Ordered(MemoryStore):
        async def push_manifest(self, desc: Descriptor, data: bytes) -> bool:
            return await super().push_manifest(desc, data)  # MemoryStore refuses dangling references

    src, dst = MemoryStore(), Ordered("dst.example", "app")
    root = load(src, make_multiarch())
    await copy(src, dst, root)
    assert root.digest in dst.manifests


async def test_present_subgraph_is_skipped() -> None:
    src, dst = CountingSource(), MemoryStore("dst.example", "app")
    index = make_multiarch()
    root = load(src, index)
    await copy(src, dst, root)
    src.fetched.clear()
    dst.calls.clear()
    progress = await copy(src, dst, root)
    assert not src.fetched
    assert dst.calls == Counter({"exists": 1})  # one HEAD for the root, nothing else
    assert progress.manifests_present == 4 and progress.blobs_present == len(index.blobs)


async def test_failed_blob_fails_the_copy_and_the_root_is_not_pushed() -> None:
    src = MemoryStore()
    index = make_multiarch()
    root = load(src, index)
    dst = FailingTarget(index.children[1].blobs[-1].descriptor.digest)
    with pytest.raises(TransportError, match="on purpose"):
        await copy(src, dst, root)
    assert root.digest not in dst.manifests


async def test_concurrency_is_bounded() -> None:
    src, dst = MemoryStore(), SlowTarget()
    root = load(src, make_image([100] * 30, seed="many"))
    plan = await build_plan(src, root, PlanOptions())
    await copy_graph(src, dst, plan, CopyOptions(concurrency=4))
    assert dst.peak == 4


async def test_mount_within_a_registry() -> None:
    src = MemoryStore("reg.example", "a")
    dst = MemoryStore("reg.example", "b")
    dst.siblings["a"] = src
    root = load(src, make_image(seed="mount"))
    progress = await copy(src, dst, root)
    assert progress.blobs_mounted == 3 and progress.bytes_moved == 0
    assert "fetch" not in src.calls


async def test_foreign_layers_are_left_alone() -> None:
    foreign = Blob(b"windows base layer", mt.DOCKER_FOREIGN_LAYER)
    image = make_image(seed="foreign", docker=True, shared_layers=[foreign])
    src, dst = MemoryStore(), MemoryStore("dst.example", "app")
    for blob in image.blobs:
        if blob is not foreign:
            src.blobs[blob.descriptor.digest] = blob.data
    root = src.put_manifest(image.media_type, image.manifest, "v1")
    progress = await copy(src, dst, Descriptor(image.media_type, root, len(image.manifest)))
    assert progress.blobs_foreign == 1 and foreign.descriptor.digest not in dst.blobs


async def test_manifest_limit() -> None:
    src = MemoryStore()
    images = [make_image((10,), seed=f"p{i}", platform=Platform("linux", f"arch{i}")) for i in range(51)]
    root = load(src, make_index(images))
    with pytest.raises(LimitExceededError, match="more than 50 manifests") as caught:
        await build_plan(src, root, PlanOptions())
    assert str(root.digest) in str(caught.value)
    assert src.calls["fetch_manifest"] == 1  # refused before any child was read
    await build_plan(src, root, PlanOptions(max_manifests=52))


async def test_blob_limit_names_the_blob() -> None:
    src = MemoryStore()
    image = make_image((5000, 100), seed="big")
    root = load(src, image)
    with pytest.raises(LimitExceededError, match=f"blob {image.blobs[1].descriptor.digest}.* 5000 bytes"):
        await build_plan(src, root, PlanOptions(max_blob_bytes=4096))


async def test_platform_filter_keeps_attestations() -> None:
    src = MemoryStore()
    index = make_multiarch(["linux/amd64", "linux/arm64", "linux/arm/v7"])
    amd64 = index.children[0]
    attestation = make_artifact(amd64.descriptor, "application/vnd.in-toto+json", b"{}", seed="att")
    att_desc = Descriptor(
        attestation.media_type,
        attestation.digest,
        len(attestation.manifest),
        platform=Platform("unknown", "unknown"),
        annotations={
            "vnd.docker.reference.type": "attestation-manifest",
            "vnd.docker.reference.digest": str(amd64.digest),
        },
    )
    doc = make_index([*index.children]).manifest
    raw = json.loads(doc)
    raw["manifests"].append(att_desc.to_json())
    data = json.dumps(raw).encode()
    for part in (index, attestation):
        load(src, part, None)
    root = Descriptor(mt.OCI_INDEX, src.put_manifest(mt.OCI_INDEX, data, "v1"), len(data))
    plan = await build_plan(
        src, root, PlanOptions(platforms=(Platform.parse("linux/amd64"), Platform.parse("linux/arm")))
    )
    node = parse_manifest(plan.data[plan.root.digest])
    assert isinstance(node, Index)
    assert [str(m.platform) for m in node.manifests] == ["linux/amd64", "linux/arm/v7", "unknown/unknown"]
    assert plan.filtered and plan.root.digest != root.digest
    with pytest.raises(
        NoMatchingPlatformError, match="is for windows/amd64; it has linux/amd64, linux/arm/v7, linux/arm64"
    ):
        await build_plan(src, load(src, index), PlanOptions(platforms=(Platform.parse("windows/amd64"),)))


async def test_referrers_are_copied_recursively_and_indexed() -> None:
    src, dst = MemoryStore(), MemoryStore("dst.example", "app")
    image = make_image(seed="subject")
    root = load(src, image)
    sbom = make_artifact(image.descriptor, "application/spdx+json", b"sbom", seed="sbom")
    sig_of_sbom = make_artifact(sbom.descriptor, "application/vnd.cncf.notary.signature", b"sig", seed="sig")
    load(src, sbom, None)
    load(src, sig_of_sbom, None)

    class NoSubjectIndex(MemoryStore):
        async def push_manifest(self, desc: Descriptor, data: bytes) -> bool:
            await super().push_manifest(desc, data)
            return False  # like distribution 2.8: no OCI-Subject

    dst = NoSubjectIndex("dst.example", "app")
    plan = await build_plan(src, root, PlanOptions(include_referrers=True))
    assert [r.digest for r, _ in plan.referrers] == [sbom.digest, sig_of_sbom.digest]
    await copy_graph(src, dst, plan)
    assert {sbom.digest, sig_of_sbom.digest} <= set(dst.manifests)
    tagged = dst.manifests[dst.tags[image.digest.tag_schema]][1]
    node = parse_manifest(tagged)
    assert isinstance(node, Index)
    assert [(m.digest, m.artifact_type) for m in node.manifests] == [(sbom.digest, "application/spdx+json")]
    of_sbom = parse_manifest(dst.manifests[dst.tags[sbom.digest.tag_schema]][1])
    assert isinstance(of_sbom, Index) and [m.digest for m in of_sbom.manifests] == [sig_of_sbom.digest]


async def test_corrupt_source_never_lands() -> None:
    src, dst = MemoryStore(), MemoryStore("dst.example", "app")
    image = make_image(seed="corrupt")
    root = load(src, image)
    victim = image.blobs[-1].descriptor.digest
    src.blobs[victim] = b"x" + src.blobs[victim][1:]
    with pytest.raises(DigestMismatchError):
        await copy(src, dst, root)
    assert victim not in dst.blobs and root.digest not in dst.manifests


async def test_progress_is_reported() -> None:
    src, dst = MemoryStore(), MemoryStore("dst.example", "app")
    root = load(src, make_multiarch())
    seen: list[tuple[int, int]] = []
    reporter = Reporter(Progress(), lambda p: seen.append((p.blobs_done, p.bytes_moved)), interval=0)
    plan = await build_plan(src, root, PlanOptions())
    progress = await copy_graph(src, dst, plan, reporter=reporter)
    assert seen[-1] == (progress.blobs_total, progress.bytes_total)
    assert len(seen) > 5 and seen == sorted(seen)


# -- a small blob is read while the target is asked -----------------------------------------


class AskingTarget(MemoryStore):
    """Answers whether it has a blob only once the source has begun to send that blob (or after
    0.3 s): it shows whether the engine reads a blob while the target is being asked."""

    def __init__(self, started: dict[Digest, asyncio.Event]) -> None:
        super().__init__("dst.example", "app")
        self.started = started
        self.read_while_asked: set[Digest] = set()

    async def exists(self, desc: Descriptor) -> bool:
        if not desc.is_manifest:
            try:
                await asyncio.wait_for(self.started[desc.digest].wait(), 0.3)
                self.read_while_asked.add(desc.digest)
            except TimeoutError:
                pass
        return await super().exists(desc)


class WatchedSource(MemoryStore):
    """Says when each blob's stream begins, and counts the streams closed before their end."""

    def __init__(self) -> None:
        super().__init__("src.example", "app")
        self.started: dict[Digest, asyncio.Event] = {}
        self.cut: Counter[Digest] = Counter()

    async def fetch(self, desc: Descriptor, offset: int = 0) -> AsyncIterator[bytes]:
        self.started.setdefault(desc.digest, asyncio.Event()).set()
        sent = offset
        try:
            async for chunk in super().fetch(desc, offset):
                await asyncio.sleep(0.01)
                yield chunk
                sent += len(chunk)
        finally:
            if sent < desc.size:
                self.cut[desc.digest] += 1


def _asked(src: WatchedSource, image: Image) -> AskingTarget:
    for blob in image.blobs:
        src.started.setdefault(blob.descriptor.digest, asyncio.Event())
    return AskingTarget(src.started)


async def test_a_small_blob_is_read_while_the_target_is_asked_a_large_one_after() -> None:
    src = WatchedSource()
    image = make_image((300_000, 2 * 2**20), seed="ahead")
    root = load(src, image)
    dst = _asked(src, image)
    progress = await copy(src, dst, root)
    small = {b.descriptor.digest for b in image.blobs if b.descriptor.size <= 2**20}
    assert dst.read_while_asked == small  # the 2 MiB layer is read once the target asks for it
    assert progress.bytes_moved == sum(b.descriptor.size for b in image.blobs)
    assert set(dst.blobs) == {b.descriptor.digest for b in image.blobs}


async def test_a_small_blob_the_target_has_is_dropped_unread_and_not_counted() -> None:
    src = WatchedSource()
    image = make_image((300_000, 200_000), seed="ahead-present")
    root = load(src, image)
    dst = _asked(src, image)
    present = image.blobs[1]
    dst.blobs[present.descriptor.digest] = present.data
    progress = await copy(src, dst, root)
    assert present.descriptor.digest in dst.read_while_asked  # it was being read...
    assert src.cut[present.descriptor.digest] == 1  # ...and its stream was closed before its end
    assert progress.bytes_moved == sum(b.descriptor.size for b in image.blobs) - present.descriptor.size
    assert progress.blobs_present == 1 and progress.bytes_skipped == present.descriptor.size
