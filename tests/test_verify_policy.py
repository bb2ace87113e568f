"""Verification policies: a bad one is refused at load with the field named; a good one is
explained in words."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.verify.load import load_policies_file, parse_policies
from shared.verify.policy import Condition, PolicyError
from tests.harness.signing import Key, NotaryCA

KEY = Key()
CA = NotaryCA()


def trusted_root(tmp_path: Path) -> str:
    import base64

    from cryptography.hazmat.primitives import serialization

    der = CA.root.public_bytes(serialization.Encoding.DER)
    spki = KEY.private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    doc = {
        "certificateAuthorities": [{"certChain": {"certificates": [{"rawBytes": base64.b64encode(der).decode()}]}}],
        "tlogs": [{"publicKey": {"rawBytes": base64.b64encode(spki).decode()}, "logId": {"keyId": "AAAA"}}],
    }
    (tmp_path / "trusted_root.json").write_text(json.dumps(doc))
    return "trusted_root.json"


def good(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "release.pub").write_text(KEY.public_pem)
    store = tmp_path / "truststore" / "x509" / "ca" / "acme"
    store.mkdir(parents=True)
    (store / "root.pem").write_text(CA.root_pem)
    return {
        "authorities": {
            "release": {"key": "release.pub"},
            "ci": {
                "keyless": {
                    "trustedRoot": trusted_root(tmp_path),
                    "issuer": "https://ci.example",
                    "subjectRegExp": "^https://ci\\.example/acme/.+$",
                }
            },
            "notary": {
                "notation": {
                    "trustStore": "truststore/x509/ca/acme",
                    "trustedIdentities": ["x509.subject: C=US, O=Acme, CN=release"],
                }
            },
        },
        "policies": {
            "prod": {
                "signatures": {"authorities": ["release", "notary"]},
                "attestations": [
                    {
                        "predicateType": "https://slsa.dev/provenance/v1",
                        "authorities": ["ci"],
                        "conditions": [{"path": "buildDefinition.buildType", "matches": "^https://ci\\.example/"}],
                    }
                ],
            }
        },
    }


def test_a_good_policy_loads_and_is_explained(tmp_path: Path) -> None:
    policies = parse_policies(good(tmp_path), tmp_path)
    prod = policies.get("prod")
    assert [a.kind for a in prod.authorities] == ["key", "notation"]
    assert policies.authorities["ci"].identities[0].matches("https://ci.example", "https://ci.example/acme/build")
    assert not policies.authorities["ci"].identities[0].matches("https://ci.example", "https://ci.example/evil")
    words = "\n".join(prod.explain())
    assert "enforce: an image that fails is not copied" in words
    assert "needs a valid signature from one of: release, notary" in words
    assert "needs an attestation https://slsa.dev/provenance/v1 signed by ci" in words
    assert "buildDefinition.buildType matches" in words
    assert "x509.subject: C=US, O=Acme, CN=release" in words


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *head, last = path.split(".")
    node = doc
    for part in head:
        node = node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        ("authorities.release.key", "missing.pub", "authorities.release.key", "cannot read missing.pub"),
        ("authorities.release.key", "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n",
         "authorities.release.key", "not a PEM public key"),
        ("authorities.ci.keyless.subjectRegExp", "(", "authorities.ci.keyless.identities[0].subjectRegExp",
         "not a regular expression"),
        ("authorities.ci.keyless.trustedRoot", "release.pub", "authorities.ci.keyless.trustedRoot",
         "not a Sigstore trusted_root.json"),
        ("authorities.notary.notation.trustedIdentities", ["CN=x"], "authorities.notary.notation.trustedIdentities[0]",
         "x509.subject"),
        ("authorities.notary.notation.trustStore", "release.pub", "authorities.notary.notation.trustStore",
         "not PEM certificates"),
        ("policies.prod.signatures.authorities", ["release", "nobody"], "policies.prod.signatures.authorities[1]",
         "unknown authority 'nobody'"),
        ("policies.prod.signatures.count", 3, "policies.prod.signatures.count", "from 1 to 2"),
        ("policies.prod.mode", "strict", "policies.prod.mode", "enforce, warn or off"),
        ("policies.prod.index", "all", "policies.prod.index", "own or everyPlatform"),
        ("policies.prod.surprise", 1, "policies.prod.surprise", "unknown field"),
        ("authorities.release.cert", "x", "authorities.release.cert", "unknown field"),
        ("authorities.release", {}, "authorities.release", "exactly one of key, keyless, notation"),
    ],
)  # fmt: skip
def test_a_bad_policy_is_refused_with_the_field_named(
    tmp_path: Path, path: str, value: Any, field: str, words: str
) -> None:
    doc = good(tmp_path)
    _set(doc, path, value)
    with pytest.raises(PolicyError) as caught:
        parse_policies(doc, tmp_path)
    assert caught.value.field == field, str(caught.value)
    assert words in str(caught.value)


def test_an_unknown_policy_name_is_refused(tmp_path: Path) -> None:
    policies = parse_policies(good(tmp_path), tmp_path)
    with pytest.raises(PolicyError, match="unknown verification policy 'dev'"):
        policies.get("dev", "promotions[0].verify")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("policies:\n  prod: [\n", "not valid YAML: line 3, column 1: expected the node content"),
        ('{"policies": {},}', "not valid JSON: line 1, column 17:"),
    ],
)
def test_a_rules_file_that_is_not_yaml_or_json_is_refused_by_line_and_column(
    tmp_path: Path, text: str, words: str
) -> None:
    """The verifier reads the rules file as the rules do: one reader, the same words."""
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=f"rules file {path}: ") as caught:
        load_policies_file(path)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("condition", "predicate", "holds"),
    [
        (Condition("a.b", equals="x"), {"a": {"b": "x"}}, True),
        (Condition("a.b", equals="x"), {"a": {"b": "y"}}, False),
        (Condition("a.b", equals=1), {"a": {"b": True}}, False),
        (Condition("a.c", equals="x"), {"a": {"b": "x"}}, False),
        (Condition("a", equals="x"), "not an object", False),
    ],
)
def test_conditions(condition: Condition, predicate: Any, holds: bool) -> None:
    assert condition.holds(predicate) is holds
