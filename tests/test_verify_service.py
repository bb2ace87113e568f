"""A verification policy named by a request to the API: refused at submit when the policy is
unknown; the worker verifies before a byte moves, fails with the coded error, or succeeds with
the job's record and result saying what verified what."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi.testclient import TestClient

from functions.http import create_app
from shared.service.wiring import Services
from tests.conftest import Reg
from tests.harness.azurite import Azurite
from tests.harness.images import make_image, seed
from tests.harness.service import drain, environment, make_services
from tests.harness.signing import Key, cosign_layer, cosign_manifest, push_cosign, simple_signing

RELEASE = Key()


def service(azurite: Azurite, tmp_path: Path) -> tuple[Services, TestClient]:
    (tmp_path / "release.pub").write_text(RELEASE.public_pem)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "authorities:\n  release: {key: release.pub}\npolicies:\n  prod: {signatures: {authorities: [release]}}\n"
    )
    svc = make_services(environment(azurite, FERRY_RULES_FILE=str(rules)))
    return svc, TestClient(create_app(lambda: svc))


def request(src: Reg, dst: Reg, repo: str, **extra: object) -> dict[str, object]:
    return {
        "targetRegistry": dst.host,
        "source": {"registryUri": src.host, "sourceImage": f"{repo}:v1"},
        "targetTags": [f"{repo}:v1"],
        **extra,
    }


def test_an_unknown_policy_is_refused_at_submit(
    azurite: Azurite, tmp_path: Path, open_reg: Reg, target_reg: Reg
) -> None:
    _, api = service(azurite, tmp_path)
    answer = api.post("/api/imports", json=request(open_reg, target_reg, "a/b", verify="staging"))
    assert answer.status_code == 400
    fields = answer.json()["fields"]
    assert any(
        f["field"] == "verify" and "unknown verification policy 'staging' (known: prod)" in f["message"] for f in fields
    )


def test_a_verified_import_needs_the_oci_engine() -> None:
    """ACR's own import would resolve the tag again: the digest verified would not be the one copied."""
    import pytest

    from shared.errors import ConfigurationError
    from shared.importing.engines import choose_engine
    from shared.importing.request import ImportRequest

    doc = {
        "targetRegistry": "prodacr",
        "source": {"registryUri": "dev.azurecr.io", "sourceImage": "a:1"},
        "verify": "prod",
    }
    ids = {
        "prodacr.azurecr.io": "/subscriptions/x/resourceGroups/r/providers/Microsoft.ContainerRegistry/registries/prodacr"
    }
    assert choose_engine(ImportRequest.model_validate({**doc, "engine": "auto"}), ids)[0] == "oci"
    with pytest.raises(ConfigurationError, match="verify need the OCI engine"):
        choose_engine(ImportRequest.model_validate({**doc, "engine": "arm"}), ids)


def test_the_worker_verifies_before_a_byte_moves(
    azurite: Azurite, tmp_path: Path, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    svc, api = service(azurite, tmp_path)
    img = make_image(seed=repo)
    asyncio.run(seed(open_reg, repo, img, "v1"))
    refused = api.post("/api/imports", json=request(open_reg, target_reg, repo, verify="prod")).json()
    drain(svc)
    failed = api.get(refused["location"]).json()
    assert failed["state"] == "failed" and failed["attemptCount"] == 1, failed
    assert failed["error"]["code"] == "SIGNATURE_REQUIRED", failed

    async def sign() -> None:
        async with open_reg.client() as client:
            payload = simple_signing(f"{open_reg.host}/{repo}", img.digest)
            await push_cosign(client, repo, img.digest, cosign_manifest([cosign_layer(payload, RELEASE)]))

    asyncio.run(sign())
    job = api.post("/api/imports", json=request(open_reg, target_reg, repo, verify="prod")).json()
    drain(svc)
    done = api.get(job["location"]).json()
    assert done["state"] == "succeeded", done
    verified = done["result"]["verification"]["verified"]
    assert [(v["authority"], v["format"]) for v in verified] == [("release", "cosign")]
    record = svc.statuses.get(job["id"])
    assert record is not None and record.verification == [done["result"]["verification"]]
