"""Promotion on push and scheduled mirroring, driven with the documented event payloads, against
Azurite and real registries, through the worker."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from fastapi.testclient import TestClient

from functions.events import as_dict
from functions.http import create_app
from shared.automation.calls import _rules, on_event, run_mirrors
from shared.azure_storage.records import JobChange, JobError
from shared.service.wiring import Services
from tests.conftest import Reg
from tests.harness.azurite import Azurite
from tests.harness.faultproxy import FaultProxy, Rule
from tests.harness.images import make_image, make_multiarch, push_image
from tests.harness.service import drain, environment, make_services, record_json

TOPIC = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/devacr"


def rules_file(tmp_path: Path, dev: Reg, prod: Reg, extra: str = "") -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(f"""
promotions:
  - name: to-prod
    sourceRegistry: "{dev.host}"
    repository: "team/*"
    tag: 'v\\d+\\.\\d+'
    credential: dev
    targetRegistry: "{prod.host}"
    targetRepository: "prod/{{repository}}"
    targetTags: ["{{tag}}", "stable"]
    mode: Force
{extra}
""")
    _rules.cache_clear()
    return path


@pytest.fixture
def promo(azurite: Azurite, tmp_path: Path, basic_reg: Reg, target_reg: Reg) -> Services:
    return make_services(environment(azurite, FERRY_RULES_FILE=str(rules_file(tmp_path, basic_reg, target_reg))))


def pushed_event(
    host: str,
    repository: str,
    digest: str,
    tag: str | None,
    media_type: str,
    event_id: str = "e1",
    event_type: str = "Microsoft.ContainerRegistry.ImagePushed",
) -> dict[str, Any]:
    """The Event Grid schema payload ACR sends (event-schema-container-registry)."""
    target: dict[str, Any] = {
        "mediaType": media_type,
        "size": 524,
        "digest": digest,
        "length": 524,
        "repository": repository,
    }
    if tag:
        target["tag"] = tag
    return {
        "id": event_id, "topic": TOPIC, "subject": f"{repository}:{tag}" if tag else repository, "eventType": event_type,
        "eventTime": "2026-11-28T22:00:00Z", "dataVersion": "1.0", "metadataVersion": "1",
        "data": {"id": event_id, "timestamp": "2026-11-28T22:00:00Z", "action": "push", "target": target,
                 "request": {"id": "r1", "host": host, "method": "PUT", "useragent": "docker/27"}},
    }  # fmt: skip


def eg(payload: dict[str, Any]) -> func.EventGridEvent:
    return func.EventGridEvent(
        id=payload["id"], data=payload["data"], topic=payload["topic"], subject=payload["subject"],
        event_type=payload["eventType"], event_time=dt.datetime.now(dt.UTC), data_version="1.0",
    )  # fmt: skip


def cloud(payload: dict[str, Any]) -> func.CloudEvent:
    return func.CloudEvent(
        id=payload["id"], source=payload["topic"], type=payload["eventType"], specversion="1.0",
        data=payload["data"], subject=payload["subject"],
    )  # fmt: skip


def call(svc: Services, event: Any) -> list[str]:
    return asyncio.run(on_event(svc, as_dict(event)))


async def _push_tagged_index(reg: Reg, repo: str, tag: str) -> tuple[str, list[str]]:
    index = make_multiarch(seed=f"{repo}-{tag}")
    async with reg.client() as client:
        digest = await push_image(client, repo, index, tag)
    return str(digest), [str(c.digest) for c in index.children]


def test_tagged_push_promotes_once_and_lands(promo: Services, basic_reg: Reg, target_reg: Reg, repo: str) -> None:
    team_repo = f"team/{repo.split('/')[1]}"
    digest, children = asyncio.run(_push_tagged_index(basic_reg, team_repo, "v1.2"))
    from shared.oci import mediatypes as mt

    # A multi-arch push: the children by digest first, then the tagged index.
    child_events = [
        pushed_event(basic_reg.host, team_repo, c, None, mt.OCI_MANIFEST, f"c{i}") for i, c in enumerate(children)
    ]
    assert all(call(promo, eg(e)) == [] for e in child_events)
    tagged = pushed_event(basic_reg.host, team_repo, digest, "v1.2", mt.OCI_INDEX, "t1")
    jobs = call(promo, eg(tagged))
    assert len(jobs) == 1
    # At-least-once delivery: the same event again, and the same push as a CloudEvent: nothing new.
    assert call(promo, eg(tagged)) == jobs
    assert call(promo, cloud({**tagged, "id": "t1-dup"})) == jobs
    drain(promo)
    status = record_json(promo, jobs[0])
    assert status is not None and status["state"] == "succeeded", status
    assert status["targets"] == [
        f"{target_reg.host}/prod/{team_repo}:v1.2",
        f"{target_reg.host}/prod/{team_repo}:stable",
    ]

    async def at_prod() -> list[str]:
        async with target_reg.client() as client:
            return [str((await client.resolve(f"prod/{team_repo}", t)).digest) for t in ("v1.2", "stable")]

    assert asyncio.run(at_prod()) == [digest, digest]


def test_events_that_promote_nothing(promo: Services, basic_reg: Reg, repo: str) -> None:
    from shared.oci import mediatypes as mt

    digest = "sha256:" + "a" * 64
    ignored = [
        pushed_event(basic_reg.host, "team/app", digest, "latest", mt.OCI_INDEX),  # tag does not match
        pushed_event(basic_reg.host, "other/app", digest, "v1.0", mt.OCI_INDEX),  # repository does not match
        pushed_event("elsewhere.azurecr.io", "team/app", digest, "v1.0", mt.OCI_INDEX),  # another registry
        pushed_event(basic_reg.host, "team/app", digest, None, mt.OCI_MANIFEST),  # digest-only child push
        pushed_event(
            basic_reg.host,
            "team/app",
            digest,
            "v1.0",
            mt.OCI_INDEX,
            event_type="Microsoft.ContainerRegistry.ImageDeleted",
        ),
        pushed_event(
            basic_reg.host,
            "team/chart",
            digest,
            "chart-1.0.0.tgz",
            "application/vnd.acr.helm.chart",
            event_type="Microsoft.ContainerRegistry.ChartPushed",
        ),
    ]
    assert all(call(promo, eg(e)) == [] for e in ignored)
    assert promo.queue.receive(1) is None


@pytest.mark.parametrize(
    "data",
    [
        {"target": "nope"},
        {"target": {"tag": "v1.0", "repository": "team/app"}},
        {
            "target": {"tag": "v1.0", "repository": "Team/App", "digest": "sha256:" + "a" * 64},
            "request": {"host": "x.io"},
        },
        {"target": {"tag": "v1.0", "repository": "team/app", "digest": "sha256:short"}, "request": {"host": "x.io"}},
    ],
)
def test_malformed_events_are_logged_and_dropped(promo: Services, caplog: pytest.LogCaptureFixture, data: Any) -> None:
    payload = {
        "id": "bad-1",
        "topic": "/x",
        "subject": "s",
        "eventType": "Microsoft.ContainerRegistry.ImagePushed",
        "data": data,
    }
    assert call(promo, eg(payload)) == []
    assert "event bad-1: malformed, dropped: " in caplog.text


def test_registry_from_topic_when_request_host_is_missing(azurite: Azurite, tmp_path: Path) -> None:
    from shared.automation.passes import parse_push

    payload = pushed_event("x", "team/app", "sha256:" + "b" * 64, "v1.0", "application/vnd.oci.image.index.v1+json")
    del payload["data"]["request"]
    push = parse_push(payload)
    assert push is not None and push.registry == "devacr.azurecr.io"


# -- mirroring ---------------------------------------------------------------------------------


def mirror_rules(tmp_path: Path, source: str, prod: Reg, selection: str) -> Path:
    path = tmp_path / "mirror.yaml"
    path.write_text(f"""
mirrors:
  - name: upstream
    source: "{source}"
    {selection}
    targetRegistry: "{prod.host}"
    targetRepository: "mirror/{{repository}}"
    mode: Force
""")
    _rules.cache_clear()
    return path


async def _tag_versions(reg: Reg, repo: str, tags: list[str]) -> dict[str, str]:
    out = {}
    async with reg.client() as client:
        for tag in tags:
            image = make_image((200,), seed=f"{repo}-{tag}")
            out[tag] = str(await push_image(client, repo, image, tag))
    return out


def test_mirror_pass_enqueues_only_changed_semver_tags(
    azurite: Azurite, tmp_path: Path, open_reg: Reg, target_reg: Reg, repo: str, caplog: pytest.LogCaptureFixture
) -> None:
    asyncio.run(_tag_versions(open_reg, repo, ["1.24.0", "1.25.0", "1.26.1", "2.0.0", "latest"]))
    path = mirror_rules(tmp_path, f"{open_reg.host}/{repo}", target_reg, 'semver: ">=1.25 <2"')
    svc = make_services(environment(azurite, FERRY_RULES_FILE=str(path)))
    api = TestClient(create_app(lambda: svc))
    with caplog.at_level("INFO", logger="shared.automation.passes"):
        dry = api.post("/api/mirror/run", params={"dryRun": "true"}).json()
    assert dry["entries"][0]["enqueued"] == {} and dry["entries"][0]["wouldEnqueue"] == ["1.25.0", "1.26.1"]
    assert dry["entries"][0]["states"] == {"1.25.0": "would enqueue", "1.26.1": "would enqueue"}
    assert "(dry run): 2 selected, 0 unchanged, would enqueue 2 (1.25.0, 1.26.1)" in caplog.text  # never "enqueued"
    assert svc.queue.receive(1) is None  # a dry run enqueues nothing
    first = asyncio.run(run_mirrors(svc))[0]
    assert first["selected"] == 2 and sorted(first["enqueued"]) == ["1.25.0", "1.26.1"] and first["unchanged"] == 0
    drain(svc)
    assert all(record_json(svc, j)["state"] == "succeeded" for j in first["enqueued"].values())  # type: ignore[index]
    second = asyncio.run(run_mirrors(svc))[0]
    assert second["enqueued"] == {} and second["unchanged"] == 2  # nothing changed, nothing to do


def test_mirror_moved_tag_is_enqueued(
    azurite: Azurite, tmp_path: Path, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    asyncio.run(_tag_versions(open_reg, repo, ["1.0.0"]))
    path = mirror_rules(tmp_path, f"{open_reg.host}/{repo}", target_reg, 'tags: ["1.0.0"]')
    svc = make_services(environment(azurite, FERRY_RULES_FILE=str(path)))
    assert list(asyncio.run(run_mirrors(svc))[0]["enqueued"]) == ["1.0.0"]
    drain(svc)

    async def retag() -> None:
        async with open_reg.client() as client:
            await push_image(client, repo, make_image((300,), seed="moved"), "1.0.0")

    asyncio.run(retag())
    again = asyncio.run(run_mirrors(svc))[0]
    assert list(again["enqueued"]) == ["1.0.0"] and again["unchanged"] == 0


def test_mirror_respects_rate_limits(
    azurite: Azurite, tmp_path: Path, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    asyncio.run(_tag_versions(open_reg, repo, ["1.0.0", "1.1.0", "1.2.0"]))
    proxy = FaultProxy("127.0.0.1", open_reg.proc.port).start()
    try:
        # Docker Hub style headers: the floor stops the pass after the first HEAD.
        proxy.add(
            Rule(
                "GET",
                "/tags/list",
                respond=(
                    200,
                    {"Content-Type": "application/json", "ratelimit-remaining": "3;w=21600"},
                    json.dumps({"name": repo, "tags": ["1.0.0", "1.1.0", "1.2.0"]}).encode(),
                ),
            )
        )
        path = mirror_rules(tmp_path, f"{proxy.host}/{repo}", target_reg, 'semver: ">=1"')
        svc = make_services(environment(azurite, FERRY_RULES_FILE=str(path), FERRY_RATELIMIT_FLOOR="5"))
        report = asyncio.run(run_mirrors(svc))[0]
        assert report["enqueued"] == {} and "under the floor of 5" in report["deferred"]
        # A 429 defers the entry to the next pass instead of failing the timer.
        proxy.add(Rule("GET", "/tags/list", times=10, respond=(429, {"Retry-After": "3600"}, b"")))
        svc2 = make_services(environment(azurite, FERRY_RULES_FILE=str(path)))
        report = asyncio.run(run_mirrors(svc2))[0]
        assert report["enqueued"] == {} and "rate limited" in report["deferred"]
    finally:
        proxy.stop()


def test_timer_and_event_functions_are_registered() -> None:
    from tests.conftest import app_functions

    functions = app_functions()
    assert set(functions) == {"http_app_func", "import_worker", "run_events", "on_image_pushed", "mirror"}
    bindings = {b["type"] for f in functions.values() for b in json.loads(f.get_function_json())["bindings"]}
    assert {"httpTrigger", "queueTrigger", "eventGridTrigger", "timerTrigger"} <= bindings


def test_a_failed_mirror_job_is_retried_after_its_back_off_and_a_permanent_failure_is_left_alone(
    azurite: Azurite, tmp_path: Path, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    """The job id derives from the digest: a failed job used to hold its key, so the tag was not
    mirrored again until the source changed, while each pass reported it enqueued."""
    from datetime import UTC, datetime, timedelta

    asyncio.run(_tag_versions(open_reg, repo, ["3.12", "3.13"]))
    path = mirror_rules(tmp_path, f"{open_reg.host}/{repo}", target_reg, 'tags: ["3.12", "3.13"]')
    svc = make_services(environment(azurite, FERRY_RULES_FILE=str(path)))
    first = asyncio.run(run_mirrors(svc))[0]
    assert first["states"] == {"3.12": "enqueued", "3.13": "enqueued"}
    just_now = datetime.now(UTC)
    svc.statuses.update(
        first["enqueued"]["3.12"],
        JobChange(state="failed", finishedAt=just_now, error=JobError(code="UNAVAILABLE", message="injected")),
    )
    svc.statuses.update(first["enqueued"]["3.13"], JobChange(state="failed", finishedAt=just_now,
                                                   error=JobError(code="DIGEST_INVALID", message="injected")))  # fmt: skip
    while svc.queue.receive(1) is not None:  # the failed jobs' messages are gone, as after a failure
        pass
    waiting = asyncio.run(run_mirrors(svc))[0]
    assert waiting["enqueued"] == {}  # never "enqueued" for a job that was not
    assert waiting["states"]["3.12"].startswith("failed: UNAVAILABLE; retrying after")
    assert waiting["states"]["3.13"] == "failed: DIGEST_INVALID"  # permanent: left alone
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    svc.statuses.update(first["enqueued"]["3.12"], JobChange(finishedAt=long_ago))
    retried = asyncio.run(run_mirrors(svc))[0]
    assert retried["states"]["3.12"] == "retrying (attempt 2)" and list(retried["enqueued"]) == ["3.12"]
    assert retried["enqueued"]["3.12"] != first["enqueued"]["3.12"]
    drain(svc)
    assert record_json(svc, retried["enqueued"]["3.12"])["state"] == "succeeded"  # type: ignore[index]
    after = asyncio.run(run_mirrors(svc))[0]
    assert after["states"]["3.12"] == "up to date" and after["enqueued"] == {}


@pytest.mark.process
def test_rules_plan_says_what_each_mirror_selects_from_live_tags(tmp_path: Path, open_reg: Reg, repo: str) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    nginx = ["1.25.4", "1.26", "1.26.2", "1.26.2-alpine", "1.27.3", "1.27.3-alpine", "1.28.0-rc1", "latest", "2.0.0"]
    asyncio.run(_tag_versions(open_reg, repo, nginx))
    path = tmp_path / "plan.yaml"
    path.write_text(f"""
mirrors:
  - name: stable
    source: "{open_reg.host}/{repo}"
    versions: ">=1.25 <2"
    targetRegistry: prod.example
  - name: alpine
    source: "{open_reg.host}/{repo}"
    versions: "^1.27"
    suffix: alpine
    tags: ["9.9.9"]
    targetRegistry: prod.example
  - name: none
    source: "{open_reg.host}/{repo}"
    versions: ">=5"
    targetRegistry: prod.example
""")
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", "rules", "plan", str(path)],
        env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    stable, alpine, none = plan["mirrors"]
    assert stable["selected"] == ["1.25.4", "1.26.2", "1.27.3"]
    assert stable["skipped"] == {"1.26": "floating", "1.26.2-alpine": "suffix", "1.27.3-alpine": "suffix",
                                 "1.28.0-rc1": "suffix", "latest": "not a version", "2.0.0": "range"}  # fmt: skip
    assert alpine["selected"] == ["1.27.3-alpine"] and alpine["missing"] == ["9.9.9"]
    assert alpine["skipped"]["1.26.2-alpine"] == "range"
    assert none["selected"] == []
    assert any("none: selects none of the 9 tags" in w for w in plan["warnings"])
    assert any("alpine: named tags that do not exist: 9.9.9" in w for w in plan["warnings"])
