"""Verification in the rules file: authorities and policies beside the promotions and mirrors,
each rule naming a policy (``verify``), carried into the requests the rules make; a bad policy or
an unknown name refused at load with the field named; ``ferry rules check`` explains them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.automation.passes import Push, promotion
from shared.automation.rules import load_rules
from shared.errors import ConfigurationError
from tests.conftest import Reg
from tests.harness.images import make_image, seed
from tests.harness.signing import Key, cosign_layer, cosign_manifest, push_cosign, simple_signing

ROOT = Path(__file__).resolve().parent.parent
KEY = Key()

RULES = """
authorities:
  release: {key: keys/release.pub}
policies:
  prod:
    signatures: {authorities: [release]}
promotions:
  - name: web-to-prod
    sourceRegistry: dev.example.io
    repository: "team/*"
    targetRegistry: prod.example.io
    verify: prod
mirrors:
  - name: nginx
    source: docker.io/library/nginx
    tags: ["1.27"]
    targetRegistry: prod.example.io
    verify: prod
"""


def write(tmp_path: Path, text: str = RULES) -> Path:
    (tmp_path / "keys").mkdir(exist_ok=True)
    (tmp_path / "keys" / "release.pub").write_text(KEY.public_pem)
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def test_rules_name_a_policy_and_their_requests_carry_it(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path))
    assert rules.verification.get("prod").authorities[0].name == "release"
    push = Push("e", "dev.example.io", "team/web", "1.0", "sha256:" + "a" * 64, "")
    request, _ = promotion(rules.promotions[0], push)
    assert request.verify == "prod"
    assert rules.mirrors[0].verify == "prod"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (("verify: prod\nmirrors", "verify: staging\nmirrors"), "promotions[0] (web-to-prod).verify: unknown verification policy 'staging'"),
        (("keys/release.pub", "keys/missing.pub"), "authorities.release.key: cannot read keys/missing.pub"),
        (("authorities: [release]", "authorities: [relase]"), "policies.prod.signatures.authorities[0]: unknown authority 'relase'"),
    ],
)  # fmt: skip
def test_a_bad_policy_is_refused_at_load_with_the_field_named(
    tmp_path: Path, change: tuple[str, str], words: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_rules(write(tmp_path, RULES.replace(*change, 1)))
    assert words in str(caught.value)


@pytest.mark.process
def test_rules_check_explains_the_policy(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", "rules", "check", str(write(tmp_path))],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "promotion web-to-prod:" in done.stdout and "verified by policy prod" in done.stdout
    assert "needs a valid signature from one of: release" in done.stdout
    assert "policy 'prod': enforce: an image that fails is not copied" in done.stdout


@pytest.mark.process
def test_ferry_import_verify(tmp_path: Path, open_reg: Reg, target_reg: Reg, repo: str) -> None:
    """``ferry import --verify POLICY``: unsigned refused with the code and nothing copied;
    signed copied, the JSON saying what verified it."""
    import asyncio
    import json

    rules = write(tmp_path)
    img = make_image(seed=repo)
    asyncio.run(seed(open_reg, repo, img, "v1"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FERRY_RULES_FILE": str(rules), "FERRY_ALLOW_LOOPBACK": "true"}
    cmd = [sys.executable, "-m", "shared.cli", "import", "--name", target_reg.host, "--source",
           f"{open_reg.host}/{repo}:v1", "--verify", "prod"]  # fmt: skip
    refused = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert refused.returncode == 1, refused.stderr
    assert json.loads(refused.stdout)["error"]["code"] == "SIGNATURE_REQUIRED"

    async def sign() -> None:
        async with open_reg.client() as client:
            payload = simple_signing(f"{open_reg.host}/{repo}", img.digest)
            await push_cosign(client, repo, img.digest, cosign_manifest([cosign_layer(payload, KEY)]))

    asyncio.run(sign())
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    verified = json.loads(done.stdout)["verification"]["verified"]
    assert [(v["authority"], v["format"]) for v in verified] == [("release", "cosign")]
    unknown = subprocess.run([*cmd[:-1], "nope"], capture_output=True, text=True, env=env, check=False)
    assert unknown.returncode == 2 and "--verify: unknown verification policy 'nope'" in unknown.stderr
