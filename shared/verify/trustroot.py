"""A Sigstore ``trusted_root.json`` (sigstore/protobuf-specs ``TrustedRoot``), read offline:
the Fulcio certificate chains and the Rekor log keys by log id. No call to Fulcio or Rekor."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key


@dataclass(frozen=True)
class TrustedRoot:
    #: Every certificate of every Fulcio chain (roots and intermediates).
    fulcio: tuple[x509.Certificate, ...]
    #: Rekor's keys by log id (the raw 32-byte key id).
    rekor: dict[bytes, ec.EllipticCurvePublicKey]


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{where} is not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where} is not base64") from None


def parse_trusted_root(data: bytes) -> TrustedRoot:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    certs: list[x509.Certificate] = []
    for i, ca in enumerate(doc.get("certificateAuthorities") or []):
        chain = ca.get("certChain", {}).get("certificates") if isinstance(ca, dict) else None
        for j, cert in enumerate(chain or []):
            raw = _b64(cert.get("rawBytes") if isinstance(cert, dict) else None, f"certificateAuthorities[{i}][{j}]")
            certs.append(x509.load_der_x509_certificate(raw))
    keys: dict[bytes, ec.EllipticCurvePublicKey] = {}
    for i, tlog in enumerate(doc.get("tlogs") or []):
        if not isinstance(tlog, dict):
            raise ValueError(f"tlogs[{i}] is not an object")
        key = load_der_public_key(_b64(tlog.get("publicKey", {}).get("rawBytes"), f"tlogs[{i}].publicKey"))
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError(f"tlogs[{i}].publicKey is not an ECDSA key")
        keys[_b64(tlog.get("logId", {}).get("keyId"), f"tlogs[{i}].logId")] = key
    if not certs:
        raise ValueError("no certificateAuthorities")
    if not keys:
        raise ValueError("no tlogs")
    return TrustedRoot(tuple(certs), keys)
