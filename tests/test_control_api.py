"""The control room's reads (functions/control.py) against Azurite and real registries: the page
is one document whose script and style are the only ones its policy allows; ``GET /api/rules``
follows a mirror from its pass (behind, since when) through its jobs (up to date, last success)
and a promotion from its push; ``GET /api/imports/{id}/request`` gives the request without its
secrets."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.http import create_app
from shared.azure_storage.records import JobChange, JobError
from shared.service.wiring import Services
from tests.conftest import Reg
from tests.harness.azurite import Azurite
from tests.harness.images import make_image, seed
from tests.harness.service import drain, environment, make_services

SEAL = base64.b64encode(b"k" * 32).decode()
PLANTED = "planted-inline-secret-4711"


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_the_page_allows_only_its_own_script_and_style(api: TestClient) -> None:
    answer = api.get("/api/control")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    policy = answer.headers["content-security-policy"]
    script = re.search(r"<script>(.*)</script>", answer.text, re.S)
    style = re.search(r"<style>(.*)</style>", answer.text, re.S)
    assert script and style and answer.text.count("<script") == 1
    assert f"script-src {_sha(script.group(1))};" in policy and f"style-src {_sha(style.group(1))};" in policy
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "unsafe" not in policy
    assert answer.headers["referrer-policy"] == "no-referrer" and answer.headers["cache-control"] == "no-store"
    assert 'data-runs="1"' in answer.text  # GET /api/runs is in this API (#23): the page shows runs
    assert "innerHTML" not in script.group(1)  # text from the API is only ever set as text


@pytest.fixture
def ruled(azurite: Azurite, tmp_path: Path, open_reg: Reg, target_reg: Reg) -> Services:
    rules = {
        "mirrors": [{"name": "web", "source": f"{open_reg.host}/ctl/web", "tags": ["1.0", "2.0"],
                     "targetRegistry": target_reg.host}],
        "promotions": [{"name": "promote", "sourceRegistry": open_reg.host, "repository": "ctl/*",
                        "targetRegistry": target_reg.host, "targetRepository": "promoted/{repository}"}],
    }  # fmt: skip
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    return make_services(environment(azurite, FERRY_RULES_FILE=str(path)))


def _rules(client: TestClient) -> dict[str, dict[str, Any]]:
    answer = client.get("/api/rules")
    assert answer.status_code == 200, answer.text
    assert answer.json()["configured"] is True
    return {r["name"]: r for r in answer.json()["rules"]}


def test_rules_from_never_to_behind_to_ok(ruled: Services, open_reg: Reg) -> None:
    client = TestClient(create_app(lambda: ruled))
    assert {n: r["state"] for n, r in _rules(client).items()} == {"web": "never", "promote": "never"}
    asyncio.run(seed(open_reg, "ctl/web", make_image([500], seed="ctl-1"), "1.0"))
    asyncio.run(seed(open_reg, "ctl/web", make_image([600], seed="ctl-2"), "2.0"))
    assert client.post("/api/mirror/run").status_code == 200
    web = _rules(client)["web"]
    assert (web["state"], web["selected"], web["upToDate"], web["behind"], web["inFlight"]) == ("behind", 2, 0, 2, 2)
    assert web["behindSince"] and web["lastPass"] and web["lastSuccess"] is None
    drain(ruled)  # the jobs land
    web = _rules(client)["web"]
    assert (web["state"], web["upToDate"], web["behind"]) == ("ok", 2, 0) and web["lastSuccess"]
    assert client.post("/api/mirror/run").status_code == 200  # nothing to do: up to date by itself
    again = _rules(client)["web"]
    assert (again["state"], again["upToDate"], again["behind"]) == ("ok", 2, 0) and "behindSince" not in again


def test_a_mirror_tag_that_fails_shows_as_failing(ruled: Services, open_reg: Reg) -> None:
    client = TestClient(create_app(lambda: ruled))
    asyncio.run(seed(open_reg, "ctl/web", make_image([500], seed="ctl-3"), "1.0"))
    assert client.post("/api/mirror/run").status_code == 200
    job = _rules(client)["web"]
    jobs = ruled.statuses.list("queued", 10, None)[0]
    ruled.statuses.update(jobs[0].id, JobChange(state="failed", error=JobError(code="DENIED", message="no")))
    web = _rules(client)["web"]
    assert web["state"] == "failing" and web["failing"][0]["code"] == "DENIED", (job, web)


def test_a_promotion_shows_its_last_push(ruled: Services, open_reg: Reg) -> None:
    client = TestClient(create_app(lambda: ruled))
    digest = asyncio.run(seed(open_reg, "ctl/app", make_image([500], seed="ctl-4"), "3.1"))
    event = {"id": "e1", "eventType": "Microsoft.ContainerRegistry.ImagePushed",
             "data": {"target": {"repository": "ctl/app", "tag": "3.1", "digest": str(digest)},
                      "request": {"host": open_reg.host}}}  # fmt: skip
    from shared.automation.calls import on_event

    asyncio.run(on_event(ruled, event))
    promote = _rules(client)["promote"]
    assert promote["state"] == "behind" and promote["lastPush"] == f"{open_reg.host}/ctl/app:3.1"
    drain(ruled)
    assert _rules(client)["promote"]["state"] == "ok"


def test_without_a_rules_file_the_rules_view_says_so(api: TestClient) -> None:
    assert api.get("/api/rules").json() == {"configured": False, "rules": []}


def test_a_jobs_request_is_shown_without_its_secrets(azurite: Azurite, open_reg: Reg, target_reg: Reg) -> None:
    svc = make_services(environment(azurite, FERRY_ALLOW_INLINE_CREDENTIALS="true", FERRY_CREDENTIAL_KEY=SEAL))
    client = TestClient(create_app(lambda: svc))
    body = {"targetRegistry": target_reg.host, "targetTags": ["x/y:1"],
            "source": {"registryUri": open_reg.host, "sourceImage": "x/y:1",
                       "credentials": {"username": "alice", "password": PLANTED}}}  # fmt: skip
    job = client.post("/api/imports", json=body).json()["id"]
    answer = client.get(f"/api/imports/{job}/request")
    assert answer.status_code == 200
    request = answer.json()["request"]
    assert request["source"]["sourceImage"] == "x/y:1" and "credentials" not in request["source"]
    assert PLANTED not in answer.text and "sealed" not in answer.text
    assert client.get("/api/imports/00000000000000000000/request").status_code == 404
    assert client.get("/api/imports/not-an-id!/request").status_code == 404
