"""The API's client as the CLI uses it, against a fake of what cannot run here (the Functions
host's key check, Easy Auth) and of a service that answers badly."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from shared.errors import ServiceError
from shared.service.client import ServiceClient


def test_the_function_key_is_sent_and_a_refusal_says_what_to_set() -> None:
    """The Functions host checks ``x-functions-key`` (a fake of that check: no host runs here)."""
    seen: list[httpx.Request] = []

    def host(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("x-functions-key") != "the-right-key-0123456789":
            return httpx.Response(401)
        return httpx.Response(200, json={"id": "1", "state": "queued"})

    good = ServiceClient("https://ferry.example/api/", function_key="the-right-key-0123456789",
                         transport=httpx.MockTransport(host))  # fmt: skip
    assert good.job("1")["state"] == "queued" and str(seen[0].url) == "https://ferry.example/api/imports/1"
    bad = ServiceClient(
        "https://ferry.example", function_key="a-wrong-key-0123456789", transport=httpx.MockTransport(host)
    )
    with pytest.raises(ServiceError) as caught:
        bad.job("1")
    assert caught.value.code == "SERVICE_UNAUTHORIZED" and "FERRY_FUNCTION_KEY" in str(caught.value)
    assert "a-wrong-key" not in str(caught.value)


def test_an_entra_token_is_sent_for_easy_auth_and_answers_are_bounded() -> None:
    """With Easy Auth the app wants a bearer token (``FERRY_SERVICE_SCOPE``); whatever answers,
    at most 4 MiB is read and a body that is not a JSON document is an error, not a crash."""
    answers = iter([
        httpx.Response(200, json={"items": [], "next": None}),
        httpx.Response(200, content=b"x" * (4 * 1024 * 1024 + 1)),
        httpx.Response(502, content=b"<html>Bad Gateway</html>"),
        httpx.Response(200, content=b"[[[[" * 1000),
    ])  # fmt: skip
    seen: list[httpx.Request] = []

    def app(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(answers)

    client = ServiceClient(
        "https://ferry.example", token=lambda: "entra-token-for-the-app-0123", transport=httpx.MockTransport(app)
    )
    assert client.jobs()["items"] == [] and seen[0].headers["authorization"] == "Bearer entra-token-for-the-app-0123"
    for expected in ("over 4 MiB", "answered 502 with no JSON document", "answered 200 with no JSON document"):
        with pytest.raises(ServiceError) as caught:
            client.jobs()
        assert expected in str(caught.value) and "entra-token" not in str(caught.value)


def test_the_api_s_fields_are_named_as_the_flags_that_set_them() -> None:
    from shared.cli_service import flag_of

    assert flag_of("targetRegistry") == "--name"
    assert flag_of("source.credentials.password") == "--username/--password"
    assert [flag_of(f"targetTags[{i}]") for i in (0, 1, 2, 3, 10, 11, 12, 20, 22)] == [
        "--image (1st)", "--image (2nd)", "--image (3rd)", "--image (4th)", "--image (11th)",
        "--image (12th)", "--image (13th)", "--image (21st)", "--image (23rd)",
    ]  # fmt: skip
    assert flag_of("platforms[0]") == "--platform (1st)" and flag_of("whatever") == "whatever"


def test_a_key_in_the_service_url_goes_in_the_header_and_nowhere_else() -> None:
    seen: list[httpx.Request] = []

    def host(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404, json={"code": "NOT_FOUND", "message": "no import job '1'"})

    client = ServiceClient(
        "https://app.example/api/?code=key-from-the-portal-0123", transport=httpx.MockTransport(host)
    )
    assert client.url == "https://app.example"
    with pytest.raises(ServiceError) as caught:
        client.job("1")
    assert str(seen[0].url) == "https://app.example/api/imports/1"
    assert seen[0].headers["x-functions-key"] == "key-from-the-portal-0123"
    assert caught.value.code == "NOT_FOUND" and "key-from-the-portal" not in str(caught.value)


def test_a_key_or_token_is_never_sent_over_plain_http_but_to_loopback() -> None:
    with pytest.raises(ValueError, match="over https only"):
        ServiceClient("http://ferry.example", function_key="a-key-0123456789")
    with pytest.raises(ValueError, match="over https only"):
        ServiceClient("http://10.0.0.4:7071", token=lambda: "t")
    ServiceClient("http://127.0.0.1:7071", function_key="a-key-0123456789").close()
    ServiceClient("http://ferry.example").close()  # nothing to protect: allowed


def test_an_answer_that_trickles_is_given_up_after_a_minute() -> None:
    """Each piece comes within the read timeout, but the answer never ends: the whole answer is
    bounded, on an injected clock."""
    now = [0.0]

    def trickle() -> Iterator[bytes]:
        for _ in range(10_000):
            now[0] += 20.0  # each piece 20 s after the last
            yield b" "

    client = ServiceClient(
        "https://ferry.example",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, content=trickle())),
        clock=lambda: now[0],
    )
    with pytest.raises(ServiceError, match="did not finish its answer within 60 s"):
        client.jobs()
    assert now[0] <= 100.0  # given up at the first piece past the minute
