"""Notary Project signatures, JWS envelope (notaryproject/specifications
``specs/signature-envelope-jws.md``, ``signature-specification.md``, ``trust-store-trust-policy.md``).

Checked: the JWS signature with the leaf's key (``alg`` matching it), ``crit`` listing every
extended header Ferry must understand, the signing scheme ``notary.x509``, the chain from
``x5c`` to a trust-store root **now** (no timestamp authority), the leaf's code-signing usage,
the trusted identity (notation compares the identity's attributes as a subset of the leaf's
subject), ``io.cncf.notary.expiry``, and ``targetArtifact`` equal to the signed image's media type,
digest and size. **Not checked: revocation** (OCSP and CRLs need the network)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from shared.oci.manifest import Descriptor
from shared.verify.certs import CODE_SIGNING, check_chain, load_der
from shared.verify.findings import NOTARY, Finding, Unusable, b64, json_object
from shared.verify.policy import Authority

ARTIFACT_TYPE = "application/vnd.cncf.notary.signature"
JWS = "application/jose+json"
_PAYLOAD = "application/vnd.cncf.notary.payload.v1+json"
_SCHEME = "io.cncf.notary.signingScheme"
_KNOWN_CRIT = {_SCHEME, "io.cncf.notary.expiry", "io.cncf.notary.authenticSigningTime"}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_SHORT = {"C": "C", "ST": "ST", "L": "L", "O": "O", "OU": "OU", "CN": "CN"}


def _verify_jws(alg: Any, key: Any, signature: bytes, signed: bytes) -> None:
    if not isinstance(alg, str) or alg[2:] not in _HASHES:
        raise Unusable(f"unsupported JWS alg {str(alg)[:20]}")
    algorithm = _HASHES[alg[2:]]()
    try:
        if alg.startswith("PS") and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PSS(padding.MGF1(algorithm), algorithm.digest_size), algorithm)
            return
        if alg.startswith("ES") and isinstance(key, ec.EllipticCurvePublicKey):
            size = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * size:
                raise InvalidSignature
            r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
            key.verify(encode_dss_signature(r, s), signed, ec.ECDSA(algorithm))
            return
    except InvalidSignature:
        raise Unusable("the signature does not verify with its certificate (tampered payload)") from None
    raise Unusable(f"JWS alg {alg} does not match the certificate's key")


def _header(envelope: dict[str, Any]) -> tuple[dict[str, Any], str]:
    protected_b64 = envelope.get("protected")
    protected = json_object(b64(protected_b64, "JWS protected header"), "JWS protected header")
    if protected.get("cty") != _PAYLOAD:
        raise Unusable("JWS content type is not a Notary payload")
    crit = protected.get("crit")
    if not isinstance(crit, list) or _SCHEME not in crit:
        raise Unusable("JWS crit does not list the signing scheme")
    unknown = [c for c in crit if c not in _KNOWN_CRIT]
    if unknown:
        raise Unusable(f"JWS crit lists a header Ferry does not understand ({str(unknown[0])[:80]})")
    if protected.get(_SCHEME) != "notary.x509":
        raise Unusable(f"signing scheme {str(protected.get(_SCHEME))[:40]} is not notary.x509")
    return protected, str(protected_b64)


def _expired(protected: dict[str, Any], now: dt.datetime) -> None:
    expiry = protected.get("io.cncf.notary.expiry")
    if expiry is None:
        return
    try:
        at = dt.datetime.fromisoformat(str(expiry).replace("Z", "+00:00"))
    except ValueError:
        raise Unusable("io.cncf.notary.expiry is not a time") from None
    if at.tzinfo is None or now >= at:
        raise Unusable(f"signature expired at {expiry}")


def _subject(leaf: x509.Certificate) -> dict[str, str]:
    out: dict[str, str] = {}
    for attr in leaf.subject:
        short = attr.rfc4514_attribute_name
        if short in _SHORT:
            out[short] = str(attr.value)
    return out


def check_jws(
    data: bytes, target: Descriptor, authority: Authority, evidence: Descriptor, now: dt.datetime | None = None
) -> Finding:
    """The JWS envelope ``data`` signs ``target`` for ``authority`` (else :class:`Unusable`)."""
    now = now or dt.datetime.now(dt.UTC)
    envelope = json_object(data, "JWS envelope")
    protected, protected_b64 = _header(envelope)
    unprotected = envelope.get("header")
    x5c = unprotected.get("x5c") if isinstance(unprotected, dict) else None
    if not isinstance(x5c, list) or not x5c or len(x5c) > 8:
        raise Unusable("JWS header has no x5c chain")
    chain = [load_der(b64(c, "x5c certificate"), "x5c certificate") for c in x5c]
    payload_b64 = envelope.get("payload")
    signature = b64(envelope.get("signature"), "JWS signature")
    _verify_jws(protected.get("alg"), chain[0].public_key(), signature, f"{protected_b64}.{payload_b64}".encode())
    payload = json_object(b64(payload_b64, "JWS payload"), "JWS payload")
    named = payload.get("targetArtifact")
    if not isinstance(named, dict) or named.get("digest") != str(target.digest):
        raise Unusable("payload is for another digest")
    if named.get("mediaType") != target.media_type or named.get("size") != target.size:
        raise Unusable("payload's targetArtifact differs from the image's descriptor (media type or size)")
    _expired(protected, now)
    check_chain(chain[0], chain[1:], authority.trust_store, now, CODE_SIGNING)
    subject = _subject(chain[0])
    if not any(all(subject.get(k) == v for k, v in want.items()) for want in authority.trusted_identities):
        raise Unusable(f"identity not trusted: {chain[0].subject.rfc4514_string()[:200]}")
    return Finding(authority.name, NOTARY, chain[0].subject.rfc4514_string(), None, evidence.digest, target.digest)
