"""The pull budget against a fake Docker Hub (tests/harness/fakehub.py) in front of a real
registry that enforces a small pull limit with Docker Hub's headers and 429s, the budget kept in
Azurite's table and shared by several budgets as several workers would hold them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
from azure.data.tables import TableServiceClient

from shared.azure_storage.budget import TableLedgers
from shared.credentials import Secret, UsernamePassword
from shared.errors import PullBudgetSpent
from shared.http.budget import PullBudget
from shared.registry import RegistryClient
from tests.conftest import FAST, Reg
from tests.harness.azurite import Azurite
from tests.harness.fakehub import FakeHub
from tests.harness.images import make_image, push_image


@pytest.fixture
def hub(open_reg: Reg) -> Iterator[FakeHub]:
    proxy = FakeHub("127.0.0.1", open_reg.proc.port, limit=10, window=2.0).start()
    yield proxy
    proxy.stop()


def table(azurite: Azurite) -> TableLedgers:
    client = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(
        f"budget{uuid.uuid4().hex[:10]}"
    )
    client.create_table()
    return TableLedgers(client)


async def seed_image(reg: Reg, repo: str) -> str:
    image = make_image((10,), seed=repo)
    async with reg.client() as client:
        return str(await push_image(client, repo, image, "v1"))


def test_workers_sharing_a_table_budget_never_meet_the_limit(open_reg: Reg, hub: FakeHub, azurite: Azurite) -> None:
    """Four budgets (four workers) on one table: 30 pulls against a limit of 10 per 2 s all go
    through, waiting for the window, and the fake Hub refuses none."""
    repo = f"test/{uuid.uuid4().hex[:8]}"
    asyncio.run(seed_image(open_reg, repo))
    ledgers = table(azurite)

    async def worker(pulls: int) -> int:
        budget = PullBudget(ledgers, reserve=2, wait=True)
        async with RegistryClient(hub.host, options=FAST, budget=budget) as client:
            for _ in range(pulls):
                await client.resolve(repo, "v1")  # a HEAD: free, and it tells the budget the limit
                await client.fetch_manifest(repo, "v1")
            return client.transport.pulls

    async def main() -> list[int]:
        return await asyncio.gather(*(worker(n) for n in (8, 8, 7, 7)))

    started = time.monotonic()
    sent = asyncio.run(main())
    elapsed = time.monotonic() - started
    assert sum(sent) == 30 == sum(hub.pulls.values())
    assert sum(hub.refused.values()) == 0
    assert hub.most_in_any_window() <= 10 - 2  # the reserve was left alone
    assert elapsed >= 2 * 2.0  # 30 pulls at 8 a window: at least three windows
    ledger = ledgers.all()[f"{hub.host} as anonymous"]
    assert ledger.limit == 10 and ledger.window == 2.0 and ledger.refused == 0
    assert ledger.source == "127.0.0.1"


def test_a_spent_budget_sends_nothing_and_says_until_when(open_reg: Reg, hub: FakeHub, azurite: Azurite) -> None:
    repo = f"test/{uuid.uuid4().hex[:8]}"
    asyncio.run(seed_image(open_reg, repo))
    budget = PullBudget(table(azurite), reserve=0)

    async def main() -> PullBudgetSpent:
        async with RegistryClient(hub.host, options=FAST, budget=budget) as client:
            await client.resolve(repo, "v1")
            for _ in range(10):
                await client.fetch_manifest(repo, "v1")
            with pytest.raises(PullBudgetSpent) as spent:
                await client.fetch_manifest(repo, "v1")
            return spent.value

    spent = asyncio.run(main())
    assert sum(hub.pulls.values()) == 10 and sum(hub.refused.values()) == 0
    assert 0 < spent.until - time.time() <= 2.0 + 0.5 + 0.1  # the window, the latency margin, a bucket
    assert spent.waiting.startswith("rate limit (until ")


def test_a_429_blocks_the_budget_for_its_retry_after(open_reg: Reg, hub: FakeHub) -> None:
    """Pulls the budget did not know of (someone else's) spend the limit: the 429 that follows
    stops every later pull until its Retry-After instead of retrying into the wall."""
    repo = f"test/{uuid.uuid4().hex[:8]}"
    asyncio.run(seed_image(open_reg, repo))
    for _ in range(10):
        hub.admit("127.0.0.1", True)  # another client on the same address spends it all
    budget = PullBudget(reserve=0)

    async def main() -> None:
        async with RegistryClient(hub.host, options=FAST, budget=budget) as client:
            await client.resolve(repo, "v1")  # remaining 0: the budget counts the others' pulls
            with pytest.raises(PullBudgetSpent):
                await client.fetch_manifest(repo, "v1")

    asyncio.run(main())
    assert sum(hub.refused.values()) == 0  # known before asking: nothing sent into the wall


def test_accounts_are_budgets_of_their_own(open_reg: Reg, open_reg_hub_accounts: FakeHub) -> None:
    hub = open_reg_hub_accounts
    repo = f"test/{uuid.uuid4().hex[:8]}"
    asyncio.run(seed_image(open_reg, repo))
    budget = PullBudget(reserve=0)

    async def pulls(user: str) -> int:
        credential = UsernamePassword(user, Secret(hub.accounts[user]))
        async with RegistryClient(hub.host, credential, FAST, budget=budget) as client:
            await client.resolve(repo, "v1")
            done = 0
            try:
                for _ in range(20):
                    await client.fetch_manifest(repo, "v1")
                    done += 1
            except PullBudgetSpent:
                pass
            return done

    assert asyncio.run(pulls("hub1")) == 10
    assert asyncio.run(pulls("hub2")) == 10
    assert hub.pulls == {"hub1": 10, "hub2": 10} and not hub.refused


@pytest.fixture
def open_reg_hub_accounts(open_reg: Reg) -> Iterator[FakeHub]:
    proxy = FakeHub("127.0.0.1", open_reg.proc.port, limit=10, window=30.0, accounts={"hub1": "pw1", "hub2": "pw2"})
    yield proxy.start()
    proxy.stop()
