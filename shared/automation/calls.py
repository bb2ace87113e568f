"""The triggers' single calls: promote an event, run a mirror pass (rules from app settings)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from shared.automation.live import LiveRules
from shared.automation.passes import Promoted, mirror_pass, promote
from shared.automation.rules import Rules
from shared.errors import ConfigurationError
from shared.importing.request import ImportRequest
from shared.service.submit import Submitted
from shared.service.wiring import Services


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


def _submit(services: Services) -> Any:
    async def submit(request: ImportRequest, key: str) -> Submitted:
        return await asyncio.to_thread(services.submitter.submit_keyed, request, key)

    return submit


async def on_event(services: Services, event: dict[str, Any]) -> list[str]:
    return (await explained_event(services, event)).jobs


async def explained_event(services: Services, event: dict[str, Any]) -> Promoted:
    """The jobs an event enqueued, and per rule why it matched or not."""
    return await promote(rules_of(services), event, _submit(services))


async def run_mirrors(services: Services, dry_run: bool = False) -> list[dict[str, Any]]:
    reports = await mirror_pass(
        rules_of(services),
        services.worker.credential_for,
        services.settings.transport,
        None if dry_run else _submit(services),
        services.settings.ratelimit_floor,
        services.budget,
    )
    return [r.summary() for r in reports]
