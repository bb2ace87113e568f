"""Sigstore bundles (``application/vnd.dev.sigstore.bundle.v0.3+json``, sigstore/cosign
``specs/BUNDLE_SPEC.md``; sigstore/protobuf-specs ``Bundle``) attached to an image as referrers:
a DSSE envelope holding an in-toto statement (cosign v3's signature predicate, attestations
such as SLSA provenance) or a message signature over the image manifest. Key-based (the
authority's key; the bundle carries a key hint) or keyless (a Fulcio certificate and a Rekor
entry, :mod:`.keyless`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from shared.oci.digest import Digest
from shared.verify import keyless
from shared.verify.certs import load_der
from shared.verify.findings import (
    BUNDLE,
    COSIGN_SIGN_PREDICATE,
    Finding,
    Unusable,
    b64,
    json_object,
    signed_by,
    signed_digest_by,
)
from shared.verify.policy import Authority

MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
MEDIA_TYPES = frozenset({MEDIA_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3"})
IN_TOTO = "application/vnd.in-toto+json"
_STATEMENTS = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")
_MAX_SIGNATURES = 4


@dataclass
class _Content:
    """What was signed: the bytes the signature covers, and what they say."""

    signatures: list[bytes]
    #: DSSE: the pre-authentication encoding; a message signature: None (the digest is signed).
    pae: bytes | None
    payload_sha256: str
    predicate_type: str | None
    predicate: Any


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding (secure-systems-lab/dsse ``protocol.md``)."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _dsse(envelope: dict[str, Any], subject: Digest) -> _Content:
    payload = b64(envelope.get("payload"), "DSSE payload")
    payload_type = envelope.get("payloadType")
    if payload_type != IN_TOTO:
        raise Unusable(f"DSSE payload is not an in-toto statement ({str(payload_type)[:80]})")
    raw = envelope.get("signatures")
    if not isinstance(raw, list) or not raw:
        raise Unusable("DSSE envelope has no signature")
    signatures = [b64(s.get("sig") if isinstance(s, dict) else None, "DSSE signature") for s in raw[:_MAX_SIGNATURES]]
    statement = json_object(payload, "in-toto statement")
    if statement.get("_type") not in _STATEMENTS:
        raise Unusable("payload is not an in-toto statement")
    subjects = statement.get("subject")
    digests = (
        [s.get("digest", {}).get(subject.algorithm) for s in subjects if isinstance(s, dict)]
        if isinstance(subjects, list)
        else []
    )
    if subject.encoded not in digests:
        raise Unusable("statement is for another digest")
    predicate_type = statement.get("predicateType")
    if not isinstance(predicate_type, str):
        raise Unusable("statement has no predicateType")
    return _Content(
        signatures,
        pae(payload_type, payload),
        hashlib.sha256(payload).hexdigest(),
        predicate_type,
        statement.get("predicate"),
    )


def _message(signed: dict[str, Any], subject: Digest) -> _Content:
    md = signed.get("messageDigest")
    if not isinstance(md, dict) or md.get("algorithm") != "SHA2_256" or subject.algorithm != "sha256":
        raise Unusable("message signature is not over a SHA-256 digest")
    if b64(md.get("digest"), "message digest") != bytes.fromhex(subject.encoded):
        raise Unusable("message signature is for another digest")
    return _Content([b64(signed.get("signature"), "message signature")], None, subject.encoded, None, None)


def _certificates(material: dict[str, Any]) -> list[x509.Certificate]:
    single = material.get("certificate")
    if isinstance(single, dict):
        return [load_der(b64(single.get("rawBytes"), "certificate"), "certificate")]
    chain = material.get("x509CertificateChain")
    if isinstance(chain, dict) and isinstance(chain.get("certificates"), list):
        return [load_der(b64(c.get("rawBytes"), "certificate"), "certificate") for c in chain["certificates"][:8]]
    return []


def check_bundle(data: bytes, subject: Digest, authorities: tuple[Authority, ...], evidence: Digest) -> list[Finding]:
    """Every authority this bundle satisfies (none: :class:`Unusable` with the reason)."""
    doc = json_object(data, "bundle")
    if not str(doc.get("mediaType", "")).startswith("application/vnd.dev.sigstore.bundle"):
        raise Unusable("not a Sigstore bundle")
    material = doc.get("verificationMaterial")
    if not isinstance(material, dict):
        raise Unusable("bundle has no verificationMaterial")
    if isinstance(doc.get("dsseEnvelope"), dict):
        content = _dsse(doc["dsseEnvelope"], subject)
    elif isinstance(doc.get("messageSignature"), dict):
        content = _message(doc["messageSignature"], subject)
    else:
        raise Unusable("bundle holds neither a DSSE envelope nor a message signature")
    chain = _certificates(material)
    found: list[Finding] = []
    reasons: list[str] = []
    for authority in authorities:
        try:
            signer = _signer(authority, content, chain, material, subject)
        except Unusable as exc:
            reasons.append(f"{authority.name}: {exc}")
            continue
        if signer is not None:
            kind = None if content.predicate_type == COSIGN_SIGN_PREDICATE else content.predicate_type
            found.append(Finding(authority.name, BUNDLE, signer, kind, evidence, subject, content.predicate))
    if not found:
        raise Unusable(
            "; ".join(reasons) or "the bundle does not verify with a trusted key (another key, or a tampered payload)"
        )
    return found


def _verifies(key: Any, content: _Content, subject: Digest) -> bool:
    if content.pae is not None:
        return any(signed_by(key, s, content.pae) for s in content.signatures)
    return signed_digest_by(key, content.signatures[0], bytes.fromhex(subject.encoded))


def _signer(
    authority: Authority, content: _Content, chain: list[x509.Certificate], material: dict[str, Any], subject: Digest
) -> str | None:
    if authority.key is not None:
        return f"key {authority.name}" if not chain and _verifies(authority.key, content, subject) else None
    if authority.trusted_root is None or not chain:
        return None
    if not _verifies(chain[0].public_key(), content, subject):
        raise Unusable("the signature does not verify with its certificate (tampered payload)")
    entries = material.get("tlogEntries")
    entry = keyless.bundle_entry(entries[0] if isinstance(entries, list) and entries else None)
    at = entry.check(authority)
    _bound(entry, chain[0], content)
    return keyless.check_signer(authority, chain, at)


def _bound(entry: keyless.LogEntry, leaf: x509.Certificate, content: _Content) -> None:
    """The log entry is for this content (hashedrekord for a message, dsse or intoto for DSSE)."""
    if content.pae is None:
        keyless.check_hashedrekord(entry, leaf, content.signatures[0], content.payload_sha256)
        return
    body = entry.body_json()
    spec: Any = body.get("spec")
    if body.get("kind") not in ("dsse", "intoto") or not isinstance(spec, dict):
        raise Unusable("transparency log entry is not a DSSE entry")
    inner = spec.get("content", spec) if body.get("kind") == "intoto" else spec
    payload_hash = inner.get("payloadHash", {}).get("value") if isinstance(inner, dict) else None
    proposed = spec.get("proposedContent")
    if payload_hash is None and isinstance(proposed, dict):
        # the entry as proposed (what a log that stores the request returns): the envelope whole
        envelope = json_object(str(proposed.get("envelope", "")).encode(), "logged envelope")
        payload_hash = hashlib.sha256(b64(envelope.get("payload"), "logged payload")).hexdigest()
        logged = [s.get("sig") for s in envelope.get("signatures") or [] if isinstance(s, dict)]
        if not any(b64(sig, "logged signature") in content.signatures for sig in logged):
            raise Unusable("transparency log entry is for another signature")
    if payload_hash != content.payload_sha256:
        raise Unusable("transparency log entry is for another payload")
