"""The ARM engine: the request body for each seed scenario, ARM's long-running-operation protocol
against a fake ARM, engine choice, and both engines passing the same job-level test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.http import create_app
from shared.arm.importer import ArmImporter, ArmOperation, ArmOptions, ImportImageParameters
from shared.credentials import AccessToken, Anonymous, Credential, Secret, UsernamePassword
from shared.errors import (
    ArmOperationError,
    ArmTimeoutError,
    AuthenticationError,
    ConfigurationError,
    InsecureEndpointError,
    PermissionDeniedError,
)
from shared.importing.arm import arm_body
from shared.importing.engines import arm_source, choose_engine
from shared.importing.request import ImportRequest
from shared.service.jobs import Worker
from shared.service.wiring import Services
from tests.conftest import FAST, Reg
from tests.harness.azurite import Azurite
from tests.harness.fakearm import FakeArm, FakeArmCredential
from tests.harness.images import make_multiarch, seed
from tests.harness.service import drain, environment, make_services

SUB = "00000000-0000-0000-0000-000000000000"
PROD_ID = f"/subscriptions/{SUB}/resourceGroups/rg-prod/providers/Microsoft.ContainerRegistry/registries/prodacr"
DEV_ID = f"/subscriptions/{SUB}/resourceGroups/rg-dev/providers/Microsoft.ContainerRegistry/registries/devacr"


def req(source: dict[str, Any], **extra: Any) -> ImportRequest:
    return ImportRequest.model_validate({"targetRegistry": "prodacr", "source": source, **extra})


# -- the body ARM receives, for every scenario of the seed -------------------------------------

SCENARIOS = [
    (  # Docker Hub with credentials (a PAT)
        req(
            {"registryUri": "docker.io", "sourceImage": "library/nginx:1.27", "credential": "dockerhub"},
            targetTags=["nginx:1.27"],
        ),
        UsernamePassword("hubuser", Secret("hub-pat")),
        {
            "source": {
                "sourceImage": "library/nginx:1.27",
                "registryUri": "docker.io",
                "credentials": {"username": "hubuser", "password": "hub-pat"},
            },
            "targetTags": ["nginx:1.27"],
            "mode": "NoForce",
        },
    ),
    (  # MCR, anonymous, Force, several tags and an untagged copy
        req(
            {"registryUri": "mcr.microsoft.com", "sourceImage": "dotnet/runtime:8.0"},
            mode="Force",
            targetTags=["dotnet/runtime:8.0", "dotnet/runtime:stable"],
            untaggedTargetRepositories=["archive/runtime"],
        ),
        Anonymous(),
        {
            "source": {"sourceImage": "dotnet/runtime:8.0", "registryUri": "mcr.microsoft.com"},
            "mode": "Force",
            "targetTags": ["dotnet/runtime:8.0", "dotnet/runtime:stable"],
            "untaggedTargetRepositories": ["archive/runtime"],
        },
    ),
    (  # another ACR in the same subscription, by login server (the caller's identity, no credentials)
        req({"registryUri": "devacr.azurecr.io", "sourceImage": "team/web:1.0"}),
        Anonymous(),
        {
            "source": {"sourceImage": "team/web:1.0", "registryUri": "devacr.azurecr.io"},
            "targetTags": ["team/web:1.0"],
            "mode": "NoForce",
        },
    ),
    (  # a source by resource ID (public endpoint off), pinned by digest
        req({"resourceId": DEV_ID, "sourceImage": "team/web:1.0@sha256:" + "a" * 64}, targetTags=["web:1.0"]),
        Anonymous(),
        {
            "source": {"sourceImage": "team/web@sha256:" + "a" * 64, "resourceId": DEV_ID},
            "targetTags": ["web:1.0"],
            "mode": "NoForce",
        },
    ),
    (  # another tenant: a service principal's id and secret
        req({"registryUri": "other.azurecr.io", "sourceImage": "app:2", "credential": "othertenant"}),
        UsernamePassword("11111111-2222-3333-4444-555555555555", Secret("sp-secret")),
        {
            "source": {
                "sourceImage": "app:2",
                "registryUri": "other.azurecr.io",
                "credentials": {"username": "11111111-2222-3333-4444-555555555555", "password": "sp-secret"},
            },
            "targetTags": ["app:2"],
            "mode": "NoForce",
        },
    ),
    (  # another tenant: an Entra access token as the password, no username
        req({"registryUri": "other.azurecr.io", "sourceImage": "app:2", "credential": "othertoken"}),
        AccessToken(Secret("eyJ0eXAi.entra.token")),
        {
            "source": {
                "sourceImage": "app:2",
                "registryUri": "other.azurecr.io",
                "credentials": {"password": "eyJ0eXAi.entra.token"},
            },
            "targetTags": ["app:2"],
            "mode": "NoForce",
        },
    ),
]


@pytest.mark.parametrize(("request_", "credential", "body"), SCENARIOS)
def test_request_body_for_each_seed_scenario(
    request_: ImportRequest, credential: Credential, body: dict[str, Any]
) -> None:
    assert arm_body(arm_source(request_), request_.spec(), credential) == body


@pytest.mark.parametrize(
    ("extra", "configured", "engine", "why"),
    [
        ({}, False, "oci", "the default: oci streams through Ferry"),
        ({"engine": "oci"}, False, "oci", "requested"),
        ({"engine": "auto"}, False, "oci", "no resource ID is configured"),
        ({"engine": "auto"}, True, "arm", "needs nothing only the OCI engine does"),
        ({"engine": "auto", "platforms": ["linux/amd64"]}, True, "oci", "needs the OCI engine"),
        (
            {"engine": "auto", "source": {"resourceId": DEV_ID, "sourceImage": "a:1"}},
            True,
            "arm",
            "given by resource ID",
        ),
        ({"engine": "arm"}, True, "arm", "requested"),
    ],
)
def test_engine_choice(extra: dict[str, Any], configured: bool, engine: str, why: str) -> None:
    doc = {
        "targetRegistry": "prodacr",
        "source": {"registryUri": "docker.io", "sourceImage": "library/nginx:1"},
        **extra,
    }
    chosen = choose_engine(ImportRequest.model_validate(doc), {"prodacr.azurecr.io": PROD_ID} if configured else {})
    assert chosen[0] == engine and why in chosen[1]


@pytest.mark.parametrize(
    ("extra", "registries", "reason"),
    [
        ({"engine": "arm"}, {}, "not configured (FERRY_REGISTRIES)"),
        (
            {"engine": "arm", "includeReferrers": True},
            {"prodacr.azurecr.io": PROD_ID},
            "includeReferrers need the OCI engine",
        ),
    ],
)
def test_arm_jobs_that_cannot_run(extra: dict[str, Any], registries: dict[str, str], reason: str) -> None:
    doc = {
        "targetRegistry": "prodacr",
        "source": {"registryUri": "docker.io", "sourceImage": "library/nginx:1"},
        **extra,
    }
    with pytest.raises(ConfigurationError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        choose_engine(ImportRequest.model_validate(doc), registries)


# -- ARM's long-running operations --------------------------------------------------------------


@pytest.fixture
def arm(open_reg: Reg, target_reg: Reg) -> Iterator[FakeArm]:
    fake = FakeArm({"prodacr": target_reg.host, "devacr": open_reg.host}).start()
    yield fake
    fake.stop()


def importer(arm: FakeArm, timeout: float = 30.0) -> ArmImporter:
    return ArmImporter(FakeArmCredential(), ArmOptions(endpoint=arm.url, timeout=timeout, poll_default=0.01), FAST)


async def _run(arm: FakeArm, body: ImportImageParameters, timeout: float = 30.0) -> ArmOperation:
    client = importer(arm, timeout)
    try:
        return await client.run(PROD_ID, body)
    finally:
        await client.aclose()


@pytest.mark.parametrize("mode", ["sync", "location", "async"])
def test_import_completes_in_every_protocol_form(
    arm: FakeArm, open_reg: Reg, target_reg: Reg, repo: str, mode: str
) -> None:
    index = make_multiarch(seed=f"arm-{mode}")
    asyncio.run(seed(open_reg, repo, index))
    arm.mode = mode
    body: ImportImageParameters = {
        "source": {"registryUri": open_reg.host, "sourceImage": f"{repo}:v1"},
        "targetTags": [f"{repo}:arm"],
        "mode": "NoForce",
    }
    outcome = asyncio.run(_run(arm, body))
    assert outcome["status"] == "Succeeded" and outcome["correlationId"].startswith("corr-")
    assert arm.paths == [PROD_ID + "/importImage"] and arm.bodies == [body]

    async def landed() -> str:
        async with target_reg.client() as client:
            return str((await client.resolve(repo, "arm")).digest)

    assert asyncio.run(landed()) == str(index.digest)


def test_failed_operation_carries_arm_code_message_and_correlation(arm: FakeArm) -> None:
    arm.mode = "fail"
    with pytest.raises(ArmOperationError) as caught:
        asyncio.run(_run(arm, {"source": {"registryUri": "x.io", "sourceImage": "a:1"}, "mode": "NoForce"}))
    assert "InvalidParameters" in str(caught.value) and "Error copying blobs." in str(caught.value)
    assert "correlation id corr-" in str(caught.value) and not caught.value.retryable


def test_an_import_that_never_finishes_times_out(arm: FakeArm) -> None:
    arm.mode = "never"
    with pytest.raises(ArmTimeoutError, match="did not finish within 1 s"):
        asyncio.run(
            _run(arm, {"source": {"registryUri": "x.io", "sourceImage": "a:1"}, "mode": "NoForce"}, timeout=1.0)
        )


def test_polling_urls_on_private_addresses_are_refused(arm: FakeArm) -> None:
    """ARM's answer names where to poll; a link-local (metadata) address is refused where the
    connection would be made, like any registry destination."""
    arm.mode = "elsewhere"
    with pytest.raises(InsecureEndpointError, match=r"ARM: refused: .*169\.254\.169\.254"):
        asyncio.run(_run(arm, {"source": {"registryUri": "x.io", "sourceImage": "a:1"}, "mode": "NoForce"}))


def test_denied_and_unauthenticated(arm: FakeArm) -> None:
    arm.mode = "forbidden"
    with pytest.raises(PermissionDeniedError, match="importImage/action"):
        asyncio.run(_run(arm, {"source": {"registryUri": "x.io", "sourceImage": "a:1"}, "mode": "NoForce"}))

    class WrongAudience(FakeArmCredential):
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            return super().get_token("https://containerregistry.azure.net/.default")

    async def wrong_audience() -> None:
        client = ArmImporter(WrongAudience(), ArmOptions(endpoint=arm.url), FAST)
        try:
            await client.run(PROD_ID, {"source": {"registryUri": "x.io", "sourceImage": "a:1"}, "mode": "NoForce"})
        finally:
            await client.aclose()

    with pytest.raises(AuthenticationError, match="AuthenticationFailed"):
        asyncio.run(wrong_audience())


# -- both engines, one job-level test ----------------------------------------------------------


@pytest.fixture
def arm_services(azurite: Azurite, arm: FakeArm, target_reg: Reg) -> Services:
    env = environment(azurite, FERRY_REGISTRIES=json.dumps({target_reg.host: PROD_ID}), FERRY_ARM_ENDPOINT=arm.url)
    svc = make_services(env)
    svc.worker = Worker(svc.settings, svc.statuses, identity=FakeArmCredential)
    return svc


@pytest.mark.parametrize("engine", ["oci", "arm"])
def test_both_engines_report_the_same_fields(
    arm_services: Services, arm: FakeArm, open_reg: Reg, target_reg: Reg, repo: str, engine: str
) -> None:
    index = make_multiarch(seed=f"engines-{engine}")
    asyncio.run(seed(open_reg, repo, index))
    api = TestClient(create_app(lambda: arm_services))
    doc = {
        "targetRegistry": target_reg.host,
        "source": {"registryUri": open_reg.host, "sourceImage": f"{repo}:v1"},
        "targetTags": [f"{repo}:{engine}"],
        "engine": engine,
    }
    job = api.post("/api/imports", json=doc).json()
    drain(arm_services)
    status = api.get(job["location"]).json()
    assert status["state"] == "succeeded", status
    result = status["result"]
    assert result["engine"] == engine and result["engineReason"] == "requested"
    assert result["digest"] == str(index.digest) and result["mediaType"] == index.media_type
    assert (
        result["targets"] == [f"{target_reg.host}/{repo}:{engine}"] and result["source"] == f"{open_reg.host}/{repo}:v1"
    )
    assert (len(arm.bodies) == 1) is (engine == "arm")


def test_arm_request_without_configured_target_is_refused(arm_services: Services, open_reg: Reg) -> None:
    api = TestClient(create_app(lambda: arm_services))
    doc = {
        "targetRegistry": "unknownacr",
        "source": {"registryUri": open_reg.host, "sourceImage": "a:1"},
        "engine": "arm",
    }
    response = api.post("/api/imports", json=doc)
    assert response.status_code == 400
    assert response.json()["fields"][0]["field"] == "engine" and "FERRY_REGISTRIES" in response.json()["message"]
