"""X.509 for signatures: a certificate chain to trusted roots at a chosen time (Fulcio's
certificates live ten minutes, so "valid at the log's integrated time"; a Notary chain "valid
now"), and the Fulcio identity extensions."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError

from shared.verify.findings import Unusable

#: Fulcio's OIDC issuer extensions: ``.1.1`` (raw string, deprecated) and ``.1.8`` (DER UTF8String).
_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_MAX_CHAIN = 8


def load_pem_chain(data: bytes, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise Unusable(f"{what} is not PEM certificates") from None
    if not certs or len(certs) > _MAX_CHAIN:
        raise Unusable(f"{what} holds {len(certs)} certificates")
    return certs


def load_der(data: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise Unusable(f"{what} is not a DER certificate") from None


def check_chain(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    roots: tuple[x509.Certificate, ...],
    at: dt.datetime,
    usage: ObjectIdentifier,
) -> None:
    """``leaf`` chains to one of ``roots`` at ``at`` and may sign code (``usage`` in its EKU);
    :class:`Unusable` says which of these fails."""
    if at > leaf.not_valid_after_utc:
        raise Unusable(
            f"certificate expired at {leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ} (checked at {at:%Y-%m-%dT%H:%M:%SZ})"
        )
    if at < leaf.not_valid_before_utc:
        raise Unusable(f"certificate not valid before {leaf.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}")
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise Unusable("certificate has no extended key usage") from None
    if usage not in eku:
        raise Unusable("certificate is not for code signing (extended key usage)")
    ca = ExtensionPolicy.permit_all().require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)
    ee = ExtensionPolicy.permit_all()
    verifier = (
        PolicyBuilder()
        .store(Store(list(roots)))
        .time(at)
        .max_chain_depth(_MAX_CHAIN)
        .extension_policies(ca_policy=ca, ee_policy=ee)
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, intermediates)
    except VerificationError as exc:
        raise Unusable(f"certificate does not chain to a trusted root ({exc})") from None


CODE_SIGNING = ExtendedKeyUsageOID.CODE_SIGNING


def fulcio_identity(leaf: x509.Certificate) -> tuple[str, str]:
    """The (issuer, subject) Fulcio wrote into ``leaf``: the OIDC issuer extension and the SAN
    (an email, a URI such as a CI workflow, or another name)."""
    issuer = ""
    for oid in (_ISSUER_V2, _ISSUER_V1):
        try:
            raw = leaf.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        value = raw.value if isinstance(raw, x509.UnrecognizedExtension) else b""
        # .1.8 is a DER UTF8String (tag 0x0c, short length); .1.1 is the raw string.
        if oid == _ISSUER_V2 and len(value) >= 2 and value[0] == 0x0C and value[1] < 0x80:
            value = value[2:]
        issuer = value.decode("utf-8", "replace")
        break
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise Unusable("certificate has no subject alternative name") from None
    names = [str(n.value) for n in san if isinstance(n, x509.RFC822Name | x509.UniformResourceIdentifier)]
    if not names:
        raise Unusable("certificate has no email or URI identity")
    return issuer, names[0]
