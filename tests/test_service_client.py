"""The API's client as the CLI uses it, against a fake of what cannot run here (the Functions
host's key check, Easy Auth) and of a service that answers badly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.errors import ServiceError
from shared.importing.result import BlobCounts, DryRunPlan, ImportResult, PlannedManifest
from shared.service.client import ServiceClient

#: A queued job as ``GET /api/imports/{id}`` answers it.
QUEUED = {"id": "1", "state": "queued", "createdAt": "2026-12-01T10:00:00Z", "updatedAt": "2026-12-01T10:00:00Z"}


def test_the_function_key_is_sent_and_a_refusal_says_what_to_set() -> None:
    """The Functions host checks ``x-functions-key`` (a fake of that check: no host runs here)."""
    seen: list[httpx.Request] = []

    def host(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("x-functions-key") != "the-right-key-0123456789":
            return httpx.Response(401)
        return httpx.Response(200, json=QUEUED)

    good = ServiceClient("https://ferry.example/api/", function_key="the-right-key-0123456789",
                         transport=httpx.MockTransport(host))  # fmt: skip
    assert good.job("1").state == "queued" and str(seen[0].url) == "https://ferry.example/api/imports/1"
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
    assert client.jobs().items == [] and seen[0].headers["authorization"] == "Bearer entra-token-for-the-app-0123"
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


def _service(answers: dict[tuple[str, str], httpx.Response]) -> ServiceClient:
    def app(request: httpx.Request) -> httpx.Response:
        return answers[(request.method, request.url.path)]

    return ServiceClient("https://ferry.example", transport=httpx.MockTransport(app))


def test_answers_are_read_as_the_api_s_models() -> None:
    """The CLI reads attributes of the API's own models: a job with its progress and its result
    (an import's, or the sessions a cancelled one left), a run with its counts, a 202."""
    progress = {"manifestsTotal": 2, "blobsTotal": 3, "bytesTotal": 300, "manifestsDone": 1, "manifestsPresent": 0,
                "blobsCopied": 1, "blobsMounted": 0, "blobsPresent": 1, "blobsForeign": 0, "bytesMoved": 100,
                "bytesSkipped": 100, "seconds": 0.5}  # fmt: skip
    done = {**QUEUED, "state": "succeeded", "progress": progress,
            "result": {"source": "src.example/a:1", "digest": "sha256:" + "a" * 64, "blobs": {"total": 3, "copied": 1,
                       "mounted": 0, "present": 2, "foreign": 0}, "seconds": 1}}  # fmt: skip
    left = {**QUEUED, "id": "2", "state": "cancelled", "result": {"uploadSessionsLeft": ["https://r.example/u/1"]}}
    run = {"id": "r1", "kind": "batch", "state": "partial", "counts": {"total": 3, "succeeded": 2, "failed": 1},
           "createdAt": "2026-12-01T10:00:00Z", "updatedAt": "2026-12-01T10:01:00Z"}  # fmt: skip
    accepted = {"id": "r2", "state": "running", "location": "/api/runs/r2", "created": True,
                "jobs": [{"retryOf": "j1", "id": "j2"}, {"retryOf": "j3", "error": "not failed"}]}  # fmt: skip
    client = _service({
        ("GET", "/api/imports/1"): httpx.Response(200, json=done),
        ("GET", "/api/imports/2"): httpx.Response(200, json=left),
        ("GET", "/api/runs/r1"): httpx.Response(200, json=run),
        ("POST", "/api/runs/r1/retry"): httpx.Response(202, json=accepted),
    })  # fmt: skip
    status = client.job("1")
    assert status.progress is not None and status.progress["bytesMoved"] == 100
    assert status.result is not None and status.result["digest"] == "sha256:" + "a" * 64
    assert status.result["blobs"]["present"] == 2
    assert status.model_dump(mode="json")["result"] == done["result"]  # as the API sent it, no field added
    cancelled = client.job("2").result
    assert cancelled is not None and cancelled["uploadSessionsLeft"] == ["https://r.example/u/1"]
    shown = client.run("r1")
    assert (shown.state, shown.counts.succeeded, shown.counts.failed, shown.counts.running) == ("partial", 2, 1, 0)
    again = client.retry_run("r1")
    assert again.location == "/api/runs/r2" and (again.jobs[1].retryOf, again.jobs[1].error) == ("j3", "not failed")


def test_an_answer_that_is_not_the_api_s_document_names_the_field_not_its_value() -> None:
    """A proxy's page, another version's answer: a :class:`ServiceError` saying which field does
    not read and why, never a stack trace, and never the value (it may be anything)."""
    odd = {**QUEUED, "state": "exploded-with-secret-0123"}
    client = _service({
        ("GET", "/api/imports/1"): httpx.Response(200, json=odd),
        ("GET", "/api/imports"): httpx.Response(200, json={"jobs": []}),
    })  # fmt: skip
    with pytest.raises(ServiceError) as caught:
        client.job("1")
    message = str(caught.value)
    assert "cannot read as ImportStatus: state: Input should be" in message and "secret-0123" not in message
    with pytest.raises(ServiceError, match="cannot read as JobList: items: Field required"):
        client.jobs()


def test_a_refusal_carries_its_bad_fields_and_the_state_it_found() -> None:
    """``400`` with each bad field, ``409`` with the job's state; a refusal shaped otherwise (a
    proxy's) still reads, with what it has."""
    bad = {"code": "BAD_REQUEST", "message": "targetTags[1]: bad tag", "fields": [
        {"field": "targetTags[1]", "message": "bad tag"}, "not a field"]}  # fmt: skip
    client = _service({
        ("POST", "/api/imports"): httpx.Response(400, json=bad),
        ("POST", "/api/imports/1/retry"): httpx.Response(409, json={"code": "JOB_STATE", "message": "m", "state": "queued"}),
        ("POST", "/api/imports/1/cancel"): httpx.Response(502, json={"fields": "no", "error": "upstream"}),
    })  # fmt: skip
    request: Any = {"targetRegistry": "t.example", "source": {"sourceImage": "a:1"}}
    with pytest.raises(ServiceError) as caught:
        client.submit(request)
    assert (caught.value.code, caught.value.status, caught.value.fields) == (
        "BAD_REQUEST",
        400,
        [("targetTags[1]", "bad tag")],
    )
    with pytest.raises(ServiceError) as caught:
        client.retry("1")
    assert (caught.value.code, caught.value.state) == ("JOB_STATE", "queued")
    with pytest.raises(ServiceError) as caught:
        client.cancel("1")
    assert (caught.value.code, caught.value.fields, caught.value.state) == ("HTTP_502", [], None)
    assert str(caught.value) == '{"fields": "no", "error": "upstream"}'


def test_a_result_of_every_shape_reads_back_as_the_json_the_service_sent() -> None:
    """A dry run's plan, an ARM import's operation, a verification, every optional field, and
    fields this version does not know: read and written out again, the same JSON, key for key
    and in order (the result is kept as the service wrote it)."""
    manifest = PlannedManifest(digest="sha256:" + "c" * 64, mediaType="application/vnd.oci.image.index.v1+json",
                               present=True)  # fmt: skip
    plan = DryRunPlan(manifests=[manifest], blobs=2, uniqueBytes=5, blobsPresent=1, bytesPresent=2, blobsToMount=0,
                      blobsToCopy=1, bytesToCopy=3, foreignBlobs=0, referrers=["sha256:" + "d" * 64])  # fmt: skip
    result = ImportResult(
        "src.example/a:1", "sha256:" + "a" * 64, "application/vnd.oci.image.index.v1+json", 964, "sha256:" + "b" * 64,
        ["linux/amd64"], "a note", ["t.example/a:1"], False, True, plan, 1, 0,
        BlobCounts(total=3, copied=1, mounted=1, present=1, foreign=0), 9, 9, [], ["a:old"],
        {"policy": "p", "mode": "warn", "digest": "sha256:" + "a" * 64, "satisfied": False, "verified": [],
         "warning": {"code": "SIGNATURE_REQUIRED", "message": "none"}, "note": "n"},
        {"status": "Succeeded", "correlationId": "c-1", "seconds": 1.5}, 1.25, "arm", "requested", "hub-a",
    )  # fmt: skip
    sent = json.dumps({**QUEUED, "state": "succeeded", "result": {**result.document(), "later": {"b": 1, "a": 2}}})
    client = _service({("GET", "/api/imports/1"): httpx.Response(200, text=sent)})
    read = client.job("1")
    assert read.result is not None and read.result["plan"]["manifests"][0]["present"]
    shown = read.model_dump(mode="json")
    assert json.dumps(shown["result"]) == json.dumps(json.loads(sent)["result"])
