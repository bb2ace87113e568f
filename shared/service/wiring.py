"""Builds the service's parts from settings: storage, the submitter and the worker. Used by the
function app's composition root and by ``python -m shared.cli worker``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared import telemetry
from shared.azure_storage.budget import TableLedgers
from shared.azure_storage.queue import JobQueue
from shared.azure_storage.runs import RunStore
from shared.azure_storage.store import StatusStore, StorageConfig, new_job_id
from shared.events.publish import Publisher
from shared.http.budget import PullBudget
from shared.service.jobs import Worker
from shared.service.runevents import EventSender
from shared.service.runs import Runs
from shared.service.submit import Submitter
from shared.service.waiting import Waits
from shared.settings import Settings


@dataclass
class Services:
    settings: Settings
    statuses: StatusStore
    queue: JobQueue
    submitter: Submitter
    worker: Worker
    #: Runs (in the status table) and the queue their end events wait in (``<queue>-events``).
    runs: Runs
    events: JobQueue
    #: The pull budgets every worker shares (in the status table).
    budget: PullBudget


def storage_config(settings: Settings) -> StorageConfig:
    return StorageConfig(
        connection_string=settings.storage_connection_string,
        account=settings.storage_account,
        queue_service_uri=settings.queue_service_uri,
        table_service_uri=settings.table_service_uri,
        client_id=settings.client_id,
        queue_name=settings.queue_name,
        table_name=settings.table_name,
    )


def build(settings: Settings, *, ensure: bool | None = None, worker: Worker | None = None) -> Services:
    """The services for ``settings``. ``ensure`` creates the queue and table (default: when
    storage is a connection string, i.e. Azurite; in Azure the Bicep creates them)."""
    config = storage_config(settings)
    statuses, queue = StatusStore(config), JobQueue(config)
    events = JobQueue(dataclasses.replace(config, queue_name=f"{config.queue_name}-events"))
    if ensure if ensure is not None else bool(settings.storage_connection_string):
        statuses.ensure()
        queue.ensure()
        events.ensure()
    budget = PullBudget(TableLedgers(statuses.table), reserve=settings.ratelimit_floor)
    runs = Runs(RunStore.from_config(config), events, statuses.get)
    worker = worker or Worker(settings, statuses, waits=Waits(budget, queue.send, statuses))
    worker.runs = runs
    return Services(
        settings,
        statuses,
        queue,
        Submitter(settings, statuses, queue, new_job_id, runs),
        worker,
        runs,
        events,
        budget,
    )


def event_sender(services: Services) -> EventSender:
    """Delivers run events as the settings say; Event Grid is published to with the app's
    identity (the user-assigned one in Azure)."""
    settings = services.settings
    client_id = settings.client_id

    def identity() -> Any:
        from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - only in Azure

        return DefaultAzureCredential(managed_identity_client_id=client_id) if client_id else DefaultAzureCredential()

    publisher = Publisher(settings.transport, timeout=settings.events.timeout, identity=identity)
    return EventSender(services.runs.records, settings.events, publisher)


def observe(services: Services, env: Mapping[str, str]) -> str:
    """Telemetry for this process, as ``env`` configures it (:func:`shared.telemetry.configure`:
    Application Insights, an OTLP collector, or nothing), with the queue's depth as a gauge.
    Returns the mode."""
    mode = telemetry.configure(env)
    if mode != "off":
        queue = services.queue.queue
        telemetry.watch_queue(
            services.settings.queue_name, lambda: int(queue.get_queue_properties().approximate_message_count or 0)
        )
    return mode
