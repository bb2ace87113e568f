"""A verified import takes its proof along: the signature manifests that verified the image
are copied into each target repository (a cosign ``.sig`` under its tag; a referrer by digest,
indexed in the target's referrers tag where the registry does not index it), so the target can
be verified again. Called after the image's graph is copied and before any tag moves."""

from __future__ import annotations

from shared.content.protocols import Source, Target
from shared.engine.copy import CopyOptions, copy_graph
from shared.engine.plan import PlanOptions, build_plan
from shared.engine.progress import Progress, Reporter
from shared.oci import mediatypes as mt
from shared.oci.manifest import Descriptor
from shared.verify.evidence import Evidence


async def carry(
    evidence: list[Evidence], src: Source, dst: Target, *, mount_from: str | None, concurrency: int
) -> None:
    """Copy every piece of ``evidence`` from ``src`` into ``dst`` (its bytes are not counted in
    the image's progress)."""
    reporter = Reporter(Progress(), None)
    for item in evidence:
        plan = await build_plan(
            src, item.manifest, PlanOptions(max_manifests=2, max_descriptors=64, concurrency=concurrency)
        )
        if item.tag is None and item.subject is not None:
            plan.referrers.append((item.manifest, Descriptor(mt.OCI_MANIFEST, item.subject, 0)))
        options = CopyOptions(concurrency=concurrency, mount_from=mount_from, push_root=item.tag is None)
        await copy_graph(src, dst, plan, options, reporter)
        if item.tag is not None:
            await dst.tag(item.manifest, item.data, item.tag)
