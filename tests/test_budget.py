"""The pull budget without processes: Docker Hub's limit headers read, the ledger's arithmetic on
an injected clock, the process-local budget under concurrency."""

from __future__ import annotations

import asyncio

import pytest

from shared.errors import PullBudgetSpent
from shared.http.budget import Ledger, LocalLedgers, PullBudget
from shared.http.ratelimit import RateLimit, is_pull, read_ratelimit


class Clock:
    def __init__(self, at: float = 1_000_000.0) -> None:
        self.now = at

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def hub(limit: int, remaining: int, window: int = 21600) -> dict[str, str]:
    return {"ratelimit-limit": f"{limit};w={window}", "ratelimit-remaining": f"{remaining};w={window}",
            "docker-ratelimit-source": "203.0.113.9"}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (200, hub(100, 76), RateLimit(100, 76, 21600.0, "203.0.113.9")),
        (200, {"RateLimit-Limit": "200;w=3600"}, RateLimit(limit=200, window=3600.0)),
        (429, {"retry-after": "42", **hub(100, 0)}, RateLimit(100, 0, 21600.0, "203.0.113.9", 42.0, True)),
        (503, {"retry-after": "7"}, RateLimit(retry_after=7.0)),
        (200, {"retry-after": "7"}, None),  # Retry-After on a success says nothing of a limit
        (429, {}, RateLimit(refused=True)),
        (200, {}, None),  # an account without a limit: no headers
        (200, {"ratelimit-limit": "²;w=60", "ratelimit-remaining": "-1;w=x"}, None),
        (200, {"ratelimit-limit": "10;w=99999999"}, RateLimit(limit=10, window=86400.0)),
    ],
)
def test_limit_headers_are_read_as_docker_hub_documents_them(
    status: int, headers: dict[str, str], expected: RateLimit | None
) -> None:
    import httpx

    assert read_ratelimit(status, httpx.Headers({k.encode(): v.encode() for k, v in headers.items()})) == expected


def test_a_pull_is_a_manifest_get() -> None:
    assert is_pull("GET", "/v2/library/nginx/manifests/1.27")
    assert is_pull("GET", "/v2/library/nginx/manifests/sha256:abc")
    assert not is_pull("HEAD", "/v2/library/nginx/manifests/1.27")
    assert not is_pull("GET", "/v2/library/nginx/tags/list")
    assert not is_pull("GET", "/v2/library/nginx/blobs/sha256:abc")
    assert not is_pull("GET", "/v2/a/manifests/b/tags/list")


def test_the_ledger_keeps_any_window_within_the_limit_and_the_reserve() -> None:
    ledger, now = Ledger(), 0.0
    assert ledger.note(RateLimit(limit=10, remaining=10, window=60.0), now)
    taken = sum(ledger.take(1, now + i, reserve=2) for i in range(12))
    assert taken == 8  # 10 less the 2 kept in reserve
    assert ledger.room(now + 11, 2) == 0
    frees = ledger.frees_at(1, now + 11, 2)
    assert 60 <= frees <= 60 + 1 + 6  # the first bucket's end, the window, the latency margin
    assert not ledger.take(1, frees - 0.01, 2)
    assert ledger.take(1, frees, 2)


def test_pulls_the_registry_counts_for_others_are_taken_from_the_budget() -> None:
    ledger = Ledger()
    ledger.note(RateLimit(limit=100, remaining=100, window=600.0), 0.0)
    ledger.take(5, 1.0, 0)
    assert ledger.note(RateLimit(limit=100, remaining=60, window=600.0), 2.0)  # 35 pulls by someone else
    assert ledger.room(3.0, 0) == 60
    assert not ledger.note(RateLimit(limit=100, remaining=60, window=600.0), 3.0)  # nothing new


def test_a_429_stops_every_pull_until_its_retry_after() -> None:
    ledger = Ledger()
    ledger.note(RateLimit(limit=100, remaining=50, window=600.0), 0.0)
    ledger.note(RateLimit(limit=100, remaining=0, window=600.0, retry_after=30.0, refused=True), 1.0)
    assert ledger.room(30.0, 0) == 0
    assert ledger.frees_at(1, 2.0, 0) >= 31.0
    assert ledger.refused == 1


def test_a_registry_that_announces_no_limit_is_not_counted() -> None:
    ledger = Ledger()
    assert all(ledger.take(1, 0.0, reserve=5) for _ in range(1000))
    assert ledger.buckets == []


def test_the_ledger_travels_as_json() -> None:
    ledger = Ledger()
    ledger.note(RateLimit(limit=7, remaining=7, window=60.0, source="acct"), 0.0)
    ledger.take(3, 1.0, 0)
    assert Ledger.from_json(ledger.to_json()) == ledger


def test_a_budget_shared_by_many_tasks_lets_through_only_what_it_holds() -> None:
    clock = Clock()
    budget = PullBudget(LocalLedgers(), reserve=5, clock=clock)
    key = "docker.io as user ci"

    async def main() -> tuple[int, list[PullBudgetSpent]]:
        await budget.note(key, RateLimit(limit=50, remaining=50, window=60.0))
        results = await asyncio.gather(*(budget.take(key) for _ in range(80)), return_exceptions=True)
        spent = [r for r in results if isinstance(r, PullBudgetSpent)]
        return sum(r is None for r in results), spent

    granted, spent = asyncio.run(main())
    assert granted == 45 and len(spent) == 35
    assert spent[0].waiting.startswith("rate limit (until ")
    assert "50 pulls per 60 s, 5 kept in reserve" in str(spent[0])


def test_the_cli_budget_waits_for_the_window_instead_of_failing() -> None:
    clock = Clock()
    budget = PullBudget(reserve=0, wait=True, clock=clock, sleep=clock.sleep)
    key = "docker.io as anonymous"

    async def main() -> None:
        await budget.note(key, RateLimit(limit=2, remaining=2, window=10.0))
        for _ in range(6):
            await budget.take(key)

    asyncio.run(main())
    assert 20 <= clock.now - 1_000_000.0 <= 20 + 3 * 1.5  # three windows of two pulls


def test_an_unlimited_registry_costs_the_budget_nothing() -> None:
    class Counting(LocalLedgers):
        calls = 0

        def change(self, key: str, fn):  # type: ignore[no-untyped-def]
            Counting.calls += 1
            return super().change(key, fn)

    budget = PullBudget(Counting())
    asyncio.run(budget.take("127.0.0.1:5000 as anonymous"))
    assert Counting.calls == 0


def test_a_job_naming_several_accounts_pulls_as_the_one_with_room() -> None:
    from shared.credentials import Anonymous
    from shared.importing.request import ImportRequest
    from shared.service.models import ImportJob
    from shared.service.waiting import Waits

    clock = Clock()
    budget = PullBudget(reserve=0, clock=clock)
    request = ImportRequest.model_validate({
        "targetRegistry": "prod.example", "targetTags": ["app:1"],
        "source": {"registryUri": "docker.io", "sourceImage": "library/app:1", "credential": "hub-a, hub-b"},
    })  # fmt: skip
    job = ImportJob(id="job1", request=request)
    waits = Waits(budget, lambda content, delay: None, statuses=None)  # type: ignore[arg-type]

    async def main() -> tuple[ImportJob, object, ImportJob, PullBudgetSpent | None]:
        for name in ("hub-a", "hub-b"):
            await budget.note(f"docker.io as {name}", RateLimit(limit=2, remaining=2, window=60.0))
        await budget.take("docker.io as hub-a", 2)  # hub-a spent
        chosen, spent = await waits.admit(job, Anonymous())
        await budget.take("docker.io as hub-b", 2)  # both spent
        again, spent_again = await waits.admit(job, Anonymous())
        return chosen, spent, again, spent_again

    chosen, spent, again, spent_again = asyncio.run(main())
    assert spent is None and chosen.request.source.credential == "hub-b"
    assert job.request.source.credential == "hub-a,hub-b"  # the message keeps both for next time
    assert again is job and spent_again is not None and spent_again.until > clock.now


def test_a_rule_may_name_several_credentials() -> None:
    from shared.automation.rules import parse_rules

    rules = parse_rules('mirrors: [{name: m, source: docker.io/library/nginx, tags: ["1"], '
                        'credential: [hub-a, hub-b], targetRegistry: x.io}]')  # fmt: skip
    assert rules.mirrors[0].credential == "hub-a,hub-b"


def test_a_429_from_a_registry_that_announced_no_limit_is_left_to_the_retry_policy() -> None:
    """A registry that says nothing of a limit and answers 429 (a request rate, a hostile one) does
    not make jobs wait for ever: the 429 is retried and then fails as before."""
    ledger = Ledger()
    assert not ledger.note(RateLimit(retry_after=30.0, refused=True), 0.0)
    assert ledger.room(1.0, 0) > 1000 and ledger.blocked_until == 0.0
