"""What a mirror pass and ``ferry rules plan`` cost a source with a pull limit (the fake Docker
Hub in front of a real registry), and what they say of it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared.automation.passes import mirror_pass
from shared.automation.plan import plan
from shared.automation.rules import parse_rules
from shared.credentials import Anonymous, Credential
from shared.credentials.resolver import Resolver
from shared.http.budget import PullBudget
from shared.registry import RegistryClient
from shared.service.submit import Submitted
from tests.conftest import FAST, Reg
from tests.harness.fakehub import FakeHub
from tests.harness.faultproxy import FaultProxy, Rule
from tests.harness.images import make_image, push_image

TAGS = [f"1.{i}.0" for i in range(30)]


@pytest.fixture
def hub(open_reg: Reg) -> Iterator[FakeHub]:
    proxy = FakeHub("127.0.0.1", open_reg.proc.port, limit=20, window=60.0).start()
    yield proxy
    proxy.stop()


async def seed_tags(reg: Reg, repo: str, tags: list[str]) -> None:
    image = make_image((10,), seed=repo)
    async with reg.client() as client:
        await push_image(client, repo, image, tags[0])
        for tag in tags[1:]:
            await client.push_manifest(repo, tag, image.manifest, image.media_type)


def anonymous(registry: str, name: str | None) -> Credential:
    return Anonymous()


def test_a_pass_heads_each_tag_once_lists_the_target_once_and_reports_its_cost(
    open_reg: Reg, target_reg: Reg, hub: FakeHub
) -> None:
    repo = f"test/{uuid.uuid4().hex[:8]}"
    asyncio.run(seed_tags(open_reg, repo, TAGS))
    target = FaultProxy("127.0.0.1", target_reg.proc.port).start()
    try:
        rules = parse_rules(f'mirrors: [{{name: m, source: "{hub.host}/{repo}", versions: ">=1", '
                            f'targetRegistry: "{target.host}"}}]')  # fmt: skip
        submitted: list[str] = []

        async def submit(request: Any, key: str) -> Submitted:
            submitted.append(key)
            return Submitted(f"job{len(submitted)}", True, "enqueued")

        budget = PullBudget()
        report = asyncio.run(mirror_pass(rules, anonymous, FAST, submit, 5, budget))[0]
    finally:
        target.stop()
    assert len(report.enqueued) == 30 and report.deferred is None and report.deferred_tags == []
    # one tag list and 30 HEADs; 30 imports enqueued, 20 - 5 in reserve may pull now: 15 will wait
    assert report.cost == {hub.host: {"requests": 31, "pulls": 0, "limit": 20, "remaining": 20, "waitForBudget": 15}}
    assert hub.heads == 30 and not hub.pulls
    assert [s.method for s in target.seen] == ["GET"]  # the target's tag list, no HEAD per missing tag
    assert list(report.states) == report.selected  # in the order selected, whatever order they ended in
    assert budget.seen[f"{hub.host} as anonymous"].limit == 20  # the pass told the budget


def test_a_pass_stops_at_a_429_and_names_the_tags_it_deferred(open_reg: Reg, target_reg: Reg) -> None:
    repo = f"test/{uuid.uuid4().hex[:8]}"
    asyncio.run(seed_tags(open_reg, repo, TAGS))
    proxy = FaultProxy("127.0.0.1", open_reg.proc.port).start()
    proxy.add(Rule("HEAD", "/manifests/1.10.0", respond=(429, {"Retry-After": "600"}, b"")))
    try:
        rules = parse_rules(f'mirrors: [{{name: m, source: "{proxy.host}/{repo}", versions: ">=1", '
                            f'targetRegistry: "{target_reg.host}"}}]')  # fmt: skip
        report = asyncio.run(mirror_pass(rules, anonymous, FAST, None))[0]  # Retry-After past the retry budget
    finally:
        proxy.stop()
    assert report.deferred is not None and "rate limited" in report.deferred
    assert report.deferred_tags and "1.10.0" in report.deferred_tags
    assert set(report.deferred_tags) | set(report.states) == set(TAGS)


def test_plan_says_the_pass_cost_and_what_the_budget_would_defer(open_reg: Reg, hub: FakeHub) -> None:
    repo = f"test/{uuid.uuid4().hex[:8]}"
    asyncio.run(seed_tags(open_reg, repo, TAGS))

    async def spend(pulls: int) -> None:
        async with RegistryClient(hub.host, options=FAST) as client:
            for _ in range(pulls):
                await client.fetch_manifest(repo, "1.0.0")

    asyncio.run(spend(4))
    rules = parse_rules(f'mirrors: [{{name: m, source: "{hub.host}/{repo}", versions: ">=1", targetRegistry: "x.io"}}]')
    doc = asyncio.run(plan(rules, Resolver(), FAST, reserve=6))
    cost = doc["mirrors"][0]["cost"]
    assert cost["plan"] == {"requests": 2, "pulls": 0}  # the tag list and one HEAD to learn the limit
    assert cost["pass"]["requests"] == 32 and cost["pass"]["pullsAtMost"] == 30
    assert cost["limit"] == {"pulls": 20, "windowSeconds": 60.0, "remaining": 16, "reserve": 6,
                             "countedFor": "127.0.0.1"}  # fmt: skip
    assert cost["deferred"] == 30 - (16 - 6)
    assert any("20 of 30 imports would wait for the budget" in w for w in doc["warnings"])
