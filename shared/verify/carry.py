"""A verified import takes its proof along: the signature manifests that verified the image
are copied into each target repository (a cosign ``.sig`` under its tag; referrers by digest,
indexed in the target's referrers tag, in one update, where the registry does not index them),
so the target can be verified again. Called after the image's graph is copied and before any
tag moves. The manifests' bytes were read while verifying: they are not fetched again."""

from __future__ import annotations

import asyncio

from shared.content.protocols import Source, Target
from shared.engine.copy import CopyOptions, copy_graph
from shared.engine.plan import Plan
from shared.engine.progress import Progress, Reporter
from shared.oci import mediatypes as mt
from shared.oci.manifest import Descriptor, Manifest, parse_manifest, successors
from shared.verify.evidence import Evidence


def _add(plan: Plan, item: Evidence) -> None:
    """``item``'s manifest and blobs, as a plan holds them (a signature manifest is one level)."""
    node = parse_manifest(item.data, item.manifest.media_type)
    digest = item.manifest.digest
    plan.manifests[digest], plan.data[digest], plan.children[digest] = item.manifest, item.data, successors(node)
    for blob in node.blobs if isinstance(node, Manifest) else ():
        plan.blobs.setdefault(blob.digest, blob)


async def carry(
    evidence: list[Evidence], src: Source, dst: Target, *, mount_from: str | None, concurrency: int
) -> None:
    """Copy every piece of ``evidence`` from ``src`` into ``dst`` (its bytes are not counted in
    the image's progress): each ``.sig`` on its own, the referrers in one walk."""
    options = CopyOptions(concurrency=concurrency, mount_from=mount_from)
    signatures = [e for e in evidence if e.tag is not None]
    referrers = [e for e in evidence if e.tag is None and e.subject is not None]

    async def tagged(item: Evidence) -> None:
        plan = Plan(item.manifest)
        _add(plan, item)
        await copy_graph(src, dst, plan, CopyOptions(concurrency=concurrency, mount_from=mount_from, push_root=False))
        await dst.tag(item.manifest, item.data, item.tag or "")

    async def referred() -> None:
        if not referrers:
            return
        plan = Plan(referrers[0].manifest)
        for item in referrers:
            _add(plan, item)
            assert item.subject is not None
            plan.referrers.append((item.manifest, Descriptor(mt.OCI_MANIFEST, item.subject, 0)))
        await copy_graph(src, dst, plan, options, Reporter(Progress(), None))

    await asyncio.gather(referred(), *(tagged(item) for item in signatures))
