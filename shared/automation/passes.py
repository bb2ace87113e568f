"""What the Event Grid and timer triggers do, so that they stay one call each.

- :func:`promote`: an ``ImagePushed`` event (Event Grid schema or CloudEvents) → one import per
  matching promotion rule. Only tagged pushes promote (a multi-arch push also sends digest-only
  events for its children). Delivery is at least once: each import's idempotency key is derived
  from the registry, repository, digest, rule and targets, so a redelivered or duplicated event
  enqueues nothing new.
- Each push event's imports make one run (``promotion``), each mirror entry's in one pass another
  (``mirror``), given an opener of runs (``runs``); a pass that enqueues nothing makes no run.
- :func:`mirror_pass`: for each mirror entry, list the source's tags, select some, ``HEAD`` each on
  both sides (``HEAD`` is not a Docker Hub pull) and enqueue only what differs or is missing.
  Stops asking a registry whose ``ratelimit-remaining`` is under the floor, and defers an entry
  that met a 429 to the next pass.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from shared.automation.rules import Mirror, Promotion, Rules, render
from shared.credentials import Credential
from shared.errors import FerryError, NotFoundError, PullBudgetSpent, RateLimitedError
from shared.http.budget import PullBudget
from shared.importing.request import ImportRequest, Source
from shared.oci.reference import Reference, parse_reference, parse_registry
from shared.registry import RegistryClient, TransportOptions
from shared.registry.store import RegistryRepository
from shared.service.submit import Submitted

log = logging.getLogger(__name__)

PUSHED = "Microsoft.ContainerRegistry.ImagePushed"
_REGISTRY_ID = re.compile(r"/providers/Microsoft\.ContainerRegistry/registries/([A-Za-z0-9]+)", re.IGNORECASE)

#: (request, idempotency key, run=slot) -> job id. The submitter's, off the event loop.
Submit = Callable[..., Awaitable[Submitted]]
#: (kind, rule, event id) -> the run a rule's or an event's jobs go into (a RunSlot).
OpenRun = Callable[[str, str, str | None], Any]
#: (registry, named credential or None) -> credential
Credentials = Callable[[str, str | None], Credential]


class MalformedEvent(ValueError):
    pass


@dataclass(frozen=True)
class Push:
    event_id: str
    registry: str
    repository: str
    tag: str
    digest: str
    media_type: str


def parse_push(event: dict[str, Any]) -> Push | None:
    """The push an event describes; None for events that promote nothing (other types, digest-only
    pushes); :class:`MalformedEvent` when an ``ImagePushed`` lacks what it must have."""
    event_type = event.get("eventType") or event.get("type")
    if event_type != PUSHED:
        return None
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("target"), dict):
        raise MalformedEvent("ImagePushed without data.target")
    target = data["target"]
    tag = target.get("tag")
    if not tag:
        return None  # a child manifest of a multi-arch push, by digest only
    repository, digest = target.get("repository"), target.get("digest")
    if not isinstance(repository, str) or not isinstance(digest, str):
        raise MalformedEvent("ImagePushed without data.target.repository or digest")
    request = data.get("request") if isinstance(data.get("request"), dict) else {}
    host = request.get("host") if request else None
    if not host:
        match = _REGISTRY_ID.search(str(event.get("topic") or event.get("source") or ""))
        if not match:
            raise MalformedEvent("ImagePushed without data.request.host or a registry topic")
        host = f"{match.group(1).lower()}.azurecr.io"
    try:
        registry = parse_registry(str(host))
        ref = parse_reference(f"{repository}:{tag}@{digest}", default_registry=registry)
    except ValueError as exc:
        raise MalformedEvent(str(exc)) from None
    return Push(
        str(event.get("id", "")), registry, ref.repository, str(tag), str(ref.digest), str(target.get("mediaType", ""))
    )


def promotion(rule: Promotion, push: Push) -> tuple[ImportRequest, str]:
    values = {"repository": push.repository, "tag": push.tag, "digest": push.digest.replace(":", "-")}
    repository = render(rule.targetRepository, **values)
    tags = [f"{repository}:{render(t, **values)}" for t in rule.targetTags]
    request = ImportRequest(
        targetRegistry=rule.targetRegistry,
        source=Source(
            registryUri=push.registry, sourceImage=f"{push.repository}@{push.digest}", credential=rule.credential
        ),
        targetTags=tags,
        **rule.request_options(),
    )
    key = "|".join(("promote", push.registry, push.repository, push.digest, rule.name, rule.targetRegistry, *tags))
    return request, key


@dataclass
class Promoted:
    """What one event did: the jobs it enqueued and, per rule, why it matched or not (or why the
    event promotes nothing at all)."""

    event_id: str
    jobs: list[str] = field(default_factory=list)
    push: str | None = None
    rules: list[dict[str, Any]] = field(default_factory=list)
    ignored: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.event_id, "jobs": self.jobs}
        if self.push:
            out["push"] = self.push
        if self.ignored:
            out["ignored"] = self.ignored
        else:
            out["rules"] = self.rules
        return out

    def __str__(self) -> str:
        if self.ignored:
            return f"event {self.event_id}: {self.ignored}"
        if not self.rules:
            return f"event {self.event_id}: push of {self.push}: no promotion rules"
        why = "; ".join(
            f"rule {r['rule']}" + (f" -> job {r['job']}" if r.get("job") else "") + f": {r['why']}" for r in self.rules
        )
        return f"event {self.event_id}: push of {self.push}: {len(self.jobs)} imports enqueued; {why}"


async def promote(rules: Rules, event: dict[str, Any], submit: Submit, runs: OpenRun | None = None) -> Promoted:
    """Enqueue the imports ``event`` asks for, as one run; the jobs, and why each rule matched or not."""
    event_id = str(event.get("id") or "?")
    try:
        push = parse_push(event)
    except MalformedEvent as exc:
        outcome = Promoted(event_id, ignored=f"malformed, dropped: {exc}")
        log.warning("%s", outcome)
        return outcome
    if push is None:
        kind = event.get("eventType") or event.get("type")
        why = (
            "a push without a tag (a blob, or a platform's manifest of a multi-arch image) promotes nothing"
            if kind == PUSHED
            else f"{kind} promotes nothing (only a tagged push does)"
        )
        outcome = Promoted(event_id, ignored=why)
        log.info("%s", outcome)
        return outcome
    outcome = Promoted(event_id, push=f"{push.registry}/{push.repository}:{push.tag}")
    await _promote_rules(rules, push, submit, runs, outcome)
    log.info("%s", outcome)
    return outcome


async def _promote_rules(rules: Rules, push: Push, submit: Submit, runs: OpenRun | None, outcome: Promoted) -> None:
    """Each rule's verdict on the push; the matching ones' imports, one run for the event."""
    explained = [(rule, rule.explain(push.registry, push.repository, push.tag)) for rule in rules.promotions]
    matched = [rule.name for rule, verdict in explained if verdict.matched]
    slot = runs("promotion", ",".join(matched), push.event_id) if runs and matched else None
    send = functools.partial(submit, run=slot) if slot else submit
    for rule, verdict in explained:
        entry = verdict.as_dict()
        if verdict.matched:
            request, key = promotion(rule, push)
            entry["job"] = (await send(request, key)).id
            outcome.jobs.append(entry["job"])
        outcome.rules.append(entry)
    if slot is not None:
        await asyncio.to_thread(slot.seal)


# -- mirroring ---------------------------------------------------------------------------------


@dataclass
class MirrorReport:
    name: str
    selected: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    enqueued: dict[str, str] = field(default_factory=dict)
    #: The job for each tag that was not up to date: made by this pass, or found in flight.
    jobs: dict[str, str] = field(default_factory=dict)
    #: A dry run's tags that a real pass would enqueue (nothing is enqueued).
    would_enqueue: list[str] = field(default_factory=list)
    #: Each selected tag in words: enqueued, up to date, retrying (attempt N), failed: CODE...
    states: dict[str, str] = field(default_factory=dict)
    deferred: str | None = None
    #: Selected tags not looked at, left for the next pass (the budget, a 429, the floor).
    deferred_tags: list[str] = field(default_factory=list)
    #: Per source registry: requests sent and pulls (manifest ``GET``s) among them.
    cost: dict[str, dict[str, int]] = field(default_factory=dict)
    dry_run: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name, "selected": len(self.selected), "unchanged": len(self.unchanged),
            "enqueued": self.enqueued, "wouldEnqueue": self.would_enqueue, "states": self.states,
            "deferred": self.deferred, "deferredTags": self.deferred_tags, "cost": self.cost,
        }  # fmt: skip

    def __str__(self) -> str:
        done = (
            f"would enqueue {len(self.would_enqueue)}"
            + (f" ({', '.join(self.would_enqueue)})" if self.would_enqueue else "")
            if self.dry_run
            else f"{len(self.enqueued)} enqueued"
        )
        deferred = f", deferred ({len(self.deferred_tags)} tags): {self.deferred}" if self.deferred else ""
        cost = "; ".join(f"{r}: {c['requests']} requests, {c['pulls']} pulls" for r, c in self.cost.items())
        kind = " (dry run)" if self.dry_run else ""
        counts = f"{len(self.selected)} selected, {len(self.unchanged)} unchanged"
        return f"mirror {self.name}{kind}: {counts}, {done} ({cost or 'no requests'}){deferred}"


#: ``HEAD``s in flight per source during a mirror pass (each tag also ``HEAD``s the target).
MIRROR_CONCURRENCY = 16


async def _mirror_one(
    entry: Mirror,
    credentials: Credentials,
    options: TransportOptions,
    submit: Submit | None,
    floor: int,
    budget: PullBudget | None = None,
) -> MirrorReport:
    report = MirrorReport(entry.name, dry_run=submit is None)
    source = parse_reference(entry.source)
    name = entry.credential.split(",")[0] if entry.credential else None  # HEADs are free: the first account
    credential = credentials(source.registry, name)
    async with (
        RegistryClient(source.registry, credential, options, role="source", budget=budget, budget_name=name) as src,
        RegistryClient(entry.targetRegistry, credentials(entry.targetRegistry, None), options, role="target") as dst,
    ):
        try:
            report.selected = entry.select(await src.list_tags(source.repository))
            await _mirror_tags(entry, source, src, dst, submit, report, floor)
        except (RateLimitedError, PullBudgetSpent) as exc:
            report.deferred = f"rate limited ({getattr(exc, 'retry_after', None) or '?'} s): {exc}"
        finally:
            report.cost = {source.registry: _cost(src, report, floor)}
    order = {t: i for i, t in enumerate(report.selected)}
    report.unchanged.sort(key=order.__getitem__)
    report.would_enqueue.sort(key=order.__getitem__)
    report.states = {t: report.states[t] for t in report.selected if t in report.states}
    report.deferred_tags = [t for t in report.selected if t not in report.states]
    return report


def _cost(src: RegistryClient, report: MirrorReport, floor: int) -> dict[str, int]:
    """What the pass sent the source, and, when it announces a limit, how many of the imports it
    enqueued will wait for the pull budget (one pull each at least, ``floor`` kept in reserve)."""
    cost = {"requests": src.transport.requests, "pulls": src.transport.pulls}
    said = src.transport.ratelimit
    if said is not None and said.limit is not None and said.remaining is not None:
        room = max(0, said.remaining - min(floor, said.limit - 1))
        imports = len(report.enqueued) + len(report.would_enqueue)
        cost.update(limit=said.limit, remaining=said.remaining, waitForBudget=max(0, imports - room))
    return cost


async def _mirror_tags(
    entry: Mirror,
    source: Reference,
    src: RegistryClient,
    dst: RegistryClient,
    submit: Submit | None,
    report: MirrorReport,
    floor: int,
) -> None:
    """Every selected tag, :data:`MIRROR_CONCURRENCY` at a time; none started once the source's
    ``ratelimit-remaining`` is under the floor or it answered 429 (the rest is deferred)."""
    gate, stop = asyncio.Semaphore(MIRROR_CONCURRENCY), asyncio.Event()
    existing = await _target_tags(entry, source, dst)

    async def one(tag: str) -> None:
        async with gate:
            remaining = src.transport.ratelimit_remaining
            if remaining is not None and remaining < floor and not stop.is_set():
                report.deferred = f"{source.registry} has {remaining} requests left, under the floor of {floor}"
                stop.set()
            if stop.is_set():
                return
            try:
                await _mirror_tag(entry, source, tag, src, dst, submit, report, existing)
            except (RateLimitedError, PullBudgetSpent):
                stop.set()
                raise

    results = await asyncio.gather(*(one(t) for t in report.selected), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _target_tags(entry: Mirror, source: Reference, dst: RegistryClient) -> set[str] | None:
    """The tags of the one target repository every selected tag goes to (one list instead of a
    ``HEAD`` per missing tag); None when the repository depends on the tag or the list fails."""
    if "{tag}" in entry.targetRepository or "{digest}" in entry.targetRepository:
        return None
    repository = render(entry.targetRepository, repository=source.repository, tag="", digest="")
    try:
        return set(await dst.list_tags(repository))
    except NotFoundError:
        return set()  # no such repository yet: every tag is missing
    except FerryError as exc:
        log.info("mirror %s: could not list the target's tags (%s); looking at each", entry.name, exc)
        return None


async def _mirror_tag(
    entry: Mirror,
    source: Reference,
    tag: str,
    src: RegistryClient,
    dst: RegistryClient,
    submit: Submit | None,
    report: MirrorReport,
    existing: set[str] | None = None,
) -> None:
    """One tag: unchanged when the target's has the source's digest, else enqueued (``existing``: the target's tags)."""
    desc = await src.resolve(source.repository, tag)
    target_repo = render(
        entry.targetRepository, repository=source.repository, tag=tag, digest=str(desc.digest).replace(":", "-")
    )
    current = await RegistryRepository(dst, target_repo).lookup(tag) if existing is None or tag in existing else None
    if current is not None and current.digest == desc.digest:
        report.unchanged.append(tag)
        report.states[tag] = "up to date"
        return
    request = ImportRequest(
        targetRegistry=entry.targetRegistry,
        source=Source(
            registryUri=source.registry,
            sourceImage=f"{source.repository}:{tag}@{desc.digest}",
            credential=entry.credential,
        ),
        targetTags=[f"{target_repo}:{tag}"],
        **entry.request_options(),
    )
    key = "|".join(("mirror", entry.name, source.name, str(desc.digest), entry.targetRegistry, target_repo, tag))
    if submit is None:
        report.would_enqueue.append(tag)
        report.states[tag] = "would enqueue"
        return
    submitted = await submit(request, key)
    report.states[tag], report.jobs[tag] = submitted.note, submitted.id
    if submitted.created:  # never "enqueued" for a job that was not
        report.enqueued[tag] = submitted.id


async def mirror_pass(
    rules: Rules,
    credentials: Credentials,
    options: TransportOptions,
    submit: Submit | None,
    floor: int = 10,
    budget: PullBudget | None = None,
    runs: OpenRun | None = None,
) -> list[MirrorReport]:
    """One pass over every mirror entry, each entry's jobs one run; ``submit=None`` is a dry run
    (nothing enqueued). ``budget``: the shared pull budget, told what each source says of its limit."""
    reports = []
    for entry in rules.mirrors:
        slot = runs("mirror", entry.name, None) if runs and submit else None
        entry_submit = functools.partial(submit, run=slot) if submit and slot else submit
        try:
            report = await _mirror_one(entry, credentials, options, entry_submit, floor, budget)
        except FerryError as exc:  # one entry's trouble does not stop the others
            report = MirrorReport(entry.name, deferred=f"{exc.code}: {exc}", dry_run=submit is None)
        if slot is not None:  # the run ends when its jobs have (a pass that made none, no run)
            await asyncio.to_thread(slot.seal, len(report.unchanged))
        log.info("%s", report)
        reports.append(report)
    return reports
