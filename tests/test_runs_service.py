"""Runs through the API, the worker and the triggers, with Azurite, real registries and a webhook
receiver on loopback that checks Standard Webhooks signatures: a mirror pass where some tags fail
ends ``partial`` with one event; two workers ending a run's last two jobs at once give one event;
a worker that dies after a job ends but before the run hears of it still gives the right outcome
and one event; batches, cancel and retry of a run, and who asked."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.http import create_app
from shared.automation.calls import run_mirrors
from shared.service.runs import Runs
from shared.service.wiring import Services, event_sender
from tests.conftest import Reg
from tests.harness.azurite import Azurite
from tests.harness.faultproxy import FaultProxy, Rule
from tests.harness.images import make_image, push_image, seed
from tests.harness.service import drain, environment, make_services, record_json
from tests.harness.webhooks import WebhookReceiver
from tests.test_runs_model import SECRET
from tests.test_triggers import mirror_rules

pytestmark = pytest.mark.process


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(SECRET).start()
    yield server
    server.stop()


def hooked(azurite: Azurite, receiver: WebhookReceiver, **extra: str) -> Services:
    return make_services(
        environment(azurite, FERRY_WEBHOOK_OPS_URL=receiver.url, FERRY_WEBHOOK_OPS_SECRET=SECRET, **extra)
    )


def deliver_all(svc: Services) -> int:
    """Deliver every event waiting on the events queue, as a worker's event loop does."""

    async def go() -> int:
        sender, done = event_sender(svc), 0
        try:
            while (message := await asyncio.to_thread(svc.events.receive, 30)) is not None:
                await sender.handle(message.content)
                await asyncio.to_thread(svc.events.delete, message)
                done += 1
        finally:
            await sender.publisher.aclose()
        return done

    return asyncio.run(go())


def delivered(svc: Services, receiver: WebhookReceiver, count: int) -> list[dict[str, Any]]:
    """Every event delivered so far (by a worker's event loop during a drain, or now), after
    checking there are exactly ``count``."""
    deliver_all(svc)
    found = receiver.wait_for(count, timeout=10)
    time.sleep(0.2)  # a second delivery would have landed by now
    assert len(receiver.delivered) == count, [e["type"] for e in receiver.delivered]
    return found


def item(source: Reg | FaultProxy, image: str, target: Reg, tag: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"targetRegistry": target.host, "source": {"registryUri": source.host, "sourceImage": image}}
    if tag:
        doc["targetTags"] = [tag]
    return doc


def test_a_mirror_pass_where_some_tags_fail_is_partial_with_one_event(
    azurite: Azurite, tmp_path: Path, open_reg: Reg, target_reg: Reg, repo: str,
    flaky_source: FaultProxy, receiver: WebhookReceiver,
) -> None:  # fmt: skip
    async def tags() -> dict[str, str]:
        async with open_reg.client() as client:
            return {
                t: str(await push_image(client, repo, make_image((300,), seed=f"{repo}{t}"), t))
                for t in ("1.0", "1.1", "1.2")
            }

    digests = asyncio.run(tags())
    # The job's GET of 1.2's manifest is answered 404: that tag's import fails for good.
    flaky_source.add(Rule("GET", f"/manifests/{digests['1.2']}", times=50, respond=(404, {}, b"")))
    path = mirror_rules(tmp_path, f"{flaky_source.host}/{repo}", target_reg, 'semver: ">=1"')
    svc = hooked(azurite, receiver, FERRY_RULES_FILE=str(path))
    report = asyncio.run(run_mirrors(svc))[0]
    assert sorted(report["enqueued"]) == ["1.0", "1.1", "1.2"]
    drain(svc)
    [event] = delivered(svc, receiver, 1)
    assert event["type"] == "ferry.run.partial"
    data = event["data"]
    assert data["kind"] == "mirror" and data["trigger"] == {
        "type": "rule",
        "rule": "upstream",
        "eventId": None,
        "requestedBy": "timer",
    }
    assert data["counts"] == {"total": 3, "succeeded": 2, "failed": 1, "cancelled": 0, "upToDate": 0}
    assert sorted(t["target"].rsplit(":", 1)[1] for t in data["targets"]) == ["1.0", "1.1"]
    assert [f["code"] for f in data["failed"]] == ["NOT_FOUND"] and data["failed"][0]["source"].endswith(
        ":1.2@" + digests["1.2"]
    )
    api = TestClient(create_app(lambda: svc))
    run = api.get(f"/api/runs/{event['subject']}").json()
    assert run["state"] == "partial" and run["event"]["state"] == "delivered"
    assert run["event"]["destinations"]["ops"]["state"] == "delivered"
    job = api.get(f"/api/imports/{report['enqueued']['1.0']}").json()
    assert job["run"] == event["subject"] and job["requestedBy"] == {"kind": "mirror", "name": "timer"}
    # The next pass finds two tags up to date and retries nothing permanent: no run, no event.
    again = asyncio.run(run_mirrors(svc))[0]
    assert again["enqueued"] == {}
    delivered(svc, receiver, 1)


class _Together(Runs):
    """Counts a job's end only when the other worker is at the same point (a barrier)."""

    barrier = threading.Barrier(2, timeout=30)

    def job_ended(self, run_id: str, job_id: str, record: Any) -> None:
        self.barrier.wait()
        super().job_ended(run_id, job_id, record)


def test_two_workers_ending_a_runs_last_two_jobs_at_once_give_one_event(
    azurite: Azurite, open_reg: Reg, target_reg: Reg, repo: str, receiver: WebhookReceiver
) -> None:
    asyncio.run(seed(open_reg, repo, make_image((100,), seed=repo)))
    env = environment(azurite, FERRY_WEBHOOK_OPS_URL=receiver.url, FERRY_WEBHOOK_OPS_SECRET=SECRET)
    first, second = make_services(env), make_services(env)  # two workers: their own clients
    for svc in (first, second):
        svc.worker.runs = _Together(svc.runs.records, svc.events, svc.statuses.get)
    api = TestClient(create_app(lambda: first))
    body = {
        "imports": [
            item(open_reg, f"{repo}:v1", target_reg, f"{repo}:a"),
            item(open_reg, f"{repo}:v1", target_reg, f"{repo}:b"),
        ]
    }
    answer = api.post("/api/runs", json=body)
    assert answer.status_code == 202 and answer.headers["Location"] == f"/api/runs/{answer.json()['id']}"
    messages = [m for m in (first.queue.receive(30), first.queue.receive(30)) if m is not None]

    async def both() -> None:
        await asyncio.gather(*(s.worker.handle(m.content, 1) for s, m in zip((first, second), messages, strict=True)))

    asyncio.run(both())
    [event] = delivered(first, receiver, 1)
    assert event["type"] == "ferry.run.succeeded" and event["data"]["counts"]["succeeded"] == 2
    delivered(second, receiver, 1)


class Died(BaseException):
    """The worker's process ends here (as a kill would): nothing after runs, nothing is caught."""


class _DiesOnce(Runs):
    died = False

    def job_ended(self, run_id: str, job_id: str, record: Any) -> None:
        if not _DiesOnce.died:
            _DiesOnce.died = True
            raise Died
        super().job_ended(run_id, job_id, record)


def test_a_worker_dying_between_a_jobs_end_and_the_runs_update_still_gives_one_event(
    azurite: Azurite, open_reg: Reg, target_reg: Reg, repo: str, receiver: WebhookReceiver
) -> None:
    asyncio.run(seed(open_reg, repo, make_image((100,), seed=repo)))
    svc = hooked(azurite, receiver, FERRY_LEASE_SECONDS="5")
    svc.worker.runs = _DiesOnce(svc.runs.records, svc.events, svc.statuses.get)
    api = TestClient(create_app(lambda: svc))
    run_id = api.post("/api/imports", json=item(open_reg, f"{repo}:v1", target_reg, f"{repo}:c")).json()["id"]
    job_id = run_id
    run_id = api.get(f"/api/imports/{job_id}").json()["run"]
    with pytest.raises(Died):
        drain(svc)
    assert record_json(svc, job_id)["state"] == "succeeded"  # type: ignore[index]  # the job ended...
    assert svc.runs.records.get(run_id).state == "running"  # type: ignore[union-attr]  # ...the run never heard
    # Its message comes back after the lease; the next worker finds the job finished and counts it.
    time.sleep(5.5)
    drain(svc)
    assert svc.runs.records.get(run_id).state == "succeeded"  # type: ignore[union-attr]
    assert [e["subject"] for e in delivered(svc, receiver, 1)] == [run_id]
    api.get(f"/api/runs/{run_id}")  # another look repairs nothing more
    delivered(svc, receiver, 1)


def test_a_look_at_a_run_repairs_what_a_dead_worker_left(
    azurite: Azurite, open_reg: Reg, target_reg: Reg, repo: str, receiver: WebhookReceiver
) -> None:
    """The message is gone (the host moved on) but the job's record says it ended: GET counts it."""
    asyncio.run(seed(open_reg, repo, make_image((100,), seed=repo)))
    svc = hooked(azurite, receiver)
    svc.worker.runs = None  # a worker that never tells the run
    api = TestClient(create_app(lambda: svc))
    job_id = api.post("/api/imports", json=item(open_reg, f"{repo}:v1", target_reg, f"{repo}:d")).json()["id"]
    drain(svc)
    run_id = api.get(f"/api/imports/{job_id}").json()["run"]
    assert svc.runs.records.get(run_id).state == "running"  # type: ignore[union-attr]
    run = api.get(f"/api/runs/{run_id}").json()
    assert run["state"] == "succeeded" and run["counts"]["succeeded"] == 1
    assert run["targets"][0]["target"] == f"{target_reg.host}/{repo}:d" and run["targets"][0]["digest"].startswith(
        "sha256:"
    )
    delivered(svc, receiver, 1)


def test_a_batch_is_one_run_and_a_bad_item_is_refused_with_its_index(
    azurite: Azurite, open_reg: Reg, target_reg: Reg, repo: str, receiver: WebhookReceiver
) -> None:
    asyncio.run(seed(open_reg, repo, make_image((100,), seed=repo)))
    svc = hooked(azurite, receiver)
    api = TestClient(create_app(lambda: svc))
    good = item(open_reg, f"{repo}:v1", target_reg, f"{repo}:e")
    bad = item(open_reg, f"{repo}:v1", target_reg)
    bad["source"]["registryUri"] = "169.254.169.254"
    refused = api.post("/api/runs", json={"imports": [good, good, bad]})
    assert refused.status_code == 400 and refused.json()["fields"][0]["field"] == "imports[2].source.registryUri"
    schema = api.post("/api/runs", json={"imports": [good, {"targetRegistry": target_reg.host}]})
    assert schema.status_code == 400 and schema.json()["fields"][0]["field"] == "imports[1].source"
    assert api.post("/api/runs", json={"imports": []}).status_code == 400
    assert svc.queue.receive(1) is None  # nothing enqueued
    headers = {"Idempotency-Key": "batch-1", "x-functions-key": "a-function-key-for-tests"}
    first = api.post("/api/runs", json={"imports": [good, good]}, headers=headers).json()
    again = api.post("/api/runs", json={"imports": [good, good]}, headers=headers).json()
    assert again["id"] == first["id"] and again["created"] is False
    assert api.post("/api/runs", json={"imports": [good]}, headers=headers).status_code == 422
    drain(svc)
    run = api.get(f"/api/runs/{first['id']}").json()
    assert run["kind"] == "batch" and run["state"] == "succeeded" and run["counts"]["total"] == 2
    assert run["trigger"]["requestedBy"].startswith("function key sha256:")
    assert "a-function-key-for-tests" not in str(run)
    listed = api.get("/api/runs", params={"kind": "batch", "state": "succeeded"}).json()["items"]
    assert [r["id"] for r in listed] == [first["id"]] and listed[0]["jobs"] == []
    assert api.get("/api/runs", params={"state": "nope"}).status_code == 400
    assert api.get("/api/runs/nope").status_code == 404


def test_a_run_is_cancelled_and_its_failures_retried(
    azurite: Azurite, open_reg: Reg, target_reg: Reg, repo: str, receiver: WebhookReceiver
) -> None:
    asyncio.run(seed(open_reg, repo, make_image((100,), seed=repo)))
    svc = hooked(azurite, receiver)
    api = TestClient(create_app(lambda: svc))
    body = {"imports": [item(open_reg, f"{repo}:v1", target_reg, f"{repo}:f{i}") for i in range(3)]}
    run_id = api.post("/api/runs", json=body).json()["id"]
    cancelled = api.post(f"/api/runs/{run_id}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["counts"]["cancelled"] == 3
    assert api.post(f"/api/runs/{run_id}/cancel").status_code == 409
    drain(svc)  # the cancelled jobs' messages are consumed unrun
    assert delivered(svc, receiver, 1)[0]["type"] == "ferry.run.cancelled"
    retried = api.post(f"/api/runs/{run_id}/retry")
    assert retried.status_code == 202
    new_id = retried.json()["id"]
    assert [j["retryOf"] for j in retried.json()["jobs"]] == [
        j["id"] for j in api.get(f"/api/runs/{run_id}").json()["jobs"]
    ]
    drain(svc)
    run = api.get(f"/api/runs/{new_id}").json()
    assert run["state"] == "succeeded" and run["retryOf"] == run_id and run["kind"] == "retry"
    assert api.post(f"/api/runs/{new_id}/retry").status_code == 409  # nothing failed
    assert [e["type"] for e in delivered(svc, receiver, 2)] == [
        "ferry.run.cancelled",
        "ferry.run.succeeded",
    ]
