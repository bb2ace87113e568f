"""Ferry's bundle checks agree with an independent verifier, sigstore-js's ``@sigstore/verify``,
on the key-based bundles the tests use (made by ``@sigstore/sign``): good ones pass both, one
signed by another key fails both."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from shared.oci.digest import Digest
from shared.verify.bundle import check_bundle
from shared.verify.findings import Unusable
from shared.verify.load import parse_policies
from tests.harness.signing import SIGN_PREDICATE, SLSA, Key, dsse_bundle, message_bundle, sigstore_verify, statement

pytestmark = pytest.mark.process  # runs node


def test_key_based_bundles_agree_with_sigstore_verify(tmp_path: Path) -> None:
    key, other = Key(), Key()
    manifest = b'{"schemaVersion": 2}'
    digest = Digest.of(manifest)
    bundles = [
        ("dsse", dsse_bundle(key, statement(digest, SIGN_PREDICATE, {})), True),
        ("slsa", dsse_bundle(key, statement(digest, SLSA, {"buildDefinition": {}})), True),
        ("message", message_bundle(key, manifest), True),
        ("another key", dsse_bundle(other, statement(digest, SIGN_PREDICATE, {})), False),
    ]
    jobs = [
        {"bundle": b, "publicKey": key.public_pem, "artifact": base64.b64encode(manifest).decode()}
        for _, b, _ in bundles
    ]
    answers = sigstore_verify(jobs)
    authority = parse_policies({"authorities": {"k": {"key": key.public_pem}}}, tmp_path).authorities["k"]
    for (name, bundle, good), answer in zip(bundles, answers, strict=True):
        assert (answer == "ok") is good, (name, answer)
        try:
            found = check_bundle(json.dumps(bundle).encode(), digest, (authority,), digest)
        except Unusable:
            found = []
        assert bool(found) is good, name
