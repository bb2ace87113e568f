"""A policy applied to one digest: gather the signature manifests attached to it (or to each
platform of an index), check each with the format's checker, count the authorities that
verified, look for the required attestations, and give the verdict. ``enforce`` raises
:class:`SignatureRequiredError` or :class:`SignatureInvalidError`; ``warn`` records; ``off``
reads nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field

from shared.errors import SignatureInvalidError, SignatureRequiredError
from shared.oci import mediatypes as mt
from shared.oci.digest import Digest
from shared.oci.manifest import Descriptor, Index, parse_manifest
from shared.registry.client import RegistryClient
from shared.verify import bundle, cosign, notary
from shared.verify.evidence import Evidence, Gathered, gather
from shared.verify.findings import BUNDLE, COSIGN, Finding, Unusable
from shared.verify.policy import Authority, Policy
from shared.verify.report import ProblemReport, VerdictReport

_ATTESTATION_MANIFEST = "vnd.docker.reference.type"


@dataclass
class Checked:
    """One subject's evidence, checked: what verified, what did not and why."""

    subject: Descriptor
    findings: list[Finding] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    used: dict[Digest, Evidence] = field(default_factory=dict)
    candidates: int = 0
    #: Candidates that proved only attestations (they are no signature).
    attestations_only: int = 0


@dataclass
class Verdict:
    policy: Policy
    digest: Digest
    findings: list[Finding] = field(default_factory=list)
    #: The signature manifests that verified something: copied along with the image.
    evidence: list[Evidence] = field(default_factory=list)
    problem: SignatureRequiredError | SignatureInvalidError | None = None

    @property
    def satisfied(self) -> bool:
        return self.problem is None

    def to_json(self) -> VerdictReport:
        out = VerdictReport(
            policy=self.policy.name,
            mode=self.policy.mode,
            digest=str(self.digest),
            satisfied=self.satisfied,
            verified=[f.to_json() for f in self.findings],
        )
        if self.problem is not None:
            problem = ProblemReport(code=self.problem.code, message=str(self.problem))
            if self.policy.mode == "warn":
                out["warning"] = problem
            else:
                out["error"] = problem
        return out


def _check(
    evidence: Evidence, subject: Descriptor, repository: str, authorities: tuple[Authority, ...], out: Checked
) -> None:
    keyed = tuple(a for a in authorities if a.kind != "notation")
    for notes, payload in evidence.layers:
        try:
            if evidence.kind == COSIGN:
                found = cosign.check_layer(payload, notes, subject.digest, repository, keyed, evidence.manifest.digest)
            elif evidence.kind == BUNDLE:
                found = bundle.check_bundle(payload, subject.digest, keyed, evidence.manifest.digest)
            else:
                found = _notary(payload, subject, authorities, evidence)
        except Unusable as exc:
            out.reasons.append(f"{evidence.kind} {evidence.manifest.digest.encoded[:12]}: {exc}")
            continue
        out.findings += found
        out.used[evidence.manifest.digest] = evidence
        if all(f.predicate_type for f in found):
            out.attestations_only += 1


def _notary(
    payload: bytes, subject: Descriptor, authorities: tuple[Authority, ...], evidence: Evidence
) -> list[Finding]:
    now = dt.datetime.now(dt.UTC)
    found, reasons = [], []
    for authority in (a for a in authorities if a.kind == "notation"):
        try:
            found.append(notary.check_jws(payload, subject, authority, evidence.manifest, now))
        except Unusable as exc:
            reasons.append(str(exc))
    if not found:
        raise Unusable("; ".join(reasons) or "no Notary Project authority in the policy")
    return found


async def check_subject(
    client: RegistryClient, repository: str, subject: Descriptor, authorities: tuple[Authority, ...]
) -> Checked:
    gathered: Gathered = await gather(client, repository, subject.digest)
    out = Checked(subject, reasons=list(gathered.rejected), candidates=len(gathered.evidence) + len(gathered.rejected))
    for evidence in gathered.evidence:
        _check(evidence, subject, repository, authorities, out)
    return out


def _signatures(policy: Policy, checked: Checked) -> SignatureRequiredError | SignatureInvalidError | None:
    wanted = {a.name for a in policy.authorities}
    signers = {f.authority for f in checked.findings if f.predicate_type is None and f.authority in wanted}
    if len(signers) >= policy.count:
        return None
    where = f"{checked.subject.digest}"
    if checked.candidates == checked.attestations_only:
        return SignatureRequiredError(f"{where} is not signed (policy {policy.name!r} needs a signature)")
    have = f"{len(signers)} of {policy.count} required authorities verified" if signers else "no signature verified"
    reason = "; ".join(checked.reasons) or "signatures were found, none by a trusted authority"
    return SignatureInvalidError(f"{where}: {have} (policy {policy.name!r}): {reason}", reason=reason)


def _attestations(policy: Policy, checked: Checked) -> SignatureRequiredError | SignatureInvalidError | None:
    for rule in policy.attestations:
        names = {a.name for a in rule.authorities}
        typed = [f for f in checked.findings if f.predicate_type == rule.predicate_type and f.authority in names]
        if any(all(c.holds(f.predicate) for c in rule.conditions) for f in typed):
            continue
        where = f"{checked.subject.digest}"
        if typed:
            failed = "; ".join(str(c) for c in rule.conditions)
            reason = f"attestation {rule.predicate_type} does not meet its conditions ({failed})"
            return SignatureInvalidError(f"{where}: {reason} (policy {policy.name!r})", reason=reason)
        if not checked.reasons:
            return SignatureRequiredError(f"{where} has no attestation {rule.predicate_type} (policy {policy.name!r})")
        reason = "; ".join(checked.reasons)
        return SignatureInvalidError(
            f"{where}: no valid attestation {rule.predicate_type} (policy {policy.name!r}): {reason}", reason=reason
        )
    return None


async def _platforms(client: RegistryClient, repository: str, root: Descriptor) -> list[Descriptor]:
    """An index's platform manifests (buildx's attestation manifests left out)."""
    _, data = await client.fetch_manifest(repository, str(root.digest), expected=root.digest)
    node = parse_manifest(data, root.media_type)
    if not isinstance(node, Index):
        return [root]
    return [m for m in node.manifests if m.is_manifest and _ATTESTATION_MANIFEST not in m.annotations]


async def verify(policy: Policy, client: RegistryClient, repository: str, root: Descriptor) -> Verdict:
    """Apply ``policy`` to ``root`` in ``client``'s ``repository``; never raises for a failed
    policy (the verdict holds the error; :func:`enforce` raises it)."""
    verdict = Verdict(policy, root.digest)
    if policy.mode == "off":
        return verdict
    every = list(
        {a.name: a for a in policy.authorities + tuple(a for r in policy.attestations for a in r.authorities)}.values()
    )
    own = await check_subject(client, repository, root, tuple(every))
    checks = [own]
    if policy.index == "everyPlatform" and mt.is_index(root.media_type):
        platforms = await _platforms(client, repository, root)
        checks = list(
            await asyncio.gather(*(check_subject(client, repository, p, policy.authorities) for p in platforms))
        )
    problem = next((p for c in checks if (p := _signatures(policy, c)) is not None), None)
    verdict.problem = problem or _attestations(policy, own)
    for c in ({id(c): c for c in [own, *checks]}).values():
        verdict.findings += c.findings
        verdict.evidence += [e for e in c.used.values() if e not in verdict.evidence]
    return verdict


def enforce(verdict: Verdict) -> None:
    """Raise the verdict's error in ``enforce`` mode (``warn`` and ``off`` go on)."""
    if verdict.problem is not None and verdict.policy.mode == "enforce":
        raise verdict.problem
