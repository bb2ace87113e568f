"""schemathesis against the HTTP API's own OpenAPI document, in process (ASGI): generated
requests, valid and invalid, never get a 5xx, and every response matches the schema."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from functions.http import create_app
from shared.service.wiring import Services
from tests.harness.azurite import Azurite
from tests.harness.service import environment, make_services

pytestmark = pytest.mark.process  # every test here uses Azurite
pytest_plugins = ["schemathesis.pytest.plugin"]  # not autoloaded (pyproject.toml)

_services: dict[str, Services] = {}
app = create_app(lambda: _services["svc"])
schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)


@pytest.fixture(autouse=True)
def services(azurite: Azurite) -> None:
    if "svc" not in _services:
        _services["svc"] = make_services(environment(azurite, FERRY_ALLOW_LOOPBACK="false"))


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms(case: Any) -> None:
    # Ferry validates more than JSON Schema can say (the reference grammar, SSRF, credentials that
    # exist), so a schema-valid request may rightly get a 400: that one check does not apply.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
