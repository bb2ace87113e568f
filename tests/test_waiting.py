"""A job that meets a spent pull budget waits instead of failing: recorded ``queued`` with
``waiting``, its delivery an attempt with outcome ``waiting``, its message back on the queue
hidden until the window frees — never counted toward the poison queue — and it resumes by itself.
The source is the fake Docker Hub (tests/harness/fakehub.py) in front of a real registry."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from functions.http import create_app
from shared.service.models import ImportJob
from tests.conftest import Reg
from tests.harness.azurite import Azurite
from tests.harness.fakehub import FakeHub
from tests.harness.images import make_image, push_image
from tests.harness.service import drain, environment, make_services


@pytest.fixture
def hub(open_reg: Reg) -> Iterator[FakeHub]:
    proxy = FakeHub("127.0.0.1", open_reg.proc.port, limit=2, window=3.0).start()
    yield proxy
    proxy.stop()


def test_a_job_waits_for_the_window_and_never_goes_to_poison(
    azurite: Azurite, open_reg: Reg, target_reg: Reg, hub: FakeHub
) -> None:
    repo = f"test/{uuid.uuid4().hex[:8]}"

    async def seed() -> None:
        async with open_reg.client() as client:
            await push_image(client, repo, make_image((10,), seed=repo), "v1")

    asyncio.run(seed())
    # One delivery before poison: a wait that counted as one would send the jobs there.
    svc = make_services(environment(azurite, FERRY_MAX_DEQUEUE_COUNT="1", FERRY_RATELIMIT_FLOOR="0"))
    api = TestClient(create_app(lambda: svc))
    doc = {"targetRegistry": target_reg.host, "source": {"registryUri": hub.host, "sourceImage": f"{repo}:v1"}}
    jobs = [api.post("/api/imports", json={**doc, "targetTags": [f"{repo}:t{n}"]}).json() for n in range(4)]
    drain(svc)  # two pull; the others wait, their messages hidden until the window frees
    statuses = [api.get(j["location"]).json() for j in jobs]
    waiting = [s for s in statuses if s["state"] == "queued"]
    assert sorted(s["state"] for s in statuses) == ["queued", "queued", "succeeded", "succeeded"]
    for status in waiting:
        assert status["waiting"]["reason"] == "rate limit" and status["waiting"]["until"]
        last = status["attempts"][-1]
        assert last["outcome"] == "waiting" and last["code"] == "RATE_LIMIT_WAIT"
        assert last["message"].startswith("waiting: rate limit (until ")
    assert "waiting" not in next(s for s in statuses if s["state"] == "succeeded")
    assert svc.queue.receive(1) is None  # hidden, not lost
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(api.get(j["location"]).json()["state"] != "succeeded" for j in jobs):
        time.sleep(0.5)
        drain(svc)
    finals = [api.get(j["location"]).json() for j in jobs]
    assert [s["state"] for s in finals] == ["succeeded"] * 4
    assert not svc.queue.peek_poison()
    assert sum(hub.pulls.values()) == 4 and not hub.refused
    waited = [s for s in finals if len(s["attempts"]) > 1]
    assert waited and all(a["outcome"] == "waiting" for s in waited for a in s["attempts"][:-1])
    assert all("waiting" not in s for s in finals)
    numbers = [a["number"] for a in waited[0]["attempts"]]
    assert numbers == list(range(1, len(numbers) + 1))  # attempt numbers go on across the waits


def test_the_message_put_back_carries_the_attempts_so_far() -> None:
    request = {"targetRegistry": "x.io", "targetTags": ["a:1"], "source": {"registryUri": "y.io", "sourceImage": "a:1"}}
    job = ImportJob.model_validate_json(json.dumps({"id": "j", "request": request}))
    assert (job.attemptsBefore, job.failuresBefore) == (0, 0)  # a message from before #26 reads as ever
