"""The service end to end: HTTP API -> Azure Storage queue (Azurite) -> worker -> real registries
-> status table. Triggers are called directly with the Functions library's own types."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage as QueueMessageWithMeta
from fastapi.testclient import TestClient

from functions.http import create_app
from shared import environment as env_readers
from shared.errors import ConfigurationError
from shared.service.wiring import Services
from shared.settings import Settings
from tests.conftest import BASIC_USERS, FAST, Reg
from tests.harness.azurite import Azurite
from tests.harness.faultproxy import FaultProxy, Rule
from tests.harness.images import make_multiarch, seed
from tests.harness.service import drain, environment, make_services, record_json

ROOT = Path(__file__).resolve().parent.parent
PLANTED = "PLANTED-svc-s3cret-91ab"
KEY = base64.b64encode(b"k" * 32).decode()


def body(source: Reg, repo: str, target: Reg | str, **extra: Any) -> dict[str, Any]:
    host = target if isinstance(target, str) else target.host
    doc: dict[str, Any] = {"targetRegistry": host, "source": {"registryUri": source.host, "sourceImage": f"{repo}:v1"}}
    doc.update(extra)
    return doc


# -- validation --------------------------------------------------------------------------------

GOOD = {"targetRegistry": "prodacr", "source": {"registryUri": "docker.io", "sourceImage": "library/nginx:1.27"}}


def _with(path: str, value: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node[p]
    if value is _DROP:
        node.pop(last)
    else:
        node[last] = value
    return doc


_DROP = object()
INVALID: list[tuple[Any, str, str]] = [
    (_with("targetRegistry", "abc"), "targetRegistry", "5-50 letters and digits"),
    (_with("targetRegistry", "x.io/path"), "targetRegistry", "without a path"),
    (_with("targetRegistry", _DROP), "targetRegistry", "Field required"),
    (_with("source", _DROP), "source", "Field required"),
    (_with("source.sourceImage", _DROP), "source.sourceImage", "Field required"),
    (_with("source.sourceImage", ""), "source.sourceImage", "at least 1 character"),
    (_with("source.sourceImage", "Library/Nginx"), "source.sourceImage", "lowercase"),
    (_with("source.sourceImage", "nginx@sha256:abc"), "source.sourceImage", "64 lowercase hex"),
    (_with("source.sourceImage", "nginx:" + "t" * 129), "source.sourceImage", "over the limit of 128"),
    (_with("source.registryUri", "ftp://x.io"), "source.registryUri", "unsupported scheme"),
    (_with("source.resourceId", "/subscriptions/x"), "source.resourceId", "must be /subscriptions/"),
    (_with("source.credential", "Bad Name!"), "source.credential", "lowercase letters"),
    (_with("source.credential", "missing"), "source.credential", "'missing' is not configured"),
    (_with("source.credentials", {"username": "u", "password": "p"}), "source.credentials", "named credential"),
    (_with("source.credentials", {"username": "u"}), "source.credentials.password", "Field required"),
    (_with("source.extra", 1), "source.extra", "unknown field; known fields here: registryUri,"),
    (_with("unknown", True), "unknown", "unknown field; known fields here: targetRegistry,"),
    (_with("targetTags", ["Bad:1"]), "targetTags[0]", "lowercase"),
    (_with("targetTags", ["app@sha256:" + "a" * 64]), "targetTags[0]", "takes a tag, not a digest"),
    (_with("targetTags", "app:1"), "targetTags", "valid list"),
    (_with("targetTags", [f"a{i}:1" for i in range(51)]), "targetTags", "at most 50 items"),
    (_with("untaggedTargetRepositories", ["a//b"]), "untaggedTargetRepositories[0]", "empty path component"),
    (_with("mode", "Sometimes"), "mode", "'NoForce' or 'Force'"),
    (_with("platforms", ["linux"]), "platforms[0]", "os/arch"),
    (_with("includeReferrers", "maybe"), "includeReferrers", "true or false"),
    (
        _with(
            "source.resourceId",
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg"
            "/providers/Microsoft.ContainerRegistry/registries/devacr",
        ),
        "source",
        "registryUri or resourceId, not both",
    ),
    ("not json at all", "body", "JSON"),
    ([1, 2], "body", "expected a JSON object"),
]


@pytest.mark.parametrize(("doc", "field", "reason"), INVALID)
def test_invalid_requests_name_the_field(api: TestClient, doc: Any, field: str, reason: str) -> None:
    kwargs = (
        {"content": doc, "headers": {"Content-Type": "application/json"}} if isinstance(doc, str) else {"json": doc}
    )
    response = api.post("/api/imports", **kwargs)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["code"] in ("BAD_REQUEST",)
    assert any(f["field"] == field and reason in f["message"] for f in problem["fields"]), problem
    assert "Traceback" not in response.text


def test_every_bad_field_is_reported(api: TestClient) -> None:
    doc = {"targetRegistry": "abc", "source": {"sourceImage": "Bad"}, "mode": "x", "extra": 1}
    fields = {f["field"] for f in api.post("/api/imports", json=doc).json()["fields"]}
    assert {"targetRegistry", "source.sourceImage", "mode", "extra"} <= fields


# -- the whole path ----------------------------------------------------------------------------


def test_http_queue_worker_registries_status(
    api: TestClient, svc: Services, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    index = make_multiarch(seed="service")
    asyncio.run(seed(open_reg, repo, index))
    response = api.post("/api/imports", json=body(open_reg, repo, target_reg, targetTags=[f"{repo}:promoted"]))
    assert response.status_code == 202
    job = response.json()
    assert response.headers["Location"] == f"/api/imports/{job['id']}" == job["location"]
    assert response.headers["Retry-After"] == "5"
    queued = api.get(job["location"]).json()
    assert queued["state"] == "queued" and queued["targets"] == [f"{target_reg.host}/{repo}:promoted"]
    drain(svc)
    done = api.get(job["location"]).json()
    assert done["state"] == "succeeded" and done["attemptCount"] == 1, done
    assert done["result"]["digest"] == str(index.digest)
    assert done["result"]["blobs"]["copied"] == len(index.blobs)
    assert done["startedAt"] and done["finishedAt"]
    assert svc.queue.receive(1) is None  # consumed
    listed = api.get("/api/imports", params={"state": "succeeded"}).json()
    assert [i["id"] for i in listed["items"]] == [job["id"]]


def test_named_credential_source(api: TestClient, svc: Services, basic_reg: Reg, target_reg: Reg, repo: str) -> None:
    asyncio.run(seed(basic_reg, repo, make_multiarch(seed="named")))
    source = {"registryUri": basic_reg.host, "sourceImage": f"{repo}:v1", "credential": "dev"}
    job = api.post("/api/imports", json={"targetRegistry": target_reg.host, "source": source}).json()
    drain(svc)
    assert api.get(job["location"]).json()["state"] == "succeeded"


def test_permanent_failure_is_recorded_and_consumed(
    api: TestClient, svc: Services, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    job = api.post("/api/imports", json=body(open_reg, repo, target_reg)).json()  # nothing at the source
    drain(svc)
    status = api.get(job["location"]).json()
    assert status["state"] == "failed" and status["attemptCount"] == 1
    assert status["error"]["code"] == "NOT_FOUND" and "not found" in status["error"]["message"]
    assert "404" in status["error"]["detail"]
    assert svc.queue.receive(1) is None and svc.queue.peek_poison() == []


def test_retryable_failure_succeeds_on_second_delivery(
    api: TestClient, svc: Services, open_reg: Reg, flaky_source: FaultProxy, target_reg: Reg, repo: str
) -> None:
    asyncio.run(seed(open_reg, repo, make_multiarch(seed="flaky")))
    busy = (503, {"Content-Type": "application/json"}, b'{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}')
    flaky_source.add(Rule("HEAD", f"/{repo}/manifests/v1", times=FAST.max_attempts, respond=busy))
    doc = {"targetRegistry": target_reg.host, "source": {"registryUri": flaky_source.host, "sourceImage": f"{repo}:v1"}}
    job = api.post("/api/imports", json=doc).json()
    drain(svc)
    status = api.get(job["location"]).json()
    assert status["state"] == "succeeded" and status["attemptCount"] == 2, status
    assert status["error"] is None  # the first attempt's error is cleared
    assert status["progress"]["blobsCopied"] == status["result"]["blobs"]["copied"]


def test_poison_after_five_deliveries(
    azurite: Azurite, open_reg: Reg, flaky_source: FaultProxy, target_reg: Reg, repo: str
) -> None:
    svc = make_services(environment(azurite))
    svc.settings = svc.settings.model_copy(update={"transport": FAST.__class__(max_attempts=1, allow_loopback=True)})
    svc.worker.settings = svc.settings
    api = TestClient(create_app(lambda: svc))
    flaky_source.add(Rule("HEAD", "/manifests/", times=100, respond=(503, {}, b"")))
    doc = {"targetRegistry": target_reg.host, "source": {"registryUri": flaky_source.host, "sourceImage": f"{repo}:v1"}}
    job = api.post("/api/imports", json=doc).json()
    drain(svc)
    status = api.get(job["location"]).json()
    assert status["state"] == "failed" and status["attemptCount"] == 5
    assert status["error"]["code"] == "UNAVAILABLE" and "503" in status["error"]["message"]
    poisoned = svc.queue.peek_poison()
    assert len(poisoned) == 1 and json.loads(poisoned[0])["id"] == job["id"]
    assert len(flaky_source.requests("HEAD")) == 5


def test_redelivered_finished_job_changes_nothing(
    api: TestClient, svc: Services, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    asyncio.run(seed(open_reg, repo, make_multiarch(seed="redeliver")))
    job = api.post("/api/imports", json=body(open_reg, repo, target_reg)).json()
    message = svc.queue.receive(10)
    assert message is not None
    asyncio.run(svc.worker.handle(message.content, 1))
    first = api.get(job["location"]).json()
    asyncio.run(svc.worker.handle(message.content, 2))  # the host delivers it again (e.g. after a crash)
    again = api.get(job["location"]).json()
    assert first["state"] == again["state"] == "succeeded"
    assert (
        again["attemptCount"] == 1 and again["finishedAt"] == first["finishedAt"] and again["result"] == first["result"]
    )


def test_idempotency_key_returns_the_first_job(
    api: TestClient, svc: Services, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    headers = {"Idempotency-Key": f"pipeline-run-{repo}"}
    first = api.post("/api/imports", json=body(open_reg, repo, target_reg), headers=headers)
    second = api.post("/api/imports", json=body(open_reg, repo, target_reg), headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"] and second.json()["created"] is False
    assert svc.queue.receive(1) is not None and svc.queue.receive(1) is None  # one message only
    other = api.post("/api/imports", json=body(open_reg, repo, target_reg), headers={"Idempotency-Key": "another"})
    assert other.json()["id"] != first.json()["id"]


def test_unknown_job_and_listing(api: TestClient, svc: Services, open_reg: Reg, target_reg: Reg, repo: str) -> None:
    assert api.get("/api/imports/0000000000000deadbeef").status_code == 404
    assert api.get("/api/imports/../../etc").status_code == 404
    ids = [api.post("/api/imports", json=body(open_reg, f"{repo}{i}", target_reg)).json()["id"] for i in range(3)]
    page = api.get("/api/imports", params={"limit": 2}).json()
    assert [i["id"] for i in page["items"]] == ids[::-1][:2] and page["next"]
    rest = api.get("/api/imports", params={"limit": 2, "continuation": page["next"]}).json()
    assert [i["id"] for i in rest["items"]] == [ids[0]]
    assert api.get("/api/imports", params={"state": "bogus"}).status_code == 400


def test_health(api: TestClient) -> None:
    response = api.get("/api/health")
    assert response.status_code == 200 and response.json() == {"status": "ok", "queue": "ok", "table": "ok"}


def test_openapi_document_is_checked_in(api: TestClient) -> None:
    """`make openapi` writes openapi.json; this fails when the API and the file differ."""
    served = api.get("/api/openapi.json").json()
    assert served == json.loads((ROOT / "openapi.json").read_text())


# -- through the Functions host's types --------------------------------------------------------


def test_asgi_function_and_queue_trigger(
    monkeypatch: pytest.MonkeyPatch, azurite: Azurite, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    from functions import root
    from tests.conftest import app_functions

    for key, value in environment(azurite).items():
        monkeypatch.setenv(key, value)
    root.services.cache_clear()
    try:
        functions = {name: f.get_user_function() for name, f in app_functions().items()}
        asyncio.run(seed(open_reg, repo, make_multiarch(seed="host")))
        request = func.HttpRequest(
            "POST",
            "http://localhost/api/imports",
            headers={"Content-Type": "application/json"},
            body=json.dumps(body(open_reg, repo, target_reg)).encode(),
        )
        response = asyncio.run(functions["http_app_func"](request, None))
        assert response.status_code == 202
        job_id = json.loads(response.get_body())["id"]
        services = root.services()
        message = services.queue.receive(10)
        assert message is not None
        asyncio.run(
            functions["import_worker"](
                QueueMessageWithMeta(id=message.id, body=message.content.encode(), dequeue_count=1)  # type: ignore[no-untyped-call]
            )
        )
        status = record_json(services, job_id)
        assert status is not None and status["state"] == "succeeded"
    finally:
        root.services.cache_clear()


# -- settings and secrets ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "AzureWebJobsStorage"),
        ({"AzureWebJobsStorage": "x", "FERRY_MAX_DEQUEUE_COUNT": "zero"}, "FERRY_MAX_DEQUEUE_COUNT"),
        ({"AzureWebJobsStorage": "x", "FERRY_QUEUE": "Bad_Queue"}, "FERRY_QUEUE"),
        ({"AzureWebJobsStorage": "x", "FERRY_CREDENTIAL_HUB_USERNAME": "u"}, "FERRY_CREDENTIAL_HUB_PASSWORD"),
        ({"AzureWebJobsStorage": "x", "FERRY_CREDENTIAL_KEY": "c2hvcnQ="}, "FERRY_CREDENTIAL_KEY"),
        ({"AzureWebJobsStorage": "x", "FERRY_ALLOW_INLINE_CREDENTIALS": "true"}, "FERRY_CREDENTIAL_KEY"),
        ({"AzureWebJobsStorage": "x", "FERRY_ALLOW_INLINE_CREDENTIALS": "perhaps"}, "FERRY_ALLOW_INLINE_CREDENTIALS"),
        ({"AzureWebJobsStorage": "x", "FERRY_MAX_MANIFESTS": "lots"}, "FERRY_MAX_MANIFESTS"),
        ({"AzureWebJobsStorage": "x", "FERRY_MAX_MANIFESTS": "0"}, "FERRY_MAX_MANIFESTS"),
        ({"AzureWebJobsStorage": "x", "FERRY_MAX_MANIFESTS": "10001"}, "FERRY_MAX_MANIFESTS"),
        ({"AzureWebJobsStorage": "x", "FERRY_MAX_PUBLIC_BLOB_BYTES": "-1"}, "FERRY_MAX_PUBLIC_BLOB_BYTES"),
        ({"AzureWebJobsStorage": "x", "FERRY_MAX_PUBLIC_BLOB_BYTES": "2GiB"}, "FERRY_MAX_PUBLIC_BLOB_BYTES"),
    ],
)
def test_bad_settings_fail_naming_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=f"setting {named}"):
        Settings.from_env(env)


def test_limits_are_read_alike_by_the_app_and_the_cli() -> None:
    """One reader (shared.environment.limits) for both; its defaults are az acr import's."""
    from shared.importing.spec import Limits

    assert Settings.from_env({"AzureWebJobsStorage": "x"}).limits == Limits() == Limits(50, 2 * 1024**3)
    env = {"AzureWebJobsStorage": "x", "FERRY_MAX_MANIFESTS": "52", "FERRY_MAX_PUBLIC_BLOB_BYTES": "none"}
    assert Settings.from_env(env).limits == env_readers.limits(env) == Limits(52, None)
    assert env_readers.limits({"FERRY_MAX_PUBLIC_BLOB_BYTES": "0"}).max_public_blob_bytes is None
    assert env_readers.limits({"FERRY_MAX_PUBLIC_BLOB_BYTES": "4096"}).max_public_blob_bytes == 4096


def test_no_secret_in_queue_status_or_logs(
    caplog: pytest.LogCaptureFixture, azurite: Azurite, basic_reg: Reg, target_reg: Reg, repo: str
) -> None:
    caplog.set_level(logging.DEBUG)
    svc = make_services(
        environment(
            azurite,
            FERRY_ALLOW_INLINE_CREDENTIALS="true",
            FERRY_CREDENTIAL_KEY=KEY,
            FERRY_CREDENTIAL_PLANTED_USERNAME="alice",
            FERRY_CREDENTIAL_PLANTED_PASSWORD=PLANTED,
        )
    )
    api = TestClient(create_app(lambda: svc))
    asyncio.run(seed(basic_reg, repo, make_multiarch(seed="secret")))
    inline = {
        "registryUri": basic_reg.host,
        "sourceImage": f"{repo}:v1",
        "credentials": {"username": "alice", "password": BASIC_USERS["alice"]},
    }
    bad_inline = {**inline, "credentials": {"username": "alice", "password": PLANTED}}
    named = {"registryUri": basic_reg.host, "sourceImage": f"{repo}:v1", "credential": "planted"}
    jobs = [
        api.post(
            "/api/imports", json={"targetRegistry": target_reg.host, "source": s, "targetTags": [f"{repo}:{i}"]}
        ).json()
        for i, s in enumerate((inline, bad_inline, named))
    ]
    raw = [m.content for m in svc.queue.queue.peek_messages(max_messages=32)]
    assert len(raw) == 3
    drain(svc)
    states = [api.get(j["location"]).json() for j in jobs]
    assert [s["state"] for s in states] == ["succeeded", "failed", "failed"], states
    records = json.dumps([record_json(svc, j["id"]) for j in jobs])
    logs = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    for secret in (PLANTED, BASIC_USERS["alice"], KEY):
        for text in (*raw, records, logs):
            assert secret not in text
            assert base64.b64encode(secret.encode()).decode() not in text
    assert os.environ.get("FERRY_CREDENTIAL_KEY") is None


def test_local_worker_releases_its_message_on_sigterm(
    azurite: Azurite, open_reg: Reg, flaky_source: FaultProxy, target_reg: Reg, repo: str
) -> None:
    """SIGTERM mid-job: the worker process exits promptly and the message is visible again at
    once (not after its lease), so another worker can take it."""
    import signal
    import subprocess
    import time

    env = environment(azurite, FERRY_LEASE_SECONDS="60")
    svc = make_services(env)
    asyncio.run(seed(open_reg, repo, make_multiarch(seed="sigterm")))
    flaky_source.add(Rule("GET", "/blobs/", times=100, delay=0.5))  # a slow source keeps the job running
    doc = {"targetRegistry": target_reg.host, "source": {"registryUri": flaky_source.host, "sourceImage": f"{repo}:v1"}}
    job = TestClient(create_app(lambda: svc)).post("/api/imports", json=doc).json()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "worker"],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while (record_json(svc, job["id"]) or {}).get("state") != "running":
            assert time.monotonic() < deadline, "the worker never started the job"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    message = svc.queue.receive(10)
    assert message is not None and message.dequeue_count == 2  # visible again at once, delivered again
    assert json.loads(message.content)["id"] == job["id"]


def test_two_worker_processes_share_the_queue(azurite: Azurite, open_reg: Reg, target_reg: Reg, repo: str) -> None:
    import subprocess

    env = environment(azurite)
    svc = make_services(env)
    api = TestClient(create_app(lambda: svc))
    jobs = []
    for i in range(6):
        asyncio.run(seed(open_reg, f"{repo}-{i}", make_multiarch(seed=f"two-{i}")))
        jobs.append(api.post("/api/imports", json=body(open_reg, f"{repo}-{i}", target_reg)).json())
    cmd = [sys.executable, "-m", "shared.cli", "worker", "--once"]
    procs = [
        subprocess.Popen(
            cmd, env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    statuses = [api.get(j["location"]).json() for j in jobs]
    assert [(s["state"], s["attemptCount"]) for s in statuses] == [("succeeded", 1)] * 6  # each ran once


def test_the_newest_job_for_a_tag_wins_whatever_finishes_last(
    api: TestClient, svc: Services, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    """Two imports to one tag: the later request's image stays on the tag even when the earlier
    job finishes last (it copies, but does not move the tag, and says so)."""
    old, new = make_multiarch(seed="older"), make_multiarch(seed="newer")
    asyncio.run(seed(open_reg, f"{repo}-old", old))
    asyncio.run(seed(open_reg, f"{repo}-new", new))
    first = api.post(
        "/api/imports", json=body(open_reg, f"{repo}-old", target_reg, targetTags=[f"{repo}:live"], mode="Force")
    ).json()
    import time as _time

    _time.sleep(0.01)  # job ids order by submission time (milliseconds)
    second = api.post(
        "/api/imports", json=body(open_reg, f"{repo}-new", target_reg, targetTags=[f"{repo}:live"], mode="Force")
    ).json()
    messages = [svc.queue.receive(30), svc.queue.receive(30)]
    assert all(m is not None for m in messages)
    by_id = {json.loads(m.content)["id"]: m for m in messages if m is not None}
    asyncio.run(svc.worker.handle(by_id[second["id"]].content, 1))  # the newer one finishes first
    asyncio.run(svc.worker.handle(by_id[first["id"]].content, 1))
    late = api.get(first["location"]).json()
    assert late["state"] == "succeeded" and late["result"]["superseded"] == [f"{repo}:live"]

    async def live() -> str:
        async with target_reg.client() as client:
            return str((await client.resolve(repo, "live")).digest)

    assert asyncio.run(live()) == str(new.digest)


@pytest.mark.process  # a Python process
def test_the_function_app_fails_at_start_up_naming_a_bad_setting() -> None:
    import subprocess

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": "x",
        "FERRY_MAX_DEQUEUE_COUNT": "lots",
    }
    done = subprocess.run(
        [sys.executable, "-c", "import function_app"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode != 0 and "setting FERRY_MAX_DEQUEUE_COUNT" in done.stderr


def test_an_idempotency_key_sent_again_with_another_request_is_422(
    api: TestClient, svc: Services, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    """IETF httpapi Idempotency-Key draft: the key names one request; another under it is refused,
    not silently answered with the first job (which would drop the second import)."""
    headers = {"Idempotency-Key": f"reused-{repo}"}
    first = api.post("/api/imports", json=body(open_reg, repo, target_reg), headers=headers)
    assert first.status_code == 202
    changed = body(open_reg, repo, target_reg, targetTags=[f"{repo}:other"])
    second = api.post("/api/imports", json=changed, headers=headers)
    assert second.status_code == 422, second.text
    problem = second.json()
    assert problem["code"] == "IDEMPOTENCY_KEY_REUSED" and f"reused-{repo}" in problem["message"]
    assert problem["fields"][0]["field"] == "Idempotency-Key"
    assert svc.queue.receive(1) is not None and svc.queue.receive(1) is None  # the first job only


def test_every_bad_item_is_reported_with_its_index_and_booleans_are_strict(api: TestClient) -> None:
    doc = _with("targetTags", ["UPPER/x:1", "ok:1", "x::y"])
    doc["dryRun"] = "yes"
    problem = api.post("/api/imports", json=doc).json()
    fields = {f["field"]: f["message"] for f in problem["fields"]}
    assert set(fields) == {"targetTags[0]", "targetTags[2]", "dryRun"}, fields
    assert "lowercase" in fields["targetTags[0]"] and fields["dryRun"] == "must be true or false"


def test_bodies_over_64_kib_are_413_before_parsing_and_deep_json_is_400(api: TestClient) -> None:
    big = api.post(
        "/api/imports", content=b'{"x": "' + b"a" * 70_000 + b'"}', headers={"Content-Type": "application/json"}
    )
    assert big.status_code == 413 and big.json()["code"] == "TOO_LARGE" and "65536" in big.json()["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap holds while reading
        yield b'{"x": "'
        for _ in range(20):
            yield b"a" * 8192
        yield b'"}'

    streamed = api.post("/api/imports", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    deep = api.post("/api/imports", content=b"[" * 60_000, headers={"Content-Type": "application/json"})
    assert deep.status_code == 400 and "nested more than 32 levels" in deep.json()["message"]
    assert deep.json()["fields"][0]["field"] == "body"


def test_health_answers_in_time_whatever_storage_does(svc: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    import functions.http as http_app

    monkeypatch.setattr(http_app, "HEALTH_SECONDS", 0.2)
    monkeypatch.setattr(svc.queue, "healthy", lambda: time.sleep(1.5))
    started = time.monotonic()
    answer = TestClient(create_app(lambda: svc)).get("/api/health")
    assert answer.status_code == 503 and answer.json()["queue"] == "no answer within 0.2 s"
    assert answer.json()["table"] == "ok"
    assert time.monotonic() - started < 1.5 + 1.0


@pytest.mark.process
def test_an_idle_worker_logs_nothing_but_its_start_and_stop(azurite: Azurite) -> None:
    """The Azure SDK logs every poll's request and response at INFO, httpx every request: quieted
    to WARNING, an idle worker's log is its start-up line and its stop line."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "worker"],
        env={**os.environ, **environment(azurite, FERRY_LEASE_SECONDS="5"), "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(6)  # a few polls of an empty queue, and a lease renewal's worth
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 2 and "worker polling queue" in lines[0] and "worker stopped" in lines[1], output


def test_each_job_event_is_one_line_with_the_job_id(
    api: TestClient, svc: Services, open_reg: Reg, target_reg: Reg, repo: str, caplog: pytest.LogCaptureFixture
) -> None:
    from shared import logs

    asyncio.run(seed(open_reg, repo, make_multiarch(seed="log-lines")))
    levels = {name: logging.getLogger(name).level for name in ("shared", *logs.CHATTY)}
    logs.configure("INFO", handler=False)
    try:
        with caplog.at_level(logging.INFO):
            job = api.post("/api/imports", json=body(open_reg, repo, target_reg)).json()
            drain(svc)
    finally:  # the levels are the process's: a later test must not find httpx silenced
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    mine = [r for r in caplog.records if getattr(r, "jobId", None) == job["id"]]
    assert [r.getMessage().split(":")[0] for r in mine] == [
        f"job {job['id']} queued",
        f"job {job['id']} started (attempt 1)",
        f"job {job['id']} succeeded",
    ]
    assert "bytes" in mine[-1].getMessage() and "blobs copied" in mine[-1].getMessage()
    assert not [r for r in caplog.records if r.name.startswith(("azure", "httpx")) and r.levelno < logging.WARNING]
