"""Keyless signatures checked offline against a Sigstore trusted root: the Fulcio leaf chains
to a trusted CA **at the Rekor entry's integrated time**, the SignedEntryTimestamp is Rekor's
signature over the RFC 8785 canonical JSON of ``{body, integratedTime, logIndex, logID}``, the
entry's body binds this signature and this payload, and the certificate's issuer and subject
match one of the authority's identities. A bundle's inclusion proof, when it has one, is checked
too, with its checkpoint signed by the same log (:mod:`.inclusion`). Not checked: the
certificate's SCT (CT log)."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared.strict import loads_bounded
from shared.verify import inclusion
from shared.verify.certs import CODE_SIGNING, check_chain, fulcio_identity, load_pem_chain
from shared.verify.findings import Unusable, b64, json_object, signed_by
from shared.verify.policy import Authority


class LogEntry:
    """A Rekor entry as the signature carries it, with the SET that vouches for it."""

    def __init__(
        self, body: str, integrated_time: int, log_index: int, log_id: bytes, set_: bytes, proof: Any = None
    ) -> None:
        self.body, self.integrated_time, self.log_index = body, integrated_time, log_index
        self.log_id, self.signed_entry_timestamp = log_id, set_
        #: A bundle's ``inclusionProof`` (checked with its checkpoint when present).
        self.proof = proof

    def check(self, authority: Authority) -> dt.datetime:
        """The SET verifies with a Rekor key of the trusted root; returns the integrated time."""
        assert authority.trusted_root is not None
        key = authority.trusted_root.rekor.get(self.log_id)
        if key is None:
            raise Unusable("transparency log entry from a log the trusted root does not list")
        canonical = rfc8785.dumps(
            {
                "body": self.body,
                "integratedTime": self.integrated_time,
                "logIndex": self.log_index,
                "logID": self.log_id.hex(),
            }
        )
        try:
            key.verify(self.signed_entry_timestamp, canonical, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise Unusable("transparency log entry's signed timestamp does not verify") from None
        if self.proof is not None:
            inclusion.check(self.proof, b64(self.body, "log entry body"), key)
        return dt.datetime.fromtimestamp(self.integrated_time, dt.UTC)

    def body_json(self) -> dict[str, Any]:
        return json_object(b64(self.body, "log entry body"), "log entry body")


def _int(value: Any, what: str) -> int:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise Unusable(f"{what} is not a whole number")


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def cosign_entry(annotation: str | None) -> LogEntry:
    """The ``dev.sigstore.cosign/bundle`` annotation: ``{SignedEntryTimestamp, Payload{...}}``."""
    if not annotation:
        raise Unusable("keyless signature without a transparency log bundle")
    doc = loads_bounded(annotation.encode())
    payload = doc.get("Payload") if isinstance(doc, dict) else None
    if not isinstance(payload, dict):
        raise Unusable("transparency log bundle is not {SignedEntryTimestamp, Payload}")
    log_id = payload.get("logID")
    try:
        raw_id = bytes.fromhex(log_id) if isinstance(log_id, str) else b""
    except ValueError:
        raw_id = b""
    return LogEntry(
        body=_str(payload.get("body")),
        integrated_time=_int(payload.get("integratedTime"), "integratedTime"),
        log_index=_int(payload.get("logIndex"), "logIndex"),
        log_id=raw_id,
        set_=b64(doc.get("SignedEntryTimestamp"), "SignedEntryTimestamp"),
    )


def bundle_entry(entry: Any) -> LogEntry:
    """A bundle's ``verificationMaterial.tlogEntries[0]`` (proto3 JSON: 64-bit numbers as
    strings, a ``logIndex`` of 0 left out)."""
    if not isinstance(entry, dict):
        raise Unusable("keyless bundle without a transparency log entry")
    promise = entry.get("inclusionPromise")
    if not isinstance(promise, dict):
        raise Unusable("transparency log entry has no inclusion promise (SET)")
    log_id = entry.get("logId")
    return LogEntry(
        body=_str(entry.get("canonicalizedBody")),
        integrated_time=_int(entry.get("integratedTime"), "integratedTime"),
        log_index=_int(entry.get("logIndex", 0), "logIndex"),
        log_id=b64(log_id.get("keyId") if isinstance(log_id, dict) else None, "logId"),
        set_=b64(promise.get("signedEntryTimestamp"), "signedEntryTimestamp"),
        proof=entry.get("inclusionProof"),
    )


def check_signer(authority: Authority, chain: list[x509.Certificate], at: dt.datetime) -> str:
    """The leaf chains to Fulcio at ``at`` and names a trusted identity: returns that identity."""
    assert authority.trusted_root is not None
    leaf, rest = chain[0], chain[1:]
    check_chain(leaf, rest, authority.trusted_root.fulcio, at, CODE_SIGNING)
    issuer, subject = fulcio_identity(leaf)
    if not any(i.matches(issuer, subject) for i in authority.identities):
        raise Unusable(f"identity not trusted: {subject[:200]} (issuer {issuer[:200]})")
    return f"{subject} (issuer {issuer})"


def _same_key(content: Any, leaf: x509.Certificate) -> bool:
    """A log entry's ``publicKey.content``: base64 of the PEM certificate (or of its key)."""
    try:
        pem = b64(content, "log entry key")
        certs = x509.load_pem_x509_certificates(pem)
        return certs[0] == leaf
    except (Unusable, ValueError):
        return False


def check_hashedrekord(entry: LogEntry, leaf: x509.Certificate, signature: bytes, digest_hex: str) -> None:
    """The log entry is for this signature, this message digest and this certificate."""
    body = entry.body_json()
    spec: Any = body.get("spec")
    if body.get("kind") != "hashedrekord" or not isinstance(spec, dict):
        raise Unusable("transparency log entry is not a hashedrekord")
    data, sig = spec.get("data") or {}, spec.get("signature") or {}
    value = data.get("hash", {}).get("value") if isinstance(data, dict) else None
    if value != digest_hex:
        raise Unusable("transparency log entry is for another payload")
    if not isinstance(sig, dict) or b64(sig.get("content"), "logged signature") != signature:
        raise Unusable("transparency log entry is for another signature")
    if not _same_key(sig.get("publicKey", {}).get("content"), leaf):
        raise Unusable("transparency log entry is for another certificate")


def check_cosign(
    authority: Authority, payload: bytes, signature: bytes, cert: str, chain_pem: str | None, bundle: str | None
) -> str:
    """A keyless cosign ``.sig`` layer: its certificate, chain and Rekor bundle annotations."""
    chain = load_pem_chain(cert.encode(), "certificate")
    chain += load_pem_chain(chain_pem.encode(), "chain") if chain_pem else []
    if not signed_by(chain[0].public_key(), signature, payload):
        raise Unusable("the signature does not verify with its certificate (tampered payload)")
    entry = cosign_entry(bundle)
    at = entry.check(authority)
    check_hashedrekord(entry, chain[0], signature, hashlib.sha256(payload).hexdigest())
    return check_signer(authority, chain, at)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)
