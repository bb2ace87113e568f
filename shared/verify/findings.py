"""What one piece of evidence proved, or why it proved nothing; and the signature helpers every
format shares (base64 that must be base64, ECDSA/RSA checks that answer yes or no)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from shared.oci.digest import Digest
from shared.verify.report import FindingReport

#: A signature's own format, as the job's result names it.
COSIGN = "cosign"  # the sha256-<hex>.sig tag with simple-signing payloads
BUNDLE = "sigstore-bundle"  # a Sigstore bundle as a referrer (DSSE or message signature)
NOTARY = "notary-jws"  # a Notary Project signature, JWS envelope

#: cosign v3 signs an in-toto statement with this predicate type (cmd/cosign/cli/sign/sign.go).
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"


class Unusable(Exception):
    """This evidence proves nothing: the message says why (it becomes the job's reason)."""


@dataclass(frozen=True)
class Finding:
    """One verified signature or attestation: who signed what, and where it is."""

    authority: str
    format: str
    signer: str
    #: The in-toto predicate type of an attestation; None for a signature.
    predicate_type: str | None
    #: The signature manifest's digest (it is copied with the image), and the digest it signs.
    evidence: Digest
    subject: Digest
    predicate: Any = None

    def to_json(self) -> FindingReport:
        out = FindingReport(
            authority=self.authority,
            format=self.format,
            signer=self.signer,
            signature=str(self.evidence),
            subject=str(self.subject),
        )
        if self.predicate_type:
            out["predicateType"] = self.predicate_type
        return out


def b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise Unusable(f"{what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        try:  # DSSE and JWS writers may use the URL-safe alphabet
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            raise Unusable(f"{what} is not base64") from None


def json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise Unusable(f"{what} is not JSON") from None
    if not isinstance(doc, dict):
        raise Unusable(f"{what} is not a JSON object")
    return doc


def _hash_for(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> hashes.HashAlgorithm:
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size > 256:
        return hashes.SHA384() if key.curve.key_size == 384 else hashes.SHA512()
    return hashes.SHA256()


def signed_by(key: Any, signature: bytes, data: bytes) -> bool:
    """``signature`` over ``data`` by ``key`` (ECDSA with the curve's hash; RSA PKCS#1 v1.5 or
    PSS with SHA-256, as cosign and sigstore-js sign)."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(_hash_for(key)))
            return True
        if isinstance(key, rsa.RSAPublicKey):
            return _rsa(key, signature, data)
    except InvalidSignature:
        return False
    return False


def _rsa(key: rsa.RSAPublicKey, signature: bytes, data: bytes) -> bool:
    for pad in (padding.PKCS1v15(), padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO)):
        try:
            key.verify(signature, data, pad, hashes.SHA256())
            return True
        except InvalidSignature:
            continue
    return False


def signed_digest_by(key: Any, signature: bytes, digest: bytes) -> bool:
    """``signature`` over the message whose SHA-256 is ``digest`` (a Sigstore message signature
    over an image manifest: the manifest's digest is all that is needed)."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
            return True
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
            return True
    except InvalidSignature:
        return False
    return False
