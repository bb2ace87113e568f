"""A verification as a job's result reports it (``result.verification``, ``GET
/api/imports/{id}``, docs/signing.md): the verdict, each finding, and the problem in words. Only
types, so that the result and the job's record can name them without loading cryptography."""

from __future__ import annotations

from typing import NotRequired, TypedDict


class FindingReport(TypedDict):
    """One verified signature or attestation: the authority and format that proved it, the
    signer, the signature manifest's digest and the digest it signs (an attestation's predicate
    type too)."""

    authority: str
    format: str
    signer: str
    signature: str
    subject: str
    predicateType: NotRequired[str]


class ProblemReport(TypedDict):
    """Why a policy was not met: the error's code (``SIGNATURE_REQUIRED``, ``SIGNATURE_INVALID``)
    and its message."""

    code: str
    message: str


class VerdictReport(TypedDict):
    """What a policy found for a digest. The problem is a ``warning`` in ``warn`` mode, else an
    ``error``; ``note`` says when the signatures were not copied with a filtered index."""

    policy: str
    mode: str
    digest: str
    satisfied: bool
    verified: list[FindingReport]
    warning: NotRequired[ProblemReport]
    error: NotRequired[ProblemReport]
    note: NotRequired[str]
