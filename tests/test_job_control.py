"""Job control through the API and the worker, with real registries and Azurite: cancel (queued
and running), retry, and every attempt's history."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from functions.http import create_app
from shared.azure_storage.records import JobChange, JobRecord
from shared.service.wiring import Services
from tests.conftest import BASIC_USERS, FAST, Reg
from tests.harness.azurite import Azurite
from tests.harness.faultproxy import FaultProxy, Rule
from tests.harness.figures import record
from tests.harness.hostile import hostile_server
from tests.harness.images import make_image, make_multiarch, seed
from tests.harness.relay import Relay
from tests.harness.service import drain, environment, make_services, record_json
from tests.harness.uploads import trickling_source, upload_path, upload_session

KEY = base64.b64encode(b"c" * 32).decode()


def _submit(api: TestClient, source: str, image: str, target: Reg, **extra: Any) -> dict[str, Any]:
    doc = {"targetRegistry": target.host, "source": {"registryUri": source, "sourceImage": image}, **extra}
    answer = api.post("/api/imports", json=doc)
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


# -- cancel ------------------------------------------------------------------------------------


def test_a_cancelled_queued_job_never_runs(
    api: TestClient, svc: Services, open_reg: Reg, flaky_source: FaultProxy, target_reg: Reg, repo: str
) -> None:
    asyncio.run(seed(open_reg, repo, make_multiarch(seed="cancel-queued")))  # behind the proxy
    job = _submit(api, flaky_source.host, f"{repo}:v1", target_reg)
    answer = api.post(f"{job['location']}/cancel")
    assert answer.status_code == 200 and answer.json()["state"] == "cancelled", answer.text
    assert answer.json()["cancelRequestedAt"] and answer.json()["finishedAt"]
    drain(svc)
    status = api.get(job["location"]).json()
    assert status["state"] == "cancelled" and status["attemptCount"] == 0 and status["attempts"] == []
    assert flaky_source.seen == []  # the source was never asked for anything
    assert svc.queue.receive(1) is None and svc.queue.peek_poison() == []  # consumed, not poisoned
    assert httpx.get(f"http://{target_reg.host}/v2/{repo}/tags/list").status_code == 404
    again = api.post(f"{job['location']}/cancel")  # cancelling a cancelled job changes nothing
    assert again.status_code == 200 and again.json()["finishedAt"] == status["finishedAt"]


def test_cancelling_a_finished_or_unknown_job_answers_with_its_state(
    api: TestClient, svc: Services, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    asyncio.run(seed(open_reg, repo, make_multiarch(seed="cancel-done")))
    job = _submit(api, open_reg.host, f"{repo}:v1", target_reg)
    drain(svc)
    answer = api.post(f"{job['location']}/cancel")
    assert answer.status_code == 409, answer.text
    problem = answer.json()
    assert problem["code"] == "JOB_STATE" and problem["state"] == "succeeded"
    assert "already succeeded" in problem["message"]
    assert api.get(job["location"]).json()["cancelRequestedAt"] is None
    missing = api.post("/api/imports/0000000000000deadbeef/cancel")
    assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"
    assert api.post("/api/imports/not-an-id!/cancel").status_code == 404


def test_cancelling_a_running_200_mib_import_stops_it_within_seconds(
    api: TestClient, svc: Services, target_reg: Reg, repo: str
) -> None:
    """Stops within 5 s of the request; the upload session is gone from the target (the
    registry's own GET on the upload URL, and its storage, say so), no tag moved, the message
    consumed. A relay that streams stands between worker and target, so the registry sees the
    upload as it is sent (the old hard cancel leaves the session there: the test fails on it)."""
    relay = Relay(target_reg.proc.port).start()
    streaming = threading.Event()
    job = {"location": "/api/imports/none"}
    uploads = target_reg.proc.workdir / "data/docker/registry/v2/repositories" / repo / "_uploads"
    try:
        with hostile_server(trickling_source(streaming)) as (source, _):
            job = _submit_to(api, source, relay.host, repo)
            worker = threading.Thread(target=drain, args=(svc,))
            worker.start()
            upload = upload_path(relay, 20, target_reg)
            time.sleep(0.5)  # a few MiB into the layer
            assert upload_session(target_reg, upload) == "open" and len(list(uploads.iterdir())) == 1
            assert api.get(job["location"]).json()["state"] == "running"
            asked = time.monotonic()
            answer = api.post(f"{job['location']}/cancel")
            assert answer.status_code == 202 and answer.json()["state"] == "running", answer.text
            while api.get(job["location"]).json()["state"] == "running":
                assert time.monotonic() - asked < 5, "still running 5 s after the cancel"
                time.sleep(0.1)
            stopped = time.monotonic() - asked
            worker.join(10)
        status = api.get(job["location"]).json()
        assert status["state"] == "cancelled" and stopped < 5, status
        assert status["progress"]["bytesMoved"] > 0 and status["progress"]["blobsCopied"] < 2
        assert [a["outcome"] for a in status["attempts"]] == ["cancelled"]
        assert status["attempts"][0]["bytes"] == status["progress"]["bytesMoved"]
        assert upload_session(target_reg, upload) == "BLOB_UPLOAD_UNKNOWN"  # the session is gone
        assert not list(uploads.glob("*/data"))  # and its bytes with it (distribution keeps a hash state)
        assert any(m == "DELETE" and "/blobs/uploads/" in p for m, p in relay.requests)
        assert not any(m == "PUT" and "/manifests/" in p for m, p in relay.requests)  # no tag moved
        assert svc.queue.receive(1) is None and svc.queue.peek_poison() == []
        record(
            "cancel a running 200 MiB import",
            {"stopped after (s)": round(stopped, 2), "MiB sent before": round(status["progress"]["bytesMoved"] / 2**20, 1),
             "upload session": "deleted (BLOB_UPLOAD_UNKNOWN)", "tags moved": 0},
        )  # fmt: skip
    finally:
        api.post(f"{job['location']}/cancel")  # a failed assertion leaves no import running
        relay.stop()


def _submit_to(api: TestClient, source: str, target: str, repo: str) -> dict[str, Any]:
    doc = {"targetRegistry": target, "source": {"registryUri": source, "sourceImage": "big/app:v1"},
           "targetTags": [f"{repo}:v1"]}  # fmt: skip
    answer = api.post("/api/imports", json=doc)
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


# -- retry -------------------------------------------------------------------------------------


@pytest.fixture
def inline(azurite: Azurite) -> Services:
    return make_services(environment(azurite, FERRY_ALLOW_INLINE_CREDENTIALS="true", FERRY_CREDENTIAL_KEY=KEY))


def test_a_failed_job_retried_succeeds_once_the_fault_is_gone(
    inline: Services, basic_reg: Reg, target_reg: Reg, repo: str
) -> None:
    """The retry is a new job with the same request, ``retryOf`` naming the old one; its inline
    credentials were sealed again for it (the old job's seal does not open for the new id), and
    never read back."""
    api = TestClient(create_app(lambda: inline))
    password = BASIC_USERS["alice"]
    source = {"registryUri": basic_reg.host, "sourceImage": f"{repo}:v1",
              "credentials": {"username": "alice", "password": password}}  # fmt: skip
    doc = {"targetRegistry": target_reg.host, "source": source, "targetTags": [f"{repo}:promoted"]}
    first = api.post("/api/imports", json=doc).json()
    drain(inline)  # nothing at the source yet
    failed = api.get(first["location"]).json()
    assert failed["state"] == "failed" and failed["error"]["code"] == "NOT_FOUND", failed
    index = make_multiarch(seed="retry")
    asyncio.run(seed(basic_reg, repo, index))  # the fault is gone
    answer = api.post(f"{first['location']}/retry")
    assert answer.status_code == 202, answer.text
    retry = answer.json()
    assert answer.headers["Location"] == retry["location"] != first["location"] and retry["created"]
    drain(inline)
    done = api.get(retry["location"]).json()
    assert done["state"] == "succeeded" and done["retryOf"] == first["id"], done
    assert done["result"]["digest"] == str(index.digest) and done["targets"] == failed["targets"]
    assert api.get(first["location"]).json() == failed  # the old job is left as it was
    old, new = (json.loads(inline.statuses.message(j["id"]) or "{}") for j in (first, retry))
    assert old["sealed"] and new["sealed"] and old["sealed"] != new["sealed"]
    stored = json.dumps([record_json(inline, j["id"]) for j in (first, retry)]) + answer.text + json.dumps(done)
    assert password not in stored and "credentials" not in json.dumps(new["request"])


def test_only_failed_or_cancelled_jobs_are_retried(
    api: TestClient, svc: Services, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    asyncio.run(seed(open_reg, repo, make_multiarch(seed="retry-states")))
    queued = _submit(api, open_reg.host, f"{repo}:v1", target_reg)
    answer = api.post(f"{queued['location']}/retry")
    assert answer.status_code == 409 and answer.json()["state"] == "queued", answer.text
    api.post(f"{queued['location']}/cancel")
    again = api.post(f"{queued['location']}/retry", headers={"Idempotency-Key": "retry-once"})
    assert again.status_code == 202 and again.json()["created"], again.text
    twice = api.post(f"{queued['location']}/retry", headers={"Idempotency-Key": "retry-once"})
    assert twice.status_code == 202 and twice.json()["id"] == again.json()["id"] and not twice.json()["created"]
    drain(svc)
    assert api.get(again.json()["location"]).json()["state"] == "succeeded"
    done = api.post(f"{again.json()['location']}/retry")
    assert done.status_code == 409 and done.json()["state"] == "succeeded"
    assert api.post("/api/imports/0000000000000deadbeef/retry").status_code == 404


# -- history -----------------------------------------------------------------------------------


def test_a_job_failed_twice_then_succeeded_shows_three_attempts(
    api: TestClient, svc: Services, open_reg: Reg, flaky_source: FaultProxy, target_reg: Reg, repo: str
) -> None:
    asyncio.run(seed(open_reg, repo, make_multiarch(seed="history")))
    busy = (503, {"Content-Type": "application/json"}, b'{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}')
    flaky_source.add(Rule("HEAD", f"/{repo}/manifests/v1", times=2 * FAST.max_attempts, respond=busy))
    job = _submit(api, flaky_source.host, f"{repo}:v1", target_reg)
    drain(svc)
    status = api.get(job["location"]).json()
    assert status["state"] == "succeeded" and status["attemptCount"] == 3, status
    attempts = status["attempts"]
    assert [(a["number"], a["outcome"], a["code"]) for a in attempts] == [
        (1, "failed", "UNAVAILABLE"), (2, "failed", "UNAVAILABLE"), (3, "succeeded", None),
    ]  # fmt: skip
    for a in attempts:
        assert a["startedAt"] <= a["finishedAt"] and a["worker"] == {"host": socket.gethostname(), "pid": os.getpid()}
    assert all("503" in a["message"] for a in attempts[:2]) and attempts[2]["message"] is None
    assert attempts[2]["bytes"] == status["result"]["bytes"] > 0 and attempts[0]["bytes"] == 0
    listed = api.get("/api/imports").json()["items"]
    mine = next(i for i in listed if i["id"] == job["id"])
    assert mine["attemptCount"] == 3 and mine["attempts"] == attempts[-1:]  # the list: the last one only


def test_an_attempt_whose_worker_stopped_is_recorded_abandoned(
    api: TestClient, svc: Services, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    """A worker shut down mid-job (the host cancels it) records nothing; the next delivery finds
    the attempt still running and closes it as abandoned. A shutdown is not a cancel."""
    image = make_image((2_000_000,), seed="abandoned")
    asyncio.run(seed(open_reg, repo, image))
    job = _submit(api, open_reg.host, f"{repo}:v1", target_reg)
    message = svc.queue.receive(10)
    assert message is not None

    async def shut_down_mid_job() -> None:
        task = asyncio.create_task(svc.worker.handle(message.content, 1))
        while (record_json(svc, job["id"]) or {}).get("state") != "running":
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(shut_down_mid_job())
    assert api.get(job["location"]).json()["state"] == "running"
    asyncio.run(svc.worker.handle(message.content, 2))
    status = api.get(job["location"]).json()
    assert status["state"] == "succeeded"
    assert [(a["number"], a["outcome"]) for a in status["attempts"]] == [(1, "abandoned"), (2, "succeeded")]
    assert "stopped before the attempt ended" in status["attempts"][0]["message"]


def test_a_cancel_and_a_start_at_once_leave_one_or_the_other(svc: Services, open_reg: Reg, repo: str) -> None:
    """The record changes under its ETag: a write between a read and its update makes the
    update read again, so neither a cancel nor a start is lost."""
    statuses = svc.statuses
    job_id = "0000000000001cafe0001"
    statuses.insert(JobRecord(id=job_id, state="queued", createdAt=datetime(2026, 12, 2, tzinfo=UTC)))
    calls = []

    def start(current: JobRecord) -> JobChange | None:
        calls.append(current.state)
        if len(calls) == 1:  # the API cancels it between this read and the write below
            statuses.update(job_id, JobChange(state="cancelled"))
        return None if current.state == "cancelled" else JobChange(state="running")

    assert statuses.transition(job_id, start).state == "cancelled"  # type: ignore[union-attr]
    assert calls == ["queued", "cancelled"]
    assert statuses.get(job_id).state == "cancelled"  # type: ignore[union-attr]
