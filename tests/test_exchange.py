"""The exchange layer on its own: addresses, parsers of what registries send, pagination,
credentials bound to their origin, the retry policy, redaction. Servers are raw loopback ones
(:mod:`tests.harness.hostile`) sending chosen bytes."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest

from shared.credentials import Anonymous, Secret, UsernamePassword
from shared.engine.plan import Plan, check_acyclic
from shared.errors import (
    CycleError,
    FerryError,
    HostNotFoundError,
    InsecureEndpointError,
    ProtocolError,
    RateLimitedError,
    TransportError,
)
from shared.http.policy import TransportOptions, address_refusal, literal_address
from shared.http.retry import RetryPolicy
from shared.oci import mediatypes as mt
from shared.oci.digest import Digest
from shared.oci.manifest import Descriptor
from shared.registry import RegistryClient, next_link
from shared.registry.challenge import parse_challenge, parse_challenges
from shared.registry.tokens import MAX_LIFETIME, expires_at
from shared.strict import header_int, loads_bounded, loads_strict
from shared.text import clean, register_secret
from tests.harness.figures import record
from tests.harness.hostile import hostile_server, response

OPTIONS = TransportOptions(allow_loopback=True, max_attempts=2, backoff_base=0.01, backoff_cap=0.05, max_pages=20)

# -- addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("169.254.169.254", "link-local"),
        ("168.63.129.16", "cloud-internal"),  # Azure's WireServer
        ("100.100.100.200", "private"),  # shared address space, a cloud metadata address
        ("100.64.0.1", "private"),
        ("224.0.1.1", "multicast"),
        ("ff0e::1", "multicast"),
        ("2002:a9fe:a9fe::1", "embedded"),  # 6to4 of 169.254.169.254
        ("64:ff9b::a9fe:a9fe", "embedded"),  # NAT64 of 169.254.169.254
        ("::ffff:169.254.169.254", "embedded"),  # IPv4-mapped
        ("2852039166", "169.254.169.254"),  # inet_aton spellings of the metadata address
        ("0xa9fea9fe", "169.254.169.254"),
        ("169.254.43518", "169.254.169.254"),
        ("0251.0376.0251.0376", "169.254.169.254"),
        ("0.0.0.0", "private"),
        ("10.1.2.3", "private"),
        ("fd00::1", "private"),
    ],
)
def test_addresses_that_are_not_globally_routable_are_refused(host: str, reason: str) -> None:
    refusal = address_refusal(host)
    assert refusal is not None and reason in refusal, refusal
    options = TransportOptions()
    authority = f"[{host}]:443" if ":" in host else f"{host}:443"
    with pytest.raises(InsecureEndpointError, match="refused"):  # through a proxy: the literal alone is judged
        options.refuse(authority, [], what="source registry x")
    record(f"SSRF refused: {host}", {"reason": f"{refusal} (where the connection is made)"})


@pytest.mark.parametrize("host", ["8.8.8.8", "2001:4860::8888", "registry.example", "cafe.de", "20.1.2.3"])
def test_global_addresses_and_names_pass(host: str) -> None:
    assert address_refusal(host) is None


def test_inet_aton_spellings_are_read_as_addresses() -> None:
    assert str(literal_address("2852039166")) == "169.254.169.254"
    assert literal_address("registry-1.docker.io") is None
    assert literal_address("deadbeef") is None  # a name: inet_aton wants 0x for hex


def test_names_that_resolve_to_embedded_refused_addresses_are_refused_when_connecting() -> None:
    with pytest.raises(InsecureEndpointError, match="embedded"):
        TransportOptions().refuse("evil.example:443", ["2002:a9fe:a9fe::1"], what="source registry evil.example")


# -- numbers and JSON from a peer -------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("12", 12), (" 7 ", 7), ("²", None), ("٣", None), ("1" * 20, None),
                                              ("-1", None), ("1e3", None), ("", None), (b"42", 42)])  # fmt: skip
def test_header_numbers_are_ascii_digits_in_range(text: str | bytes, value: int | None) -> None:
    assert header_int(text) == value


def test_deep_json_is_refused_not_recursed_into() -> None:
    assert loads_bounded(b"[" * 5000) is None
    assert loads_bounded(b'["[[[[", {"a": "{{{{"}]') == ["[[[[", {"a": "{{{{"}]  # brackets in strings
    with pytest.raises(ValueError, match="nested more than"):
        loads_strict(b"[" * 100 + b"]" * 100)


def test_token_lifetimes_from_a_peer_are_bounded() -> None:
    huge = 10**400
    assert expires_at(1000.0, huge) == 1000.0 + 60  # not believed: the default
    assert expires_at(1000.0, float("inf")) == 1000.0 + 60
    assert expires_at(1000.0, 300) == 1300.0
    assert expires_at(1000.0, 10**9) == 1000.0 + MAX_LIFETIME


# -- challenges and links ---------------------------------------------------------------------


def test_several_challenges_in_one_header_prefer_bearer() -> None:
    header = 'Bearer realm="https://auth.example/token",service="reg", Basic realm="Registry Realm"'
    challenges = parse_challenges(header)
    assert [c.scheme for c in challenges] == ["bearer", "basic"]
    chosen = parse_challenge(header)
    assert chosen is not None and chosen.realm == "https://auth.example/token" and chosen.service == "reg"
    basic_first = parse_challenge('Basic realm="x", Bearer realm="https://a/t",scope="repository:a:pull"')
    assert basic_first is not None and basic_first.scheme == "bearer" and basic_first.scopes == ("repository:a:pull",)
    assert parse_challenge('Bearer realm="a\\"b"') == parse_challenge('Bearer realm="a\\"b"')
    escaped = parse_challenge('Bearer realm="a\\"b"')
    assert escaped is not None and escaped.realm == 'a"b'


@pytest.mark.timeout(5)
def test_64_kib_headers_parse_in_linear_time() -> None:
    for header in ("Bearer " + "a=b, " * 13_000, 'Bearer realm="' + "\\a" * 32_000, "x" * 65_536, "=" * 65_536):
        parse_challenges(header)
    link = httpx.Response(200, headers={"Link": "<" * 65_536}, request=httpx.Request("GET", "http://r/v2/"))
    assert next_link(link) is None
    link = httpx.Response(200, headers={"Link": "<a>;" * 16_000}, request=httpx.Request("GET", "http://r/v2/"))
    assert next_link(link) is None


def test_next_link_reads_rel_lists_and_several_links() -> None:
    request = httpx.Request("GET", "http://r/v2/a/tags/list")
    answer = httpx.Response(200, headers={"Link": '</prev>; rel="prev", </v2/a/tags/list?last=x>; rel="next"'},
                            request=request)  # fmt: skip
    assert str(next_link(answer)) == "http://r/v2/a/tags/list?last=x"
    answer = httpx.Response(200, headers={"Link": '</n>; title="x"; rel="last next"'}, request=request)
    assert str(next_link(answer)) == "http://r/n"


# -- pagination --------------------------------------------------------------------------------


def _tags_page(path: str, host: str, next_path: str | None) -> bytes:
    headers = {"Content-Type": "application/json"}
    if next_path is not None:
        headers["Link"] = f'<{next_path}>; rel="next"'
    return response(200, json.dumps({"name": "a", "tags": [path]}).encode(), headers)


async def test_pagination_without_end_stops_at_the_page_limit() -> None:
    counter = iter(range(10**6))

    def answer(method: str, path: str, headers: dict[str, str]) -> bytes:
        return _tags_page(path, headers["host"], f"/v2/a/tags/list?last={next(counter)}")

    with hostile_server(answer) as (host, seen):
        async with RegistryClient(host, Anonymous(), OPTIONS) as client:
            with pytest.raises(ProtocolError, match="past 20 pages"):
                await client.list_tags("a")
    assert len(seen) == 20


async def test_a_tag_list_that_is_an_array_is_a_protocol_error() -> None:
    with hostile_server(lambda m, p, h: response(200, b'["1.0", "2.0"]')) as (host, _):
        async with RegistryClient(host, Anonymous(), OPTIONS) as client:
            with pytest.raises(ProtocolError, match="tag list is not"):
                await client.list_tags("a")


async def test_a_link_to_another_origin_gets_neither_the_password_nor_a_request() -> None:
    with hostile_server(lambda m, p, h: response(200, b'{"tags": ["elsewhere"]}'), "127.0.0.2") as (decoy, seen):

        def answer(method: str, path: str, headers: dict[str, str]) -> bytes:
            if "authorization" not in headers:
                return response(401, b"", {"WWW-Authenticate": 'Basic realm="r"'})
            return _tags_page(path, headers["host"], f"http://{decoy}/v2/a/tags/list?last=1")

        with hostile_server(answer) as (host, _):
            credential = UsernamePassword("alice", Secret("link-s3cret-pw"))
            async with RegistryClient(host, credential, OPTIONS) as client:
                with pytest.raises(ProtocolError, match="another origin"):
                    await client.list_tags("a")
    assert seen == []


async def test_credentials_go_only_to_the_registry_origin() -> None:
    """The auth flow itself: a request elsewhere carries no Authorization, and its 401 challenge
    is not learned (the registry's own challenge keeps being answered)."""
    asked: list[tuple[str, str]] = []

    def registry(method: str, path: str, headers: dict[str, str]) -> bytes:
        asked.append((headers["host"], headers.get("authorization", "")))
        if "authorization" not in headers:
            return response(401, b"", {"WWW-Authenticate": 'Basic realm="r"'})
        return response(200, b"{}")

    def elsewhere(method: str, path: str, headers: dict[str, str]) -> bytes:
        asked.append((headers["host"], headers.get("authorization", "")))
        return response(401, b"", {"WWW-Authenticate": 'Bearer realm="http://127.0.0.3/token"'})

    with hostile_server(registry) as (host, _), hostile_server(elsewhere, "127.0.0.2") as (other, _):
        async with RegistryClient(host, UsernamePassword("u", Secret("origin-s3cret")), OPTIONS) as client:
            await client.ping()
            await client.transport.http.get(f"http://{other}/v2/")
            await client.ping()
    auths = dict.fromkeys(h for h, a in asked if a)
    assert list(auths) == [host]  # the other origin never saw Authorization
    assert client.transport.auth._challenge is not None and client.transport.auth._challenge.scheme == "basic"


# -- names that do not resolve -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("errno", "cls", "attempts"), [(socket.EAI_NONAME, HostNotFoundError, 1), (socket.EAI_AGAIN, TransportError, 2)]
)
async def test_a_name_that_does_not_exist_is_permanent_a_resolver_hiccup_is_not(
    monkeypatch: pytest.MonkeyPatch, errno: int, cls: type[FerryError], attempts: int
) -> None:
    calls = 0

    async def getaddrinfo(*args: object, **kwargs: object) -> list[object]:
        nonlocal calls
        calls += 1
        raise socket.gaierror(errno, "resolver says no")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    async with RegistryClient("nowhere.example", Anonymous(), OPTIONS, role="target") as client:
        with pytest.raises(cls) as caught:
            await client.resolve("a/b", "v1")
    assert type(caught.value) is cls and calls == attempts
    if cls is HostNotFoundError:
        assert str(caught.value) == "target registry nowhere.example: host not found"
        assert caught.value.code == "HOST_NOT_FOUND" and not caught.value.retryable


# -- the retry policy --------------------------------------------------------------------------


async def test_retry_after_is_a_floor_within_the_budget_and_the_give_up_says_so() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    clock = iter(range(0, 1000, 1))
    policy = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.02, budget=100, sleep=sleep,
                         clock=lambda: float(next(clock)))  # fmt: skip
    attempts = policy.start()
    error = RateLimitedError(
        op="op",
        origin="source registry r",
        method="GET",
        url="http://r/",
        status=429,
        retry_after=7.0,
        problem="slow down",
    )
    await attempts.failed(error)
    await attempts.failed(error)
    with pytest.raises(RateLimitedError) as caught:
        await attempts.failed(error)
    assert slept == [7.0, 7.0]
    assert str(caught.value).endswith("(3 attempts over 3 s)")


async def test_a_retry_after_past_the_budget_fails_at_once() -> None:
    policy = RetryPolicy(max_attempts=5, budget=10)
    error = RateLimitedError(
        op="op", origin="r", method="GET", url="http://r/", status=429, retry_after=3600.0, problem="later"
    )
    with pytest.raises(RateLimitedError):
        await policy.start().failed(error)


# -- text from a registry ----------------------------------------------------------------------


def test_secrets_and_control_characters_never_reach_a_message() -> None:
    register_secret("dGhlLWJhc2U2NC1mb3Jt")
    secret = Secret("the-planted-password")
    error = ProtocolError(op="op", origin="source registry r", method="GET", url="http://r/", status=400, registry_code="X", registry_message="echo: Basic dGhlLWJhc2U2NC1mb3Jt the-planted-password\x1b[2J\r\nferry: forged", problem="refused: \x1b[31mred\u202e")  # fmt: skip
    text = str(error) + error.detail
    assert secret.reveal() not in text and "dGhlLWJhc2U2NC1mb3Jt" not in text
    assert "\x1b" not in text and "\r" not in text and "\n" not in text and "\u202e" not in text
    assert "***" in error.detail and "\\x1b" in error.detail
    assert clean("plain text") == "plain text"


# -- graphs ------------------------------------------------------------------------------------


def _manifest(name: str) -> Descriptor:
    return Descriptor(mt.OCI_INDEX, Digest.of(name.encode()), 10)


def test_a_graph_that_reaches_itself_is_a_cycle() -> None:
    a, b, c = _manifest("a"), _manifest("b"), _manifest("c")
    plan = Plan(a, children={a.digest: (b, c), b.digest: (c,), c.digest: (b,)})
    with pytest.raises(CycleError, match="reaches itself"):
        check_acyclic(plan)
    check_acyclic(Plan(a, children={a.digest: (b, c), b.digest: (c,), c.digest: ()}))  # a diamond is fine
