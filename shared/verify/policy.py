"""Verification policies: who may sign (authorities) and what a digest needs (policies).

Shapes borrowed from sigstore's policy-controller ``ClusterImagePolicy`` (``authorities[].key``,
``keyless.identities[{issuer, subject, issuerRegExp, subjectRegExp}]``, ``attestations
[{predicateType, policy}]``, warn/enforce), Kyverno's ``verifyImages`` (``count``, attestation
``conditions``) and notation's ``trustpolicy.json`` (``trustStores``, ``trustedIdentities``)::

    authorities:
      release:   {key: keys/release.pub}                 # cosign key (PEM, or the PEM inline)
      ci:        {keyless: {trustedRoot: trusted_root.json, issuer: https://ci.example,
                            subjectRegExp: "^https://ci.example/acme/.+$"}}
      notary:    {notation: {trustStore: truststore/x509/ca/acme,
                             trustedIdentities: ["x509.subject: C=US, O=Acme, CN=release"]}}
    policies:
      prod:
        mode: enforce                                    # enforce | warn | off
        signatures: {authorities: [release, notary], count: 1}
        attestations:
          - predicateType: https://slsa.dev/provenance/v1
            authorities: [ci]
            conditions: [{path: buildDefinition.buildType, matches: "^https://ci.example/"}]
        index: own                                       # own | everyPlatform

Every problem is refused at load with the field named (:class:`PolicyError`,
:func:`shared.verify.load.parse_policies`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.errors import ConfigurationError
from shared.verify.trustroot import TrustedRoot

Mode = Literal["enforce", "warn", "off"]
IndexRule = Literal["own", "everyPlatform"]
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class PolicyError(ConfigurationError):
    """A verification policy that cannot work: ``field`` says where, the message why."""

    code = "POLICY_INVALID"

    def __init__(self, where: str, reason: str) -> None:
        self.field = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class Identity:
    """A keyless signer: the OIDC issuer and the certificate's subject (SAN), exact or regexp."""

    issuer: str | None = None
    issuer_regexp: re.Pattern[str] | None = None
    subject: str | None = None
    subject_regexp: re.Pattern[str] | None = None

    def matches(self, issuer: str, subject: str) -> bool:
        return _match(self.issuer, self.issuer_regexp, issuer) and _match(self.subject, self.subject_regexp, subject)

    def __str__(self) -> str:
        who = self.subject or f"a subject matching /{self.subject_regexp.pattern if self.subject_regexp else ''}/"
        by = self.issuer or f"an issuer matching /{self.issuer_regexp.pattern if self.issuer_regexp else ''}/"
        return f"{who} (issuer {by})"


def _match(exact: str | None, pattern: re.Pattern[str] | None, value: str) -> bool:
    if exact is not None:
        return value == exact
    return pattern is not None and pattern.fullmatch(value) is not None


@dataclass(frozen=True)
class Authority:
    """Who may sign. Exactly one of ``key``, ``keyless`` and ``notation`` is set."""

    name: str
    key: PublicKey | None = None
    trusted_root: TrustedRoot | None = None
    identities: tuple[Identity, ...] = ()
    #: notation: the trust store's root certificates, and the trusted identities (subject
    #: attributes; an empty dict is ``*``).
    trust_store: tuple[x509.Certificate, ...] = ()
    trusted_identities: tuple[dict[str, str], ...] = ()

    @property
    def kind(self) -> str:
        return "key" if self.key is not None else "keyless" if self.trusted_root is not None else "notation"

    def describe(self) -> str:
        if self.kind == "key":
            return f"the public key {self.name!r} (cosign signatures and Sigstore bundles)"
        if self.kind == "keyless":
            who = " or ".join(str(i) for i in self.identities)
            return f"keyless {self.name!r}: a Fulcio certificate for {who}, logged in Rekor (offline trusted root)"
        ids = ", ".join(_dn_text(i) for i in self.trusted_identities)
        return (
            f"Notary Project signer {self.name!r}: a chain to {len(self.trust_store)} trusted root(s), identity {ids}"
        )


def _dn_text(identity: dict[str, str]) -> str:
    return "*" if not identity else "x509.subject: " + ", ".join(f"{k}={v}" for k, v in identity.items())


@dataclass(frozen=True)
class Condition:
    """A field of an attestation's predicate (dotted ``path``) that must equal a value or match
    a regular expression."""

    path: str
    equals: str | int | float | bool | None = None
    matches: re.Pattern[str] | None = None

    def holds(self, predicate: object) -> bool:
        value = predicate
        for part in self.path.split("."):
            if not isinstance(value, dict) or part not in value:
                return False
            value = value[part]
        if self.matches is not None:
            return isinstance(value, str) and self.matches.fullmatch(value) is not None
        return value == self.equals and type(value) is type(self.equals)

    def __str__(self) -> str:
        if self.matches is not None:
            return f"{self.path} matches /{self.matches.pattern}/"
        return f"{self.path} = {self.equals!r}"


@dataclass(frozen=True)
class AttestationRule:
    predicate_type: str
    authorities: tuple[Authority, ...]
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Policy:
    name: str
    mode: Mode = "enforce"
    authorities: tuple[Authority, ...] = ()
    count: int = 1
    attestations: tuple[AttestationRule, ...] = ()
    index: IndexRule = "own"

    def explain(self) -> list[str]:
        """The policy in words, one sentence a line (``ferry rules check``)."""
        return explain(self)


@dataclass(frozen=True)
class Policies:
    authorities: dict[str, Authority] = field(default_factory=dict)
    policies: dict[str, Policy] = field(default_factory=dict)

    def get(self, name: str, where: str = "verify") -> Policy:
        found = self.policies.get(name)
        if found is None:
            known = ", ".join(sorted(self.policies)) or "none are defined"
            raise PolicyError(where, f"unknown verification policy {name!r} (known: {known})")
        return found


def explain(policy: Policy) -> list[str]:
    lines = [f"policy {policy.name!r}: {_MODE_WORDS[policy.mode]}"]
    if policy.mode == "off":
        return lines
    names = ", ".join(a.name for a in policy.authorities)
    need = "one" if policy.count == 1 else f"{policy.count} different ones"
    lines.append(f"needs a valid signature from {need} of: {names}")
    lines += [f"  {a.name}: {a.describe()}" for a in policy.authorities]
    for rule in policy.attestations:
        who = ", ".join(a.name for a in rule.authorities)
        cond = "; where " + " and ".join(str(c) for c in rule.conditions) if rule.conditions else ""
        lines.append(f"needs an attestation {rule.predicate_type} signed by {who}{cond}")
    lines.append(
        "an index needs its own signature"
        if policy.index == "own"
        else "an index needs a signature on every platform's manifest"
    )
    lines.append("signature manifests must name this digest and live in the source repository; they are copied too")
    return lines


_MODE_WORDS = {
    "enforce": "enforce: an image that fails is not copied (SIGNATURE_REQUIRED or SIGNATURE_INVALID)",
    "warn": "warn: an image that fails is copied, and the job records the warning",
    "off": "off: nothing is checked",
}
