"""One import, start to end, with ``az acr import``'s policy around the engine:

1. resolve the source once (``HEAD``); everything after works by digest, and ``name:tag@digest``
   fails unless the tag still points at that digest; a verification policy is applied to THAT
   digest (:mod:`shared.verify`), and in ``enforce`` mode a failure stops the import here;
2. plan the graph (limits, platform filter, referrers) — nothing is copied yet;
3. ``NoForce``: every target tag is checked before any byte moves; one that points elsewhere
   fails the import with ``Tag REPO:TAG already exists in target registry``;
4. copy the graph into each target repository (the first streams from the source, the others
   mount from it);
5. tag last, so a tag points at a fully copied image or does not move (the signatures that
   verified it are copied just before); right before the first tag moves the import commits
   (:func:`shared.stopping.commit`): a stop asked after that waits for the last tag, so a stopped
   import moved all its tags or none.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared import stopping, telemetry
from shared.content.protocols import Source, Target
from shared.credentials import Anonymous
from shared.engine.copy import CopyOptions, copy_graph, totals
from shared.engine.plan import Plan, PlanOptions, build_plan
from shared.engine.progress import Progress, Reporter
from shared.errors import DigestMismatchError, TagExistsError
from shared.importing.result import BlobCounts, DryRunPlan, ImportResult, PlannedManifest
from shared.importing.spec import ImportSpec, TargetRef
from shared.oci.manifest import Descriptor
from shared.registry.client import RegistryClient
from shared.registry.store import RegistryRepository, RegistryTargets

if TYPE_CHECKING:  # shared.verify (cryptography, rfc8785) loads only when a policy is given
    from shared.verify.policy import Policy
    from shared.verify.verifier import Verdict

#: Asked right before a tag moves: may this job move it? (No, when a newer job wants the tag.)
MayTag = Callable[[TargetRef], Awaitable[bool]]
#: The target registry, one repository at a time, as the engine's :class:`Target` role.
Targets = Callable[[str], Target]


async def resolve_source(src: Source, spec: ImportSpec) -> Descriptor:
    ref = spec.source
    if ref.tag is None:
        return await src.resolve(ref.identifier)
    root = await src.resolve(ref.tag)
    if ref.digest is not None and root.digest != ref.digest:
        raise DigestMismatchError(
            f"source {ref}: tag {ref.tag} now points at {root.digest}, not the pinned digest",
            str(ref.digest),
            str(root.digest),
        )
    return root


async def current_tags(targets: Targets, spec: ImportSpec) -> dict[TargetRef, Descriptor | None]:
    """What each tagged target points at now (``HEAD``), or None where the tag is missing."""
    found = await asyncio.gather(*(targets(t.repository).lookup(t.tag or "") for t in spec.tagged))
    return dict(zip(spec.tagged, found, strict=True))


def conflicts(current: dict[TargetRef, Descriptor | None], root: Descriptor) -> list[TargetRef]:
    """The tags that point at another image (all of them, so the message names every one)."""
    return [t for t, desc in current.items() if desc is not None and desc.digest != root.digest]


def tag_exists_message(clashes: list[TargetRef], current: dict[TargetRef, Descriptor | None], root: Descriptor) -> str:
    """az's words, then what each tag points at beside what the import would land, and how to overwrite."""
    names = ", ".join(str(t) for t in clashes)
    held = "; ".join(f"{t} is {d.digest}" for t in clashes if (d := current.get(t)) is not None)
    return (
        f"Tag {names} already exists in target registry ({held}; the import is {root.digest}): "
        'to overwrite, use --force (ferry import) or "mode": "Force" (the API and rules)'
    )


def root_present(current: dict[TargetRef, Descriptor | None], repository: str, root: Descriptor) -> bool | None:
    """Whether ``repository`` has the root, as far as its tags tell: True when one of them points
    at it; False when they all were looked up and none does (the root is then pushed, not probed
    first); None when it has no tagged target (probe)."""
    mine = [desc for t, desc in current.items() if t.repository == repository]
    if not mine:
        return None
    return any(desc is not None and desc.digest == root.digest for desc in mine)


async def _dry_run(spec: ImportSpec, plan: Plan, targets: Targets, same_registry: bool) -> DryRunPlan:
    dst = targets(spec.repositories[0])
    blobs = [b for b in plan.blobs.values() if not b.is_foreign]
    present = await asyncio.gather(*(dst.exists(b) for b in blobs))
    here = [b for b, p in zip(blobs, present, strict=True) if p]
    missing = [b for b, p in zip(blobs, present, strict=True) if not p]
    manifests_present = await asyncio.gather(*(dst.exists(m) for m in plan.manifests.values()))
    return DryRunPlan(
        manifests=[
            PlannedManifest(digest=str(d.digest), mediaType=d.media_type, present=p)
            for d, p in zip(plan.manifests.values(), manifests_present, strict=True)
        ],
        blobs=len(plan.blobs),
        uniqueBytes=plan.unique_bytes,
        blobsPresent=len(here),
        bytesPresent=sum(b.size for b in here),
        blobsToMount=len(missing) if same_registry else 0,
        blobsToCopy=0 if same_registry else len(missing),
        bytesToCopy=0 if same_registry else sum(b.size for b in missing),
        foreignBlobs=len(plan.blobs) - len(blobs),
        referrers=[str(r.digest) for r, _ in plan.referrers],
    )


def _describe(spec: ImportSpec, root: Descriptor, plan: Plan | None) -> ImportResult:
    result = ImportResult(source=str(spec.source), digest=str(root.digest), mediaType=root.media_type, size=root.size)
    if plan is not None and plan.source_root is not None:
        result.sourceDigest = str(plan.source_root.digest)
        result.platforms = [str(p) for p in spec.platforms]
        result.note = "the index was filtered to the requested platforms, so its digest differs from the source's"
    result.targets = [
        f"{spec.target_registry}/{t.repository}:{t.tag}"
        if t.tag
        else f"{spec.target_registry}/{t.repository}@{root.digest}"
        for t in spec.targets
    ]
    return result


def up_to_date(spec: ImportSpec, root: Descriptor, current: dict[TargetRef, Descriptor | None]) -> bool:
    """Every target is a tag that already points at the source's digest, and nothing asks to read
    more (a platform filter makes a new digest; referrers may have changed): nothing to do, and no
    manifest ``GET`` (which Docker Hub counts as a pull) is made."""
    if spec.platforms or spec.include_referrers or len(spec.tagged) != len(spec.targets):
        return False
    return all(desc is not None and desc.digest == root.digest for desc in current.values())


@dataclass(frozen=True, slots=True)
class _Copy:
    """One copy's parts, resolved and planned: what ``_copy`` and ``_copy_graphs`` work on."""

    spec: ImportSpec
    src: Source
    targets: Targets
    plan: Plan
    current: dict[TargetRef, Descriptor | None]
    concurrency: int
    reporter: Reporter
    verdict: Verdict | None = None


async def _copy(job: _Copy, may_tag: MayTag | None = None) -> list[str]:
    """Copy the graph and its proof (:mod:`shared.verify.carry`) into each target repository
    (later ones mount from the first), then tag; returns the tags a newer job wanted, not moved."""
    spec, plan, current, targets = job.spec, job.plan, job.current, job.targets
    superseded: list[str] = []
    progress = job.reporter.progress
    totals(plan, progress)
    progress.manifests_total *= len(spec.repositories)
    progress.blobs_total *= len(spec.repositories)
    await _copy_graphs(job)
    data = plan.data[plan.root.digest]
    moving = [t for t in spec.tagged if (d := current[t]) is None or d.digest != plan.root.digest]
    if may_tag is not None:  # a newer job for the same tag wins, whichever finishes first
        allowed = await asyncio.gather(*(may_tag(t) for t in moving))
        superseded.extend(str(t) for t, ok in zip(moving, allowed, strict=True) if not ok)
        moving = [t for t, ok in zip(moving, allowed, strict=True) if ok]
    stopping.commit()  # the last point a stop applies: from here every tag moves, or the import fails
    with telemetry.phase("tags", **{"ferry.tags": [str(t) for t in moving]}):
        await asyncio.gather(*(targets(t.repository).tag(plan.root, data, t.tag or "") for t in moving))
    job.reporter.tick(force=True)
    return superseded


async def _copy_graphs(job: _Copy) -> None:
    """The graph into each target repository, the first streamed, the others mounted from it;
    with a verdict, the signatures that verified it after it."""
    first: str | None = None
    tagged = {t.repository for t in job.spec.tagged}
    for repository in job.spec.repositories:
        options = CopyOptions(
            concurrency=job.concurrency,
            mount_from=first,
            push_root=repository not in tagged,
            root_present=root_present(job.current, repository, job.plan.root),
        )
        await copy_graph(job.src, job.targets(repository), job.plan, options, job.reporter)
        if job.verdict is not None and not job.plan.filtered:  # a filtered index is a new, unsigned digest
            from shared.verify.carry import carry  # noqa: PLC0415 - shared.verify loads only with a policy

            dst = job.targets(repository)
            await carry(job.verdict.evidence, job.src, dst, mount_from=first, concurrency=job.concurrency)
        first = first or repository


def _counts(result: ImportResult, plan: Plan, progress: Progress) -> None:
    result.manifests = len(plan.manifests)
    result.manifestsPresent = progress.manifests_present
    result.blobs = BlobCounts(
        total=len(plan.blobs),
        copied=progress.blobs_copied,
        mounted=progress.blobs_mounted,
        present=progress.blobs_present,
        foreign=progress.blobs_foreign,
    )
    result.bytes = progress.bytes_moved
    result.uniqueBytes = plan.unique_bytes
    result.referrers = [str(r.digest) for r, _ in plan.referrers]


async def run_import(
    spec: ImportSpec,
    source: RegistryClient,
    target: RegistryClient,
    *,
    concurrency: int = 8,
    on_progress: Callable[[Progress], None] | None = None,
    progress_interval: float = 0.5,
    source_anonymous: bool | None = None,
    may_tag: MayTag | None = None,
    verification: Policy | None = None,
) -> ImportResult:
    """Run ``spec`` from ``source`` into ``target``; returns what it came to."""
    started = time.monotonic()
    # The engine's roles: the source repository, and the target registry's repositories.
    src = RegistryRepository(source, spec.source.repository)
    targets = RegistryTargets(target)
    # Both only read: the target's tags are looked up while the source tag is resolved.
    root, current, verdict = await _resolve(spec, src, targets, source, verification)
    if up_to_date(spec, root, current) and not spec.dry_run:
        result = _describe(spec, root, None)
        result.upToDate, result.bytes, result.seconds = True, 0, round(time.monotonic() - started, 3)
        return _verified(result, verdict)
    if source_anonymous is None:
        source_anonymous = isinstance(source.credential, Anonymous)
    plan, current = await _plan(spec, src, root, targets, current, _plan_options(spec, source_anonymous, concurrency))
    result = _describe(spec, plan.root, plan)
    if spec.dry_run:
        result.dryRun = True
        result.plan = await _dry_run(spec, plan, targets, source.registry == target.registry)
    else:
        reporter = Reporter(Progress(), on_progress, progress_interval)
        job = _Copy(spec, src, targets, plan, current, concurrency, reporter, verdict)
        superseded = await _copy(job, may_tag)
        _counts(result, plan, reporter.progress)
        if superseded:
            result.superseded = superseded  # a newer job asked for these tags: not moved
    result.seconds = round(time.monotonic() - started, 3)
    return _verified(result, verdict, plan.filtered)


async def _resolve(
    spec: ImportSpec, src: Source, targets: Targets, source: RegistryClient, verification: Policy | None
) -> tuple[Descriptor, dict[TargetRef, Descriptor | None], Verdict | None]:
    """The source resolved once (the target's tags looked up meanwhile), and that digest verified."""
    with telemetry.phase("resolve", **{"ferry.source": str(spec.source)}) as span:
        root, current = await asyncio.gather(resolve_source(src, spec), current_tags(targets, spec))
        span.set_attribute("ferry.digest", str(root.digest))
    return root, current, await _verify(verification, source, spec, root)


async def _verify(policy: Policy | None, source: RegistryClient, spec: ImportSpec, root: Descriptor) -> Verdict | None:
    """The resolved digest, verified before anything else is read or copied (``enforce`` raises)."""
    if policy is None:
        return None
    from shared.verify.verifier import enforce, verify  # noqa: PLC0415 - cryptography only with a policy

    verdict = await verify(policy, source, spec.source.repository, root)
    enforce(verdict)
    return verdict


def _verified(result: ImportResult, verdict: Verdict | None, filtered: bool = False) -> ImportResult:
    """The result says what verified what (or, in ``warn`` mode, what did not)."""
    if verdict is not None:
        result.verification = verdict.to_json()
        if filtered and verdict.evidence:
            result.verification["note"] = "signatures not copied: the filtered index is a new digest they do not sign"
    return result


def _plan_options(spec: ImportSpec, source_anonymous: bool, concurrency: int) -> PlanOptions:
    return PlanOptions(
        platforms=spec.platforms,
        include_referrers=spec.include_referrers,
        max_manifests=spec.limits.max_manifests,
        max_descriptors=spec.limits.max_descriptors,
        max_blob_bytes=spec.limits.max_public_blob_bytes if source_anonymous else None,
        concurrency=concurrency,
    )


async def _plan(
    spec: ImportSpec,
    src: Source,
    root: Descriptor,
    targets: Targets,
    current: dict[TargetRef, Descriptor | None],
    options: PlanOptions,
) -> tuple[Plan, dict[TargetRef, Descriptor | None]]:
    """The plan, and the target's tags as they bear on it; ``NoForce`` refuses before a byte moves."""
    with telemetry.phase("plan") as span:
        plan = await build_plan(src, root, options)
        span.set_attributes({"ferry.manifests": len(plan.manifests), "ferry.blobs": len(plan.blobs)})
    if spec.platforms:  # the filtered index is new: look again with its digest
        current = await current_tags(targets, spec)
    clashes = conflicts(current, plan.root)
    if clashes and not spec.force:
        raise TagExistsError(tag_exists_message(clashes, current, plan.root))
    return plan, current
