"""Signature data is an attacker's data: whatever bytes or JSON a registry holds next to an image,
each format's checker answers with a finding or a reason (:class:`Unusable`), never a crash, and
never a finding for a key it was not given."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.oci import mediatypes as mt
from shared.oci.digest import Digest
from shared.oci.manifest import Descriptor
from shared.verify import bundle, cosign, notary
from shared.verify.findings import Unusable
from shared.verify.load import parse_policies
from tests.harness.signing import Key, NotaryCA

KEY = Key()
CA = NotaryCA()
SUBJECT = Digest.of(b"image")
TARGET = Descriptor(mt.OCI_MANIFEST, SUBJECT, 5)
AUTH = parse_policies(
    {
        "authorities": {
            "k": {"key": KEY.public_pem},
            "n": {"notation": {"trustStore": CA.root_pem, "trustedIdentities": ["*"]}},
        }
    },
    Path("."),
).authorities

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
b64_text = st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode())


def shaped_bundle() -> st.SearchStrategy[dict[str, Any]]:
    envelope = st.fixed_dictionaries(
        {"payload": b64_text | json_values, "payloadType": st.sampled_from([bundle.IN_TOTO, "x"]) | json_values,
         "signatures": st.lists(st.fixed_dictionaries({"sig": b64_text | json_values}), max_size=2) | json_values}
    )  # fmt: skip
    material = st.fixed_dictionaries({}, optional={"publicKey": json_values, "certificate": json_values,
                                                   "tlogEntries": json_values})  # fmt: skip
    return st.fixed_dictionaries(
        {"mediaType": st.just(bundle.MEDIA_TYPE), "verificationMaterial": material},
        optional={"dsseEnvelope": envelope, "messageSignature": json_values},
    )


def answers(check: Any, *args: Any) -> None:
    try:
        found = check(*args)
    except Unusable:
        return
    raise AssertionError(f"random input verified: {found}")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        shaped_bundle().map(lambda v: json.dumps(v).encode()),
    )
)
def test_bundle_checker_never_crashes(data: bytes) -> None:
    answers(bundle.check_bundle, data, SUBJECT, (AUTH["k"],), SUBJECT)


@settings(max_examples=120, deadline=None)
@given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())),
       st.dictionaries(st.sampled_from([cosign.SIGNATURE_ANNOTATION, cosign.CERTIFICATE_ANNOTATION, "x"]),
                       st.text(max_size=40) | b64_text, max_size=3))  # fmt: skip
def test_cosign_checker_never_crashes(payload: bytes, annotations: dict[str, str]) -> None:
    answers(cosign.check_layer, payload, annotations, SUBJECT, "team/web", (AUTH["k"],), SUBJECT)


@settings(max_examples=120, deadline=None)
@given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                 st.fixed_dictionaries({"payload": b64_text, "protected": b64_text | json_values,
                                        "header": json_values, "signature": b64_text}).map(lambda v: json.dumps(v).encode())))  # fmt: skip
def test_notary_checker_never_crashes(data: bytes) -> None:
    answers(notary.check_jws, data, TARGET, AUTH["n"], TARGET)
