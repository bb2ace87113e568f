"""The triggers' single calls: promote an event, run a mirror pass (rules from app settings)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from shared.automation.passes import mirror_pass, promote
from shared.automation.rules import Rules, load_rules
from shared.errors import ConfigurationError
from shared.importing.request import ImportRequest
from shared.service.submit import Submitted
from shared.service.wiring import Services


@functools.cache
def _rules(path: str) -> Rules:
    return load_rules(path)


def rules_of(services: Services) -> Rules:
    if not services.settings.rules_file:
        raise ConfigurationError("setting FERRY_RULES_FILE: no rules file is configured")
    return _rules(services.settings.rules_file)


def _submit(services: Services) -> Any:
    async def submit(request: ImportRequest, key: str) -> Submitted:
        return await asyncio.to_thread(services.submitter.submit_keyed, request, key)

    return submit


async def on_event(services: Services, event: dict[str, Any]) -> list[str]:
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
