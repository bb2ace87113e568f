"""cosign's tag scheme: ``sha256-<hex>.sig``, one layer per signature, each a simple-signing
payload signed over its raw bytes (sigstore/cosign ``specs/SIGNATURE_SPEC.md``;
``pkg/cosign/verify.go`` ``verifyOCISignature``, ``pkg/cosign/verifiers.go``
``SimpleClaimVerifier``). Key-based: the authority's key; keyless: the leaf certificate in the
layer's annotations, its chain, and the Rekor bundle's SET checked offline (:mod:`.keyless`)."""

from __future__ import annotations

from typing import Any

from shared.oci.digest import Digest
from shared.verify import keyless
from shared.verify.findings import COSIGN, Finding, Unusable, b64, json_object, signed_by
from shared.verify.policy import Authority

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
_TYPE = "cosign container image signature"


def tag_for(digest: Digest) -> str:
    return f"{digest.algorithm}-{digest.encoded}.sig"


def check_claims(payload: bytes, subject: Digest, repository: str) -> None:
    """The payload names this digest, in this repository (the registry is not compared: a
    promotion verifies in the registry the image was signed in, under another host name)."""
    doc = json_object(payload, "simple-signing payload")
    critical: Any = doc.get("critical")
    if not isinstance(critical, dict) or critical.get("type") != _TYPE:
        raise Unusable(f"payload is not a {_TYPE!r}")
    image = critical.get("image")
    named = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if named != str(subject):
        raise Unusable(f"payload is for another digest ({str(named)[:80]})")
    identity = critical.get("identity")
    reference = identity.get("docker-reference") if isinstance(identity, dict) else None
    if not isinstance(reference, str) or _repository_of(reference) != repository:
        raise Unusable(f"payload is for another repository ({str(reference)[:120]})")


def _repository_of(reference: str) -> str:
    """``registry/repo[:tag]`` or ``repo`` → ``repo`` (Docker Hub's ``library/`` kept as written)."""
    name = reference.split("@", 1)[0]
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        name = rest
    head, colon, tail = name.rpartition(":")
    return head if colon and "/" not in tail else name


def check_layer(
    payload: bytes,
    annotations: dict[str, str],
    subject: Digest,
    repository: str,
    authorities: tuple[Authority, ...],
    evidence: Digest,
) -> list[Finding]:
    """Every authority this signature layer satisfies (none: :class:`Unusable` with the reason).
    The signature is checked first, then what the payload claims, as cosign does."""
    signature = b64(annotations.get(SIGNATURE_ANNOTATION), "the signature annotation")
    cert = annotations.get(CERTIFICATE_ANNOTATION)
    found: list[Finding] = []
    reasons: list[str] = []
    for authority in authorities:
        if authority.key is not None and signed_by(authority.key, signature, payload):
            found.append(Finding(authority.name, COSIGN, f"key {authority.name}", None, evidence, subject))
        elif authority.trusted_root is not None and cert:
            try:
                signer = keyless.check_cosign(
                    authority,
                    payload,
                    signature,
                    cert,
                    annotations.get(CHAIN_ANNOTATION),
                    annotations.get(BUNDLE_ANNOTATION),
                )
            except Unusable as exc:
                reasons.append(f"{authority.name}: {exc}")
                continue
            found.append(Finding(authority.name, COSIGN, signer, None, evidence, subject))
    if not found:
        raise Unusable(
            "; ".join(reasons)
            or "the signature does not verify with a trusted key (another key, or a tampered payload)"
        )
    check_claims(payload, subject, repository)
    return found
