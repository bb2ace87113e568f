"""The service wired for a test: settings against Azurite with a fresh queue and table, fast
retries, and a drain that runs the queue empty in this process."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from shared.service.localworker import serve
from shared.service.wiring import Services, build
from shared.settings import Settings
from tests.conftest import BASIC_USERS, FAST
from tests.harness.azurite import Azurite


def environment(azurite: Azurite, **extra: str) -> dict[str, str]:
    """Settings for a service of its own: a queue and table no other test uses, loopback
    registries allowed, the ``dev`` named credential (htpasswd's alice)."""
    suffix = uuid.uuid4().hex[:10]
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "FERRY_QUEUE": f"q{suffix}",
        "FERRY_TABLE": f"t{suffix}",
        "FERRY_RETRY_DELAY_SECONDS": "0",
        "FERRY_ALLOW_LOOPBACK": "true",
        "FERRY_LEASE_SECONDS": "10",
        "FERRY_CREDENTIAL_DEV_USERNAME": "alice",
        "FERRY_CREDENTIAL_DEV_PASSWORD": BASIC_USERS["alice"],
        **extra,
    }


def make_services(env: dict[str, str]) -> Services:
    settings = Settings.from_env(env).model_copy(update={"transport": FAST})
    return build(settings)


def drain(svc: Services) -> None:
    """Run jobs until the queue is empty, as the local worker does."""
    asyncio.run(serve(svc, once=True, idle=0.05))


def record_json(svc: Services, job_id: str) -> dict[str, Any] | None:
    """The job's record as JSON (None when there is none)."""
    found = svc.statuses.get(job_id)
    return None if found is None else found.model_dump(mode="json")
