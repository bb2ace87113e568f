"""What an import came to, typed: both engines (``run_import``, ``run_arm_import``) return an
:class:`ImportResult`; :meth:`ImportResult.document` is the JSON the CLI prints and the job's
record keeps (:class:`ResultDocument`: fields in this order, those not set left out). A
dataclass, not pydantic: a local ``ferry import`` does not pay for pydantic's import. What it
holds that is JSON already (the blob counts, a dry run's plan) is a TypedDict, the same in the
value and in its document."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, TypedDict, cast

if TYPE_CHECKING:  # types only: ARM's client and the verifier are loaded only when used
    from shared.arm.importer import ArmOperation
    from shared.verify.report import VerdictReport


class BlobCounts(TypedDict):
    total: int
    copied: int
    mounted: int
    present: int
    foreign: int


class PlannedManifest(TypedDict):
    """A manifest a dry run would copy, and whether the target holds it already."""

    digest: str
    mediaType: str
    present: bool


class DryRunPlan(TypedDict):
    """What a dry run found: what would be copied, mounted or is present."""

    manifests: list[PlannedManifest]
    blobs: int
    uniqueBytes: int
    blobsPresent: int
    bytesPresent: int
    blobsToMount: int
    blobsToCopy: int
    bytesToCopy: int
    foreignBlobs: int
    referrers: list[str]


@dataclass(slots=True)
class ImportResult:
    """The import's outcome: the image (``digest``...), where it landed (``targets``), what moved
    (a copy), what would (a dry run's ``plan``), or ACR's operation (``arm``)."""

    source: str
    digest: str | None = None
    mediaType: str | None = None
    size: int | None = None
    sourceDigest: str | None = None
    platforms: list[str] | None = None
    note: str | None = None
    targets: list[str] | None = None
    upToDate: bool | None = None
    dryRun: bool | None = None
    plan: DryRunPlan | None = None
    manifests: int | None = None
    manifestsPresent: int | None = None
    blobs: BlobCounts | None = None
    bytes: int | None = None
    uniqueBytes: int | None = None
    referrers: list[str] | None = None
    #: Tags a newer job asked for: not moved.
    superseded: list[str] | None = None
    #: What verified the image, by which authority and format (``shared.verify``), or the
    #: warning in ``warn`` mode.
    verification: VerdictReport | None = None
    arm: ArmOperation | None = None
    seconds: int | float = 0
    #: Which engine ran it, and why (set by whoever chose the engine).
    engine: str | None = None
    engineReason: str | None = None
    #: The credential the source was pulled as, when the request named several (accounts).
    credential: str | None = None

    def document(self) -> ResultDocument:
        """The result as JSON: the fields set, in order (:class:`ResultDocument` names them all,
        ``tests/test_values.py`` keeps the two alike)."""
        return cast(ResultDocument, {k: v for k, v in asdict(self).items() if v is not None})

    def summary(self) -> str:
        """``source -> targets (N bytes, B blobs copied, S s)``, for a job's success line."""
        copied = self.blobs["copied"] if self.blobs else 0
        moved = f"{self.bytes or 0} bytes, {copied} blobs copied, {self.seconds} s"
        return f"{self.source} -> {', '.join(self.targets or [])} ({moved})"


class ResultDocument(TypedDict, total=False):
    """A job's ``result`` as its record keeps it and the API shows it: :meth:`ImportResult.document`
    (its fields, in its order, those set), or for a cancelled job the upload sessions the target
    would not delete (``uploadSessionsLeft``)."""

    source: str
    digest: str
    mediaType: str
    size: int
    sourceDigest: str
    platforms: list[str]
    note: str
    targets: list[str]
    upToDate: bool
    dryRun: bool
    plan: DryRunPlan
    manifests: int
    manifestsPresent: int
    blobs: BlobCounts
    bytes: int
    uniqueBytes: int
    referrers: list[str]
    superseded: list[str]
    verification: VerdictReport
    arm: ArmOperation
    seconds: int | float
    engine: str
    engineReason: str
    credential: str
    uploadSessionsLeft: list[str]
