"""The status page (GET /api/control) in a real browser: Debian's chromium driven by Playwright,
against the API under uvicorn on loopback with a worker, Azurite and real registries. The page
loads without console errors, a running job's bar moves, a failed job shows its reason, cancel
works (and is refused without the API's rights), rules that are behind stand out, the page says
when storage does not answer, and it works at a phone's width. Screenshots go to
``build/screenshots/`` (or ``FERRY_SCREENSHOTS``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from shared.service.wiring import build
from shared.settings import Settings
from tests.conftest import FAST, Reg
from tests.harness.azurite import Azurite
from tests.harness.browser import DESKTOP, PHONE, Watched, chromium, overflow, screenshots
from tests.harness.faultproxy import FaultProxy, Rule
from tests.harness.images import make_image, seed
from tests.harness.live import LiveService
from tests.harness.service import environment, make_services

pytestmark = pytest.mark.process
KEY = "page-test-function-key-0123456789"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def shots() -> Path:
    return screenshots()


class HostKeys:
    """The Functions host's check of ``authLevel: function`` (it cannot run here): a request
    without a valid key in ``x-functions-key`` or ``?code=`` is answered 401 before the app."""

    def __init__(self, app: Any) -> None:
        self.app, self.keys = app, {KEY}

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
            if headers.get("x-functions-key", query.get("code")) not in self.keys:
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)


def _in_thread(coro: Any) -> Any:
    """Run ``coro`` to its end in a thread of its own (Playwright's loop holds this one)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _submit(url: str, source: str, image: str, target: Reg, **extra: Any) -> str:
    body = {"targetRegistry": target.host, "source": {"registryUri": source, "sourceImage": image},
            "targetTags": [f"copy/{image.replace(':', '-')}:t"], **extra}  # fmt: skip
    answer = httpx.post(f"{url}/api/imports", json=body, headers={"x-functions-key": KEY}, timeout=30)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def _state(url: str, job_id: str) -> dict[str, Any]:
    return dict(httpx.get(f"{url}/api/imports/{job_id}", headers={"x-functions-key": KEY}, timeout=30).json())


def _wait(url: str, job_id: str, states: tuple[str, ...], seconds: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        doc = _state(url, job_id)
        if doc["state"] in states or time.monotonic() > deadline:
            return doc
        time.sleep(0.2)


@pytest.fixture
def keyed(azurite: Azurite, tmp_path: Path, open_reg: Reg, target_reg: Reg) -> Iterator[tuple[LiveService, HostKeys]]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(json.dumps({"mirrors": [
        {"name": "web-mirror", "source": f"{open_reg.host}/page/web", "tags": ["1.0"], "targetRegistry": target_reg.host},
    ]}))  # fmt: skip
    env = environment(azurite, FERRY_CONCURRENCY="1", FERRY_RULES_FILE=str(rules))
    hosts: list[HostKeys] = []

    def wrap(app: Any) -> HostKeys:
        hosts.append(HostKeys(app))
        return hosts[0]

    live = LiveService(make_services(env), wrap=wrap).start()
    yield live, hosts[0]
    live.stop()


def _open(browser: Browser, shots: Path, url: str, view: str = "now", viewport: dict[str, int] = DESKTOP) -> Watched:
    watched = Watched(browser, viewport, shots)
    watched.page.goto(f"{url}/api/control?code={KEY}#{view}")
    return watched


def test_a_running_jobs_bar_moves_and_cancel_stops_it(
    browser: Browser, shots: Path, keyed: tuple[LiveService, HostKeys], open_reg: Reg, target_reg: Reg, repo: str,
    flaky_source: FaultProxy,
) -> None:  # fmt: skip
    live, _ = keyed
    _in_thread(seed(open_reg, repo, make_image([300_000] * 10, seed="page-slow"), "v1"))
    flaky_source.add(Rule("GET", "/blobs/sha256:", times=10, delay=1.2))  # a slow source: a job of ~12 s
    job = _submit(live.url, flaky_source.host, f"{repo}:v1", target_reg)
    watched = _open(browser, shots, live.url)
    page = watched.page
    bar = page.locator(f'article[data-job="{job}"] [role=progressbar]')
    expect(bar).to_be_visible(timeout=30_000)
    first = float(bar.get_attribute("aria-valuenow") or 0)
    deadline = time.monotonic() + 30
    while float(bar.get_attribute("aria-valuenow") or 0) <= first:  # the bar moves, without a reload
        assert time.monotonic() < deadline, f"the bar stayed at {first}%"
        page.wait_for_timeout(200)
    expect(page.locator(f'article[data-job="{job}"] [data-figure=rate]')).to_contain_text("/s")
    watched.shot("now-running")
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # never reloaded
    page.locator(f'button[data-cancel="{job}"]').click()
    assert _wait(live.url, job, ("cancelled",), 30)["state"] == "cancelled"
    assert watched.errors == []
    watched.close()


def test_a_failed_job_shows_its_reason_grouped_and_on_its_page(
    browser: Browser, shots: Path, keyed: tuple[LiveService, HostKeys], open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    live, _ = keyed
    job = _submit(live.url, open_reg.host, f"{repo}:missing", target_reg)
    failed = _wait(live.url, job, ("failed",))
    assert failed["state"] == "failed", failed
    code = failed["error"]["code"]
    watched = _open(browser, shots, live.url, "failures")
    page = watched.page
    group = page.locator(f'details.group[data-code="{code}"]')
    expect(group).to_be_visible(timeout=15_000)
    expect(group.locator("summary")).to_contain_text(open_reg.host)
    group.locator("summary").click()
    watched.shot("failures")
    group.locator(f'a[href="#job/{job}"]').first.click()
    expect(page.locator("#job-error")).to_contain_text(code, timeout=15_000)
    expect(page.locator("#job-error")).to_contain_text(failed["error"]["message"][:40])
    expect(page.locator("#attempts tbody tr")).to_have_count(len(failed["attempts"]))
    expect(page.locator("#view-job pre")).to_contain_text('"sourceImage"')
    watched.shot("job-failed")
    assert KEY not in page.content()  # the key is sent, never shown
    assert watched.errors == []
    watched.close()


def test_cancel_is_refused_without_the_apis_rights(
    browser: Browser, shots: Path, keyed: tuple[LiveService, HostKeys], open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    live, host = keyed
    live.stop_worker()  # the job stays queued
    job = _submit(live.url, open_reg.host, f"{repo}:v1", target_reg)
    watched = _open(browser, shots, live.url)
    page = watched.page
    expect(page.locator(f'button[data-cancel="{job}"]')).to_be_visible(timeout=15_000)
    host.keys = {"another-key"}  # the key is revoked while the page is open
    page.locator(f'button[data-cancel="{job}"]').first.click()
    expect(page.locator("#banner")).to_contain_text("no rights", timeout=15_000)
    host.keys = {KEY}
    assert _state(live.url, job)["state"] == "queued"
    watched.shot("cancel-refused")
    page.locator(f'button[data-cancel="{job}"]').first.click()
    assert _wait(live.url, job, ("cancelled",), 15)["state"] == "cancelled"
    watched.close()
    assert httpx.get(f"{live.url}/api/control", timeout=10).status_code == 401  # no key, no page


def test_a_mirror_that_is_behind_stands_out(
    browser: Browser, shots: Path, keyed: tuple[LiveService, HostKeys], open_reg: Reg, target_reg: Reg
) -> None:
    live, _ = keyed
    live.stop_worker()  # what the pass enqueues stays queued: the mirror is behind
    _in_thread(seed(open_reg, "page/web", make_image([1000], seed="page-mirror"), "1.0"))
    ran = httpx.post(f"{live.url}/api/mirror/run", headers={"x-functions-key": KEY}, timeout=60)
    assert ran.status_code == 200, ran.text
    watched = _open(browser, shots, live.url, "rules")
    row = watched.page.locator('tr[data-rule="web-mirror"]')
    expect(row).to_have_class("behind", timeout=15_000)
    expect(row).to_contain_text("since")
    watched.shot("rules-behind")
    assert watched.errors == []
    watched.close()


def test_the_page_at_a_phones_width(
    browser: Browser, shots: Path, keyed: tuple[LiveService, HostKeys], open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    live, _ = keyed
    job = _submit(live.url, open_reg.host, f"{repo}:missing", target_reg)
    _wait(live.url, job, ("failed",))
    for view in ("now", "jobs", "failures", f"job/{job}", "rules"):
        watched = _open(browser, shots, live.url, view, PHONE)
        watched.page.wait_for_selector("#live:not(:text('…'))", timeout=15_000)
        assert overflow(watched.page) <= 0, view
        watched.shot(f"phone-{view.split('/')[0]}")
        assert watched.errors == []
        watched.close()


def test_the_page_says_when_storage_does_not_answer(browser: Browser, shots: Path, azurite: Azurite) -> None:
    env = environment(azurite)
    dead = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
        + env["AzureWebJobsStorage"].split("AccountKey=")[1].split(";")[0]
        + ";QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    )
    settings = Settings.from_env({**env, "AzureWebJobsStorage": dead}).model_copy(update={"transport": FAST})
    live = LiveService(build(settings, ensure=False), worker=False).start()
    try:
        watched = Watched(browser, DESKTOP, shots)
        watched.page.goto(f"{live.url}/api/control#now")
        expect(watched.page.locator("#banner")).to_contain_text("storage does not answer", timeout=60_000)
        watched.shot("storage-down")
        watched.close()
    finally:
        live.stop()
