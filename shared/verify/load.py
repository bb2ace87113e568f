"""Verification policies read from a rules document, every problem refused at load with the
field named (:class:`PolicyError`). The shapes are described in :mod:`shared.verify.policy`."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from shared.verify.policy import (
    AttestationRule,
    Authority,
    Condition,
    Identity,
    Policies,
    Policy,
    PolicyError,
    PublicKey,
)
from shared.verify.trustroot import parse_trusted_root
from shared.yamljson import SyntaxProblem, parse_yaml_or_json

#: The curves a cosign key may use (cosign signs with P-256; P-384 and P-521 verify too).
_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_MAX_FILE = 1 << 20


def parse_policies(doc: Any, base: Path) -> Policies:
    """``authorities`` and ``policies`` from a rules document (files relative to ``base``)."""
    if doc is None:
        return Policies()
    _object(doc, "verification")
    _only(doc, "verification", {"authorities", "policies"})
    authorities = {
        name: _authority(name, spec, f"authorities.{name}", base)
        for name, spec in _object(doc.get("authorities") or {}, "authorities").items()
    }
    policies = {
        name: _policy(name, spec, f"policies.{name}", authorities)
        for name, spec in _object(doc.get("policies") or {}, "policies").items()
    }
    return Policies(authorities, policies)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        raise PolicyError(where, "must be a mapping of names")
    return value


def _only(value: dict[str, Any], where: str, allowed: set[str]) -> None:
    extra = sorted(set(value) - allowed)
    if extra:
        raise PolicyError(f"{where}.{extra[0]}", f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise PolicyError(where, "must be a non-empty string")
    return value


def _regexp(value: Any, where: str) -> re.Pattern[str]:
    try:
        return re.compile(_text(value, where))
    except re.error as exc:
        raise PolicyError(where, f"not a regular expression: {exc}") from None


def read_file(value: Any, where: str, base: Path) -> bytes:
    """A file named by the policy, or the PEM written inline."""
    text = _text(value, where)
    if text.lstrip().startswith("-----BEGIN"):
        return text.encode()
    path = base / text
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_FILE + 1)
    except OSError as exc:
        raise PolicyError(where, f"cannot read {text}: {exc.strerror or exc}") from None
    if len(data) > _MAX_FILE:
        raise PolicyError(where, f"{text} is over {_MAX_FILE} bytes")
    return data


def load_key(data: bytes, where: str) -> PublicKey:
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise PolicyError(where, f"not a PEM public key ({exc})") from None
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, _CURVES):
        return key
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return key
    raise PolicyError(where, "the key must be ECDSA P-256/P-384/P-521 or RSA of 2048 bits or more")


def _authority(name: str, spec: Any, where: str, base: Path) -> Authority:
    spec = _object(spec, where)
    kinds = [k for k in ("key", "keyless", "notation") if k in spec]
    if len(kinds) != 1:
        raise PolicyError(where, "needs exactly one of key, keyless, notation")
    _only(spec, where, {"key", "keyless", "notation"})
    kind = kinds[0]
    if kind == "key":
        return Authority(name, key=load_key(read_file(spec["key"], f"{where}.key", base), f"{where}.key"))
    if kind == "keyless":
        return _keyless(name, _object(spec["keyless"], f"{where}.keyless"), f"{where}.keyless", base)
    return _notation(name, _object(spec["notation"], f"{where}.notation"), f"{where}.notation", base)


def _keyless(name: str, spec: dict[str, Any], where: str, base: Path) -> Authority:
    _only(spec, where, {"trustedRoot", "identities", "issuer", "subject", "issuerRegExp", "subjectRegExp"})
    data = read_file(spec.get("trustedRoot"), f"{where}.trustedRoot", base)
    try:
        root = parse_trusted_root(data)
    except ValueError as exc:
        raise PolicyError(f"{where}.trustedRoot", f"not a Sigstore trusted_root.json: {exc}") from None
    raw = spec.get("identities")
    if raw is None:
        raw = [{k: v for k, v in spec.items() if k != "trustedRoot"}]
    if not isinstance(raw, list) or not raw:
        raise PolicyError(f"{where}.identities", "must be a non-empty list")
    identities = tuple(_identity(item, f"{where}.identities[{i}]") for i, item in enumerate(raw))
    return Authority(name, trusted_root=root, identities=identities)


def _identity(spec: Any, where: str) -> Identity:
    spec = _object(spec, where)
    _only(spec, where, {"issuer", "subject", "issuerRegExp", "subjectRegExp"})
    for what in ("issuer", "subject"):
        if (what in spec) == (f"{what}RegExp" in spec):
            raise PolicyError(where, f"needs exactly one of {what}, {what}RegExp")
    return Identity(
        issuer=_text(spec["issuer"], f"{where}.issuer") if "issuer" in spec else None,
        issuer_regexp=_regexp(spec["issuerRegExp"], f"{where}.issuerRegExp") if "issuerRegExp" in spec else None,
        subject=_text(spec["subject"], f"{where}.subject") if "subject" in spec else None,
        subject_regexp=_regexp(spec["subjectRegExp"], f"{where}.subjectRegExp") if "subjectRegExp" in spec else None,
    )


def _notation(name: str, spec: dict[str, Any], where: str, base: Path) -> Authority:
    _only(spec, where, {"trustStore", "trustedIdentities"})
    roots = _certificates(spec.get("trustStore"), f"{where}.trustStore", base)
    raw = spec.get("trustedIdentities")
    if not isinstance(raw, list) or not raw:
        raise PolicyError(f"{where}.trustedIdentities", 'must be a non-empty list ("x509.subject: ..." or "*")')
    identities = tuple(_trusted_identity(item, f"{where}.trustedIdentities[{i}]") for i, item in enumerate(raw))
    return Authority(name, trust_store=roots, trusted_identities=identities)


def _certificates(value: Any, where: str, base: Path) -> tuple[x509.Certificate, ...]:
    """A trust store: a directory of PEM files (notation's ``x509/ca/<name>/``), one PEM file,
    or the PEM inline."""
    text = _text(value, where)
    folder = base / text
    inline = text.lstrip().startswith("-----BEGIN")
    files = sorted(p for p in folder.iterdir() if p.is_file()) if not inline and folder.is_dir() else None
    blobs = (
        [read_file(str(p.relative_to(base)), where, base) for p in files] if files else [read_file(text, where, base)]
    )
    certs: list[x509.Certificate] = []
    for blob in blobs:
        try:
            certs += x509.load_pem_x509_certificates(blob)
        except ValueError as exc:
            raise PolicyError(where, f"not PEM certificates: {exc}") from None
    if not certs:
        raise PolicyError(where, "holds no certificate")
    return tuple(certs)


def _trusted_identity(value: Any, where: str) -> dict[str, str]:
    text = _text(value, where)
    if text == "*":
        return {}
    prefix = "x509.subject:"
    if not text.startswith(prefix):
        raise PolicyError(where, 'must be "*" or "x509.subject: C=..., O=..., CN=..."')
    attrs: dict[str, str] = {}
    for part in text[len(prefix) :].split(","):
        key, sep, val = part.strip().partition("=")
        if not sep or not key.strip() or not val.strip() or key.strip() in attrs:
            raise PolicyError(where, f"cannot read the attribute {part.strip()!r}")
        attrs[key.strip()] = val.strip()
    return attrs


def _names(value: Any, where: str, authorities: dict[str, Authority]) -> tuple[Authority, ...]:
    if not isinstance(value, list) or not value:
        raise PolicyError(where, "must be a non-empty list of authority names")
    found = []
    for i, item in enumerate(value):
        if item not in authorities:
            known = ", ".join(sorted(authorities)) or "none are defined"
            raise PolicyError(f"{where}[{i}]", f"unknown authority {item!r} (known: {known})")
        found.append(authorities[item])
    return tuple(found)


def _policy(name: str, spec: Any, where: str, authorities: dict[str, Authority]) -> Policy:
    spec = _object(spec, where)
    _only(spec, where, {"mode", "signatures", "attestations", "index"})
    mode = spec.get("mode", "enforce")
    if mode not in ("enforce", "warn", "off"):
        raise PolicyError(f"{where}.mode", "must be enforce, warn or off")
    index = spec.get("index", "own")
    if index not in ("own", "everyPlatform"):
        raise PolicyError(f"{where}.index", "must be own or everyPlatform")
    sigs = _object(spec.get("signatures"), f"{where}.signatures")
    _only(sigs, f"{where}.signatures", {"authorities", "count"})
    chosen = _names(sigs.get("authorities"), f"{where}.signatures.authorities", authorities)
    count = sigs.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= len(chosen):
        raise PolicyError(f"{where}.signatures.count", f"must be a whole number from 1 to {len(chosen)}")
    raw = spec.get("attestations") or []
    if not isinstance(raw, list):
        raise PolicyError(f"{where}.attestations", "must be a list")
    rules = tuple(_attestation(item, f"{where}.attestations[{i}]", authorities) for i, item in enumerate(raw))
    return Policy(name, mode, chosen, count, rules, index)


def _attestation(spec: Any, where: str, authorities: dict[str, Authority]) -> AttestationRule:
    spec = _object(spec, where)
    _only(spec, where, {"predicateType", "authorities", "conditions"})
    chosen = _names(spec.get("authorities"), f"{where}.authorities", authorities)
    for a in chosen:
        if a.kind == "notation":
            raise PolicyError(
                f"{where}.authorities", f"{a.name!r} is a Notary signer; attestations are Sigstore bundles"
            )
    raw = spec.get("conditions") or []
    if not isinstance(raw, list):
        raise PolicyError(f"{where}.conditions", "must be a list")
    return AttestationRule(
        _text(spec.get("predicateType"), f"{where}.predicateType"),
        chosen,
        tuple(_condition(c, f"{where}.conditions[{i}]") for i, c in enumerate(raw)),
    )


def _condition(spec: Any, where: str) -> Condition:
    spec = _object(spec, where)
    _only(spec, where, {"path", "equals", "matches"})
    path = _text(spec.get("path"), f"{where}.path")
    if ("equals" in spec) == ("matches" in spec):
        raise PolicyError(where, "needs exactly one of equals, matches")
    if "matches" in spec:
        return Condition(path, matches=_regexp(spec["matches"], f"{where}.matches"))
    value = spec["equals"]
    if not isinstance(value, str | int | float | bool):
        raise PolicyError(f"{where}.equals", "must be a string, number or boolean")
    return Condition(path, equals=value)


def load_policies_file(path: str | Path) -> Policies:
    """The ``authorities`` and ``policies`` of a rules file (YAML or JSON; its other sections are
    the automation's): what a worker or the CLI needs to apply a policy a request names."""
    file = Path(path)
    try:
        doc = parse_yaml_or_json(file.read_text())
    except OSError as exc:
        raise PolicyError(f"rules file {file}", exc.strerror or str(exc)) from None
    except SyntaxProblem as exc:
        raise PolicyError(f"rules file {file}", str(exc)[:300]) from None
    if not isinstance(doc, dict):
        return Policies()
    part = {k: doc[k] for k in ("authorities", "policies") if k in doc}
    return parse_policies(part, file.parent)


def policy_named(rules_file: str | None, name: str, where: str = "verify") -> Policy:
    """The policy ``name`` of the rules file (read again when the file changes), or
    :class:`PolicyError` for ``where``: no rules file, a bad one, an unknown name."""
    if not rules_file:
        raise PolicyError(where, f"no rules file is configured (FERRY_RULES_FILE), so there is no policy {name!r}")
    try:
        stamp = Path(rules_file).stat().st_mtime_ns
    except OSError as exc:
        raise PolicyError(where, f"rules file {rules_file}: {exc.strerror or exc}") from None
    return _policies(rules_file, stamp).get(name, where)


@functools.lru_cache(maxsize=4)
def _policies(rules_file: str, stamp: int) -> Policies:
    return load_policies_file(rules_file)
