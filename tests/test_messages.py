"""A refused request says what to do next: where the JSON broke, that the body needs
``Content-Type: application/json``, that a host belongs in ``registryUri``, which field was meant."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.http import create_app

GOOD = {
    "targetRegistry": "prod.example.com",
    "source": {"registryUri": "127.0.0.1:5101", "sourceImage": "team/web:1.0"},
}


def _refusal(response: Any) -> dict[str, str]:
    assert response.status_code == 400, response.text
    return {f["field"]: f["message"] for f in response.json()["fields"]}


@pytest.fixture(scope="module")
def api() -> TestClient:
    return TestClient(create_app())  # validation answers before any storage is asked


def test_a_json_syntax_error_gives_its_line_and_column(api: TestClient) -> None:
    body = '{"targetRegistry": "prod.example.com",\n "source": {"sourceImage": "team/web:1.0"},\n}'
    fields = _refusal(api.post("/api/imports", content=body, headers={"Content-Type": "application/json"}))
    assert fields == {"body": "not valid JSON: line 3, column 1: Expecting property name enclosed in double quotes"}


@pytest.mark.parametrize(
    ("headers", "given"), [({}, "no Content-Type"), ({"Content-Type": "text/plain"}, "text/plain")]
)
def test_a_body_without_its_content_type_says_so(api: TestClient, headers: dict[str, str], given: str) -> None:
    import json

    fields = _refusal(api.post("/api/imports", content=json.dumps(GOOD), headers=headers))
    assert fields["body"].startswith("expected a JSON object sent with Content-Type: application/json")
    assert given in fields["body"]


def test_a_full_reference_in_source_image_says_where_the_host_goes(api: TestClient) -> None:
    doc = {**GOOD, "source": {"registryUri": "127.0.0.1:5101", "sourceImage": "127.0.0.1:5101/team/web:1.0"}}
    assert _refusal(api.post("/api/imports", json=doc)) == {
        "source.sourceImage": "'127.0.0.1:5101/team/web:1.0' starts with a registry (127.0.0.1:5101): put the host "
        "in registryUri and only the path in sourceImage ('team/web:1.0')"
    }


def test_an_unknown_field_suggests_the_nearest_known_one(api: TestClient) -> None:
    doc = {**GOOD, "targetTag": ["team/web:1.0"], "source": {**GOOD["source"], "credentail": "dev"}}  # type: ignore[dict-item]
    assert _refusal(api.post("/api/imports", json=doc)) == {
        "targetTag": "unknown field; did you mean 'targetTags'?",
        "source.credentail": "unknown field; did you mean 'credential'?",
    }


def test_a_missing_credential_names_every_variable_it_needs() -> None:
    from shared.errors import ConfigurationError
    from shared.settings import Settings

    settings = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    with pytest.raises(ConfigurationError) as missing:
        settings.credential("dev")
    assert "set FERRY_CREDENTIAL_DEV_USERNAME and FERRY_CREDENTIAL_DEV_PASSWORD" in str(missing.value)


def test_notifications_refuse_what_is_not_distributions_envelope(api: TestClient) -> None:
    wrong_type = api.post("/api/notifications", content=b'{"events": []}', headers={"Content-Type": "text/plain"})
    assert _refusal(wrong_type) == {
        "Content-Type": "expected application/vnd.docker.distribution.events.v1+json (distribution's envelope)"
        " or application/json"
    }
    not_envelope = api.post("/api/notifications", json=[{"action": "push"}])
    assert _refusal(not_envelope) == {"events": 'expected {"events": [...]}, distribution\'s notification envelope'}
    broken = api.post("/api/notifications", content=b'{"events": [}', headers={"Content-Type": "application/json"})
    assert list(_refusal(broken)) == ["body"]
