"""The triggers' single calls: promote an event, run a mirror pass (rules from app settings)."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from shared import telemetry
from shared.automation.live import LiveRules
from shared.automation.passes import OpenRun, Promoted, mirror_pass, promote
from shared.automation.rules import Rules
from shared.automation.status import mirror_passed, promoted, rule_states
from shared.azure_storage.records import Requester
from shared.azure_storage.rules import RuleRecords
from shared.errors import ConfigurationError
from shared.importing.request import ImportRequest
from shared.service.runs import RunSlot, trigger
from shared.service.submit import Submitted
from shared.service.wiring import Services

log = logging.getLogger(__name__)
#: Who asks for a mirror pass's jobs.
TIMER = Requester(kind="mirror", name="timer")


@functools.cache
def _rules(path: str) -> LiveRules:
    """One holder per file for the process: read at start-up, read again when it changes."""
    return LiveRules.load(path)


def rules_at_startup(rules_file: str | None) -> None:
    """Read the rules file as the app starts, so a bad one stops it naming the file, rule and
    field (not the first event or pass)."""
    if rules_file:
        _rules(rules_file)


def rules_state(services: Services) -> dict[str, Any] | None:
    """The rules in force for ``/api/health``: file, counts, loaded at, a refused edit."""
    if not services.settings.rules_file:
        return None
    try:
        return _rules(services.settings.rules_file).describe()
    except ConfigurationError as exc:  # never read successfully (the start-up check was skipped)
        return {"file": services.settings.rules_file, "error": str(exc)}


def rules_of(services: Services) -> Rules:
    if not services.settings.rules_file:
        raise ConfigurationError("setting FERRY_RULES_FILE: no rules file is configured")
    return _rules(services.settings.rules_file).current()


def _submit(services: Services, who: Requester) -> Any:
    async def submit(request: ImportRequest, key: str, run: RunSlot | None = None) -> Submitted:
        keyed = functools.partial(services.submitter.submit_keyed, requested_by=who, run=run)
        return await asyncio.to_thread(keyed, request, key)

    return submit


def _runs(services: Services, who: Requester) -> OpenRun:
    """Opens the run of one rule's pass or one push event (made with its first job)."""

    def open_run(kind: str, rule: str, event_id: str | None) -> RunSlot:
        how = "event" if kind == "promotion" else "rule"
        return RunSlot(services.runs, services.submitter.new_id, kind, trigger(how, who, rule=rule, eventId=event_id))

    return open_run


def _records(services: Services) -> RuleRecords:
    return RuleRecords(services.statuses.table)


def _quietly(what: str, call: Any, *args: Any) -> None:
    """A rule's status is for people to look at: failing to write it never fails the pass."""
    try:
        call(*args)
    except Exception as exc:
        log.warning("could not record %s: %s", what, type(exc).__name__)


async def on_event(services: Services, event: dict[str, Any]) -> list[str]:
    return (await explained_event(services, event)).jobs


async def explained_event(services: Services, event: dict[str, Any]) -> Promoted:
    """The jobs an event enqueued (one run), and per rule why it matched or not. Each rule that
    made a job is recorded for the rules view; the jobs continue this span's trace (the delivery's)."""
    who = Requester(kind="event", name="event grid")
    with telemetry.phase("promotion", **{"ferry.event.id": str(event.get("id", ""))}):
        outcome = await promote(rules_of(services), event, _submit(services, who), _runs(services, who))
    for entry in outcome.rules:
        if entry.get("job"):
            rule, jobs = str(entry["rule"]), {outcome.push or "?": str(entry["job"])}
            await asyncio.to_thread(
                _quietly, f"promotion {rule}", promoted, _records(services), rule, outcome.push or "?", jobs
            )
    return outcome


async def run_mirrors(services: Services, dry_run: bool = False) -> list[dict[str, Any]]:
    with telemetry.phase("mirror_pass", **{"ferry.dry_run": dry_run}):  # the jobs it makes continue this trace
        reports = await mirror_pass(
            rules_of(services),
            services.worker.credential_for,
            services.settings.transport,
            None if dry_run else _submit(services, TIMER),
            services.settings.ratelimit_floor,
            runs=_runs(services, TIMER),
            budget=services.budget,
        )
    if not dry_run:
        for report in reports:
            await asyncio.to_thread(_quietly, f"mirror {report.name}", mirror_passed, _records(services), report)
    return [r.summary() for r in reports]


def rules_status(services: Services) -> dict[str, Any]:
    """``GET /api/rules``: each rule and how it is doing, or ``configured: false``."""
    if not services.settings.rules_file:
        return {"configured": False, "rules": []}
    rules = rules_of(services)
    return {"configured": True, "rules": rule_states(rules, _records(services), services.statuses.get)}
