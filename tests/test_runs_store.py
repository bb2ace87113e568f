"""Runs in Azurite's table: each job counted once, one end however workers race, a run repaired
from its jobs' records after a worker died between a job's end and the run's update, and the
end event delivered from the events queue to a real webhook receiver on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared.azure_storage.queue import JobQueue
from shared.azure_storage.records import JobError, JobRecord
from shared.azure_storage.runs import RunStore
from shared.azure_storage.store import StorageConfig, new_job_id
from shared.credentials import Secret
from shared.events.config import Destination, EventsConfig
from shared.events.publish import Publisher
from shared.http.policy import TransportOptions
from shared.runs.model import RunJob, Trigger
from shared.service.runevents import EventSender, serve_events
from shared.service.runs import PENDING_GRACE, Runs
from tests.harness.azurite import Azurite
from tests.harness.webhooks import WebhookReceiver
from tests.test_runs_model import SECRET

pytestmark = pytest.mark.process
DIGEST = "sha256:" + "d" * 64


@dataclasses.dataclass
class Stack:
    store: RunStore
    queue: JobQueue
    jobs: dict[str, JobRecord]
    runs: Runs


@pytest.fixture
def stack(azurite: Azurite) -> Stack:
    name = "r" + uuid.uuid4().hex[:12]
    config = StorageConfig(connection_string=azurite.connection_string, table_name=name, queue_name=f"{name}-events")
    store, queue = RunStore.from_config(config), JobQueue(config)
    store.ensure()
    queue.ensure()
    jobs: dict[str, JobRecord] = {}
    return Stack(store, queue, jobs, Runs(store, queue, jobs.get))


def members(n: int) -> list[RunJob]:
    return [RunJob(id=new_job_id(), source=f"src/app:{i}", targets=[f"reg/app:{i}"]) for i in range(n)]


def ended(state: Any, bytes_: int = 10) -> JobRecord:
    if state == "succeeded":
        return JobRecord(id="j", state=state, result={"bytes": bytes_, "digest": DIGEST})
    return JobRecord(id="j", state=state, error=JobError(code="NOT_FOUND", message="no such tag"))


def queued(stack: Stack) -> list[str]:
    found = []
    while (message := stack.queue.receive(30)) is not None:
        found.append(message.content)
        stack.queue.delete(message)
    return found


def test_each_job_is_counted_once_and_the_run_ends_once(stack: Stack) -> None:
    run_id, jobs = new_job_id(), members(3)
    stack.runs.open(run_id, "batch", Trigger(type="api"), jobs)
    for job, state in zip(jobs, ["succeeded", "failed", "succeeded"], strict=True):
        stack.runs.job_ended(run_id, job.id, ended(state))
        stack.runs.job_ended(run_id, job.id, ended(state))  # reported again: counted once
    run = stack.runs.look(run_id)
    assert run is not None and run.state == "partial"
    assert run.counts.model_dump() == {"total": 3, "succeeded": 2, "failed": 1, "cancelled": 0, "upToDate": 0}
    assert run.bytes == 20 and [t.target for t in run.targets] == ["reg/app:0", "reg/app:2"]
    assert run.event is not None and run.event.type == "ferry.run.partial" and run.event.state == "queued"
    assert queued(stack) == [f'{{"run": "{run_id}"}}']


def test_two_workers_ending_the_last_two_jobs_at_once_end_the_run_once(stack: Stack) -> None:
    for _ in range(5):
        run_id, jobs = new_job_id(), members(4)
        stack.runs.open(run_id, "batch", Trigger(type="api"), jobs)
        stack.runs.job_ended(run_id, jobs[0].id, ended("succeeded"))
        stack.runs.job_ended(run_id, jobs[1].id, ended("succeeded"))
        barrier, errors = threading.Barrier(2), list[Exception]()

        def end(
            job: RunJob,
            state: str,
            run_id: str = run_id,
            barrier: threading.Barrier = barrier,
            errors: list[Exception] = errors,
        ) -> None:
            barrier.wait()
            try:
                stack.runs.job_ended(run_id, job.id, ended(state))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=end, args=(jobs[2], "failed")),
            threading.Thread(target=end, args=(jobs[3], "succeeded")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert queued(stack) == [f'{{"run": "{run_id}"}}']  # one event, not two or none
        record = stack.store.get(run_id)
        assert record is not None and record.state == "partial" and record.counts.succeeded == 3


def test_a_job_ended_while_its_worker_died_is_counted_by_a_look_at_the_run(stack: Stack) -> None:
    run_id, jobs = new_job_id(), members(2)
    stack.runs.open(run_id, "batch", Trigger(type="api"), jobs)
    stack.runs.job_ended(run_id, jobs[0].id, ended("succeeded"))
    stack.jobs[jobs[1].id] = ended("failed")  # its record says failed; the run was never told
    assert stack.store.get(run_id).state == "running"  # type: ignore[union-attr]
    run = stack.runs.look(run_id)
    assert run is not None and run.state == "partial" and run.counts.failed == 1
    assert len(queued(stack)) == 1
    assert stack.runs.look(run_id) is not None and queued(stack) == []  # looked at again: nothing more


def test_an_event_left_pending_by_a_dead_worker_is_queued_again(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id, jobs = new_job_id(), members(1)
    stack.runs.open(run_id, "import", Trigger(type="api"), jobs)
    stack.store.count(run_id, RunJob(id=jobs[0].id, state="succeeded", bytes=1))  # the worker died here
    assert stack.store.get(run_id).event.state == "pending"  # type: ignore[union-attr]
    assert stack.runs.look(run_id) is not None and queued(stack) == []  # not yet: the worker may be slow
    monkeypatch.setattr("shared.service.runs.PENDING_GRACE", PENDING_GRACE * 0)
    stack.runs.look(run_id)
    assert len(queued(stack)) == 1
    stack.runs.job_ended(run_id, jobs[0].id, ended("succeeded"))  # the job's message comes back: no repeat
    assert queued(stack) == []


def test_an_open_run_ends_when_it_is_sealed_and_its_jobs_have_ended(stack: Stack) -> None:
    run_id = new_job_id()
    stack.runs.open(run_id, "mirror", Trigger(type="rule", rule="nightly", requestedBy="timer"), open_=True)
    first, second = members(2)
    stack.runs.add(run_id, first)
    stack.runs.job_ended(run_id, first.id, ended("succeeded"))
    assert stack.store.get(run_id).state == "running"  # type: ignore[union-attr]  # still open
    stack.runs.add(run_id, second)
    stack.runs.seal(run_id, up_to_date=7)
    assert stack.store.get(run_id).state == "running"  # type: ignore[union-attr]
    stack.runs.job_ended(run_id, second.id, ended("failed"))
    run = stack.runs.look(run_id)
    assert run is not None and run.state == "partial" and run.counts.upToDate == 7 and run.counts.total == 2
    assert len(queued(stack)) == 1
    with pytest.raises(ValueError, match="sealed"):
        stack.runs.add(run_id, members(1)[0])


def test_a_run_of_no_jobs_succeeds_when_sealed(stack: Stack) -> None:
    run_id = new_job_id()
    stack.runs.open(run_id, "mirror", Trigger(type="rule", rule="r"), open_=True)
    stack.runs.seal(run_id, up_to_date=3)
    assert stack.store.get(run_id).state == "succeeded"  # type: ignore[union-attr]
    assert len(queued(stack)) == 1


def test_a_large_run_is_written_in_transactions_and_listed(stack: Stack) -> None:
    big = new_job_id()
    stack.runs.open(big, "batch", Trigger(type="api"), members(250))
    small = new_job_id()
    stack.runs.open(small, "import", Trigger(type="api"), members(1))
    assert len(stack.store.jobs(big)) == 250
    items, _ = stack.store.list(None, None, 10, None)
    assert [i.id for i in items] == [small, big]  # newest first
    assert [i.id for i in stack.store.list("batch", "running", 10, None)[0]] == [big]
    assert stack.store.list("mirror", None, 10, None)[0] == []
    page, token = stack.store.list(None, None, 1, None)
    assert [i.id for i in page] == [small] and token is not None
    assert [i.id for i in stack.store.list(None, None, 1, token)[0]] == [big]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(SECRET).start()
    yield server
    server.stop()


def test_the_end_event_goes_from_the_queue_to_the_webhook_and_is_recorded(
    stack: Stack, receiver: WebhookReceiver
) -> None:
    run_id, jobs = new_job_id(), members(2)
    stack.runs.open(run_id, "batch", Trigger(type="api", requestedBy="alice@example.com"), jobs)
    for job, state in zip(jobs, ["succeeded", "failed"], strict=True):
        stack.runs.job_ended(run_id, job.id, ended(state))
    hooks = (
        Destination("ops", "webhook", receiver.url, Secret(SECRET)),
        Destination("quiet", "webhook", receiver.url, Secret(SECRET), frozenset({"succeeded"})),
    )
    config = EventsConfig(destinations=hooks, source="/ferry/test", backoff_base=0.01, backoff_cap=0.02)
    receiver.answer((500, 0.0))

    async def go() -> None:
        publisher = Publisher(TransportOptions(allow_loopback=True))
        stop = asyncio.Event()
        loop = asyncio.create_task(
            serve_events(stack.queue, EventSender(stack.store, config, publisher), stop, lease=30, poll=0.05)
        )
        await asyncio.to_thread(receiver.wait_for, 1)
        for _ in range(100):
            if (r := stack.store.get(run_id)) is not None and r.event is not None and r.event.state == "delivered":
                break
            await asyncio.sleep(0.05)
        stop.set()
        await loop
        await publisher.aclose()

    asyncio.run(go())
    [event] = receiver.delivered
    assert event["type"] == "ferry.run.partial" and event["subject"] == run_id and event["source"] == "/ferry/test"
    assert event["data"]["trigger"]["requestedBy"] == "alice@example.com"
    assert event["data"]["failed"][0]["code"] == "NOT_FOUND"
    run = stack.runs.look(run_id)
    assert run is not None and run.event is not None and run.event.state == "delivered"
    assert set(run.event.destinations) == {"ops"} and run.event.destinations["ops"].attempts == 2
    assert queued(stack) == []  # the message was consumed

    # A repeated message (a worker that queued it again) delivers nothing twice.
    stack.runs.queue_event(run_id)
    asyncio.run(
        EventSender(stack.store, config, Publisher(TransportOptions(allow_loopback=True))).handle(queued(stack)[0])
    )
    assert len(receiver.delivered) == 1
