"""Run events delivered over loopback: to a webhook receiver that checks Standard Webhooks
signatures with the ``standardwebhooks`` package, and to a fake Event Grid topic that follows the
documented publish protocol. Retries, the bound on them, the failures-only filter, and the same
address policy as registry calls."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.events.config import FAILURES, Destination, EventsConfig
from shared.events.delivery import Outcome, deliver, wanted
from shared.events.publish import EVENTGRID_SCOPE, Publisher
from shared.events.signing import headers as signed_headers
from shared.http.policy import TransportOptions
from shared.runs.event import encode
from tests.harness.webhooks import EventGridCredential, FakeEventGrid, WebhookReceiver
from tests.test_runs_model import SECRET

EVENT: dict[str, Any] = {
    "specversion": "1.0",
    "id": "r1.ended",
    "source": "/ferry",
    "type": "ferry.run.failed",
    "subject": "r1",
    "data": {"runId": "r1", "state": "failed"},
}
LOOPBACK = TransportOptions(allow_loopback=True)
FAST = EventsConfig(delivery_seconds=5.0, timeout=2.0, backoff_base=0.01, backoff_cap=0.05)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(SECRET).start()
    yield server
    server.stop()


@pytest.fixture
def topic() -> Iterator[FakeEventGrid]:
    server = FakeEventGrid(key="the-topic-key-0123456789").start()
    yield server
    server.stop()


def hook(url: str, states: frozenset[str] = FAILURES | {"succeeded", "cancelled"}) -> Destination:
    from shared.credentials import Secret

    return Destination("ops", "webhook", url, Secret(SECRET), states)


def send(destinations: list[Destination], config: EventsConfig = FAST, **kw: Any) -> dict[str, Outcome]:
    reports: list[tuple[str, Outcome]] = []

    async def report(name: str, outcome: Outcome) -> None:
        reports.append((name, outcome))

    async def go() -> dict[str, Outcome]:
        publisher = Publisher(kw.pop("transport", LOOPBACK), timeout=config.timeout, **kw)
        try:
            return await deliver(config, publisher, EVENT["id"], encode(EVENT), destinations, report)
        finally:
            await publisher.aclose()

    outcomes = asyncio.run(go())
    assert dict(reports) == outcomes  # each outcome is reported, for the run to record it
    return outcomes


def test_a_webhook_gets_the_event_signed_as_standard_webhooks_says(receiver: WebhookReceiver) -> None:
    outcome = send([hook(receiver.url + "/hook")])["ops"]
    assert outcome["state"] == "delivered" and outcome["attempts"] == 1 and outcome["status"] == 204
    [request] = receiver.requests
    assert request["event"] == EVENT  # verified by the standardwebhooks package
    assert request["headers"]["webhook-id"] == "r1.ended"
    assert request["headers"]["content-type"] == "application/cloudevents+json; charset=utf-8"


def test_the_signature_is_the_one_the_spec_gives() -> None:
    """The Standard Webhooks specification's own example (its README): secret, id, timestamp, body."""
    from shared.credentials import Secret

    got = signed_headers(
        Secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert got["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_failing_webhook_is_retried_with_the_same_id_until_it_takes_the_event(receiver: WebhookReceiver) -> None:
    receiver.answer((500, 0.0), (503, 0.0))
    outcome = send([hook(receiver.url)])["ops"]
    assert outcome["state"] == "delivered" and outcome["attempts"] == 3
    assert [r["status"] for r in receiver.requests] == [500, 503, 204]
    assert {r["headers"]["webhook-id"] for r in receiver.requests} == {"r1.ended"}


def test_a_webhook_that_keeps_failing_is_recorded_undelivered_within_the_bound(receiver: WebhookReceiver) -> None:
    receiver.answer(*[(503, 0.0)] * 1000)
    config = EventsConfig(delivery_seconds=0.5, timeout=1.0, backoff_base=0.05, backoff_cap=0.1)
    outcome = send([hook(receiver.url)], config)["ops"]
    assert outcome["state"] == "undelivered" and outcome["status"] == 503
    assert outcome["error"] == "answered 503 Service Unavailable"
    assert 2 <= outcome["attempts"] == len(receiver.requests) < 40


def test_a_webhook_that_refuses_the_event_is_not_asked_again(receiver: WebhookReceiver) -> None:
    receiver.answer((400, 0.0))
    outcome = send([hook(receiver.url)])["ops"]
    assert outcome["state"] == "undelivered" and outcome["attempts"] == 1


def test_a_slow_webhook_times_out_and_is_tried_again(receiver: WebhookReceiver) -> None:
    receiver.answer((204, 1.5))
    config = EventsConfig(delivery_seconds=10.0, timeout=0.3, backoff_base=0.01, backoff_cap=0.02)
    outcome = send([hook(receiver.url)], config)["ops"]
    assert outcome["state"] == "delivered" and outcome["attempts"] == 2


def test_a_destination_takes_only_the_runs_it_asked_for() -> None:
    config = EventsConfig(destinations=(hook("https://a/x", FAILURES), hook("https://b/x")))
    assert [d.url for d in wanted(config, "succeeded")] == ["https://b/x"]
    assert [d.url for d in wanted(config, "partial")] == ["https://a/x", "https://b/x"]


@pytest.mark.parametrize(
    ("url", "transport", "reason"),
    [
        ("http://127.0.0.1:{port}/x", TransportOptions(), "loopback"),
        ("http://169.254.169.254/metadata", LOOPBACK, "plain HTTP"),
        ("https://169.254.169.254/metadata", LOOPBACK, "link-local"),
        ("http://example.com/hook", LOOPBACK, "plain HTTP"),
    ],
)
def test_an_event_goes_only_where_a_registry_call_may(
    receiver: WebhookReceiver, url: str, transport: TransportOptions, reason: str
) -> None:
    outcome = send([hook(url.format(port=receiver.port))], transport=transport)["ops"]
    assert outcome["state"] == "undelivered" and outcome["attempts"] == 1
    assert reason in (outcome["error"] or "")
    assert receiver.requests == []


def test_no_secret_is_logged_or_recorded(receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.answer((500, 0.0))
    outcome = send([hook(receiver.url)])
    sent = receiver.requests[0]["headers"]["webhook-signature"]
    for text in (caplog.text, repr(outcome)):
        assert SECRET not in text and SECRET.removeprefix("whsec_") not in text and sent not in text


def test_event_grid_gets_a_cloudevents_batch_with_an_entra_token(topic: FakeEventGrid) -> None:
    identity = EventGridCredential()
    destination = Destination("main", "eventgrid", topic.endpoint)
    outcome = send([destination], identity=lambda: identity)["main"]
    assert outcome["state"] == "delivered" and outcome["status"] == 200
    assert topic.received == [EVENT] and topic.refusals == []
    assert identity.scopes == [(EVENTGRID_SCOPE,)]


def test_event_grid_without_an_identity_is_undelivered_and_says_why(topic: FakeEventGrid) -> None:
    outcome = send([Destination("main", "eventgrid", topic.endpoint)])["main"]
    assert outcome["state"] == "undelivered" and "managed identity" in (outcome["error"] or "")


def test_an_event_over_event_grids_limit_is_not_sent(topic: FakeEventGrid) -> None:
    big = {**EVENT, "data": {"x": "a" * (1024 * 1024)}}

    async def go() -> Any:
        publisher = Publisher(LOOPBACK, identity=EventGridCredential)
        try:
            return await publisher.send(Destination("main", "eventgrid", topic.endpoint), "r1.ended", encode(big))
        finally:
            await publisher.aclose()

    attempt = asyncio.run(go())
    assert attempt.permanent and "1048576-byte limit" in (attempt.error or "")
    assert topic.received == [] and topic.refusals == []


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"Content-Type": "application/json"}, b"[]", 400),
        ({"Content-Type": "application/cloudevents-batch+json; charset=utf-8"}, b'[{"id": "1"}]', 400),
        ({}, b"[]", 401),
        ({"Authorization": "Bearer not-a-token"}, b"[]", 401),
        ({}, b"[" + b" " * (1024 * 1024) + b"]", 413),
    ],
)
def test_the_fake_topic_refuses_what_event_grid_refuses(
    topic: FakeEventGrid, headers: dict[str, str], body: bytes, status: int
) -> None:
    if status == 400:
        headers = {**headers, "aeg-sas-key": "the-topic-key-0123456789"}
    else:
        headers = {"Content-Type": "application/cloudevents-batch+json; charset=utf-8", **headers}
    answer = httpx.post(topic.endpoint + "?api-version=2018-01-01", headers=headers, content=body)
    assert answer.status_code == status
    assert topic.received == []


def test_make_ups_receiver_takes_a_signed_event_and_refuses_a_forged_one() -> None:
    import io

    from scripts.receiver import server
    from shared.credentials import Secret
    from tests.harness import loopback

    out = io.StringIO()
    httpd = server(0, Secret(SECRET), out)
    loopback.serve(httpd)
    url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    try:
        assert send([hook(url)])["ops"]["state"] == "delivered"
        forged = httpx.post(
            url,
            content=encode(EVENT),
            headers={"webhook-id": "x", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"},
        )
        assert forged.status_code == 401
    finally:
        loopback.stop(httpd)
    assert out.getvalue().splitlines() == [
        "ferry.run.failed r1 (None, ): 0 succeeded, 0 failed, 0 cancelled of 0, 0 bytes",
        "refused a delivery: bad or old signature",
    ]


def test_a_webhook_urls_token_never_shows_in_a_log_or_an_outcome(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Chat services put the webhook's token in its path: httpx's own request line logged it."""
    caplog.set_level(logging.DEBUG)
    receiver.answer((500, 0.0))
    outcome = send([hook(receiver.url + "/services/T000/B000/tokenXYZ123456")])["ops"]
    assert outcome["state"] == "delivered" and outcome["attempts"] == 2
    assert "HTTP Request: POST" in caplog.text
    assert "tokenXYZ123456" not in caplog.text and "tokenXYZ123456" not in repr(outcome)
