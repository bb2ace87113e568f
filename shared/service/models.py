"""The service's documents: the import request (ARM's ``ImportImageParameters`` plus the target
and Ferry's options), the queue message, and the status record. Validated with pydantic; every
bad field is named with its reason."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.importing.spec import ImportSpec, Limits, TargetRef, build_spec, parse_target_image
from shared.oci.manifest import Platform
from shared.oci.reference import RESOURCE_ID, parse_image_path, parse_reference, parse_registry, parse_repository

State = Literal["queued", "running", "succeeded", "failed", "cancelled"]
#: States a job does not leave.
FINISHED = ("succeeded", "failed", "cancelled")
#: How an attempt ended: ``abandoned`` when its worker stopped before it could say (killed, or
#: shut down mid-job: the message came back and a later attempt found this one still running).
Outcome = Literal["running", "succeeded", "failed", "cancelled", "abandoned"]


def _target_image(value: str) -> str:
    parse_target_image(value)
    return value


def _platform(value: str) -> str:
    return str(Platform.parse(value))


#: Field types shared by the request and the rules file: parsed once, errors naming the reason.
#: Lists check each item on its own, so every bad item is reported with its index.
RegistryName = Annotated[str, AfterValidator(parse_registry)]
PlatformName = Annotated[str, AfterValidator(_platform)]
Platforms = list[PlatformName]
TargetImage = Annotated[str, AfterValidator(_target_image)]
RepositoryName = Annotated[str, AfterValidator(parse_repository)]
#: A named credential: ``FERRY_CREDENTIAL_<NAME>_USERNAME`` / ``_PASSWORD`` in app settings.
CREDENTIAL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def now() -> datetime:
    return datetime.now(UTC)


class InlineCredentials(BaseModel):
    """ARM's ``source.credentials``: refused unless ``FERRY_ALLOW_INLINE_CREDENTIALS`` is on."""

    model_config = ConfigDict(extra="forbid")
    username: str | None = Field(None, max_length=256)
    password: SecretStr = Field(min_length=1, max_length=8192)


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    registryUri: str | None = Field(None, max_length=255, description="Login server of the source registry.")
    resourceId: str | None = Field(None, max_length=512, description="ARM resource ID of a source ACR.")
    sourceImage: str = Field(min_length=1, max_length=1024, description="repository[:tag] or repository@digest")
    credential: str | None = Field(None, description="Name of a credential configured in app settings.")
    credentials: InlineCredentials | None = None

    @field_validator("registryUri")
    @classmethod
    def _registry(cls, value: str | None) -> str | None:
        return None if value is None else parse_registry(value)

    @field_validator("resourceId")
    @classmethod
    def _resource_id(cls, value: str | None) -> str | None:
        if value is not None and not RESOURCE_ID.fullmatch(value):
            raise ValueError(
                "must be /subscriptions/{id}/resourceGroups/{rg}"
                "/providers/Microsoft.ContainerRegistry/registries/{name}"
            )
        return value

    @field_validator("credential")
    @classmethod
    def _credential(cls, value: str | None) -> str | None:
        if value is not None and not CREDENTIAL_NAME.fullmatch(value.lower()):
            raise ValueError("a credential name is lowercase letters, digits, '-' and '_'")
        return value

    @field_validator("sourceImage")
    @classmethod
    def _image(cls, value: str, info: ValidationInfo) -> str:
        registry = info.data.get("registryUri")
        if registry is None and info.data.get("resourceId"):
            parse_image_path(value)  # a path inside the registry the resource ID names
        elif registry:
            parse_reference(value, default_registry=registry)
        else:
            parse_reference(value)
        return value

    @model_validator(mode="after")
    def _one_registry(self) -> Source:
        if self.registryUri and self.resourceId:
            raise ValueError("give registryUri or resourceId, not both")
        if self.credential and self.credentials:
            raise ValueError("give credential (a configured name) or credentials, not both")
        return self

    @property
    def registry(self) -> str | None:
        if self.registryUri:
            return self.registryUri
        if self.resourceId:
            match = RESOURCE_ID.fullmatch(self.resourceId)
            assert match is not None
            return f"{match.group('name').lower()}.azurecr.io"
        return None


class ImportRequest(BaseModel):
    """``POST /api/imports``: ARM's ``ImportImageParameters`` with the target and Ferry's options."""

    model_config = ConfigDict(extra="forbid")
    targetRegistry: RegistryName = Field(min_length=1, max_length=255, description="ACR name or login server.")
    source: Source
    targetTags: list[TargetImage] = Field(
        default_factory=list, max_length=50, description="repo[:tag] (az acr import --image)"
    )
    untaggedTargetRepositories: list[RepositoryName] = Field(default_factory=list, max_length=50)
    mode: Literal["NoForce", "Force"] = "NoForce"
    platforms: Platforms = Field(default_factory=list, max_length=32, description="os/arch[/variant] to keep")
    #: Booleans are ``true`` or ``false``: ``"yes"`` or ``1`` is refused, not read as true.
    includeReferrers: StrictBool = False
    dryRun: StrictBool = False
    engine: Literal["oci", "arm", "auto"] = Field("oci", description="oci: stream through Ferry; arm: ACR importImage")

    def spec(self, limits: Limits | None = None) -> ImportSpec:
        """The engine's view of this request."""
        return build_spec(
            self.source.sourceImage,
            self.targetRegistry,
            self.targetTags,
            self.untaggedTargetRepositories,
            registry=self.source.registry,
            force=self.mode == "Force",
            platforms=self.platforms,
            include_referrers=self.includeReferrers,
            dry_run=self.dryRun,
            limits=limits,
        )

    def public(self) -> dict[str, Any]:
        """The request without its secrets: what may be stored and shown."""
        doc = self.model_dump(mode="json", exclude_none=True)
        if self.source.credentials is not None:
            doc["source"]["credentials"] = {"username": self.source.credentials.username, "password": "***"}
        return doc


class ImportJob(BaseModel):
    """The queue message. Inline credentials travel only sealed (``sealed``), never in clear."""

    model_config = ConfigDict(extra="forbid")
    id: str
    request: dict[str, Any]
    sealed: str | None = None
    createdAt: datetime = Field(default_factory=now)


class WorkerInstance(BaseModel):
    """The worker instance an attempt ran on."""

    host: str
    pid: int


class Attempt(BaseModel):
    """One delivery of a job's message to a worker, and how it ended."""

    number: int
    startedAt: datetime
    finishedAt: datetime | None = None
    outcome: Outcome = "running"
    code: str | None = None
    message: str | None = None
    bytes: int = Field(0, description="Blob bytes this attempt sent to the target.")
    worker: WorkerInstance | None = None


class ImportStatus(BaseModel):
    """``GET /api/imports/{id}``: a job's state, as the status table records it, with every
    attempt (``GET /api/imports`` shows the last one only)."""

    id: str
    state: State
    createdAt: datetime
    updatedAt: datetime
    startedAt: datetime | None = None
    finishedAt: datetime | None = None
    attemptCount: int = 0
    attempts: list[Attempt] = Field(default_factory=list)
    retryOf: str | None = Field(None, description="The job this one retries (POST .../retry).")
    cancelRequestedAt: datetime | None = None
    source: str = ""
    targets: list[str] = Field(default_factory=list)
    progress: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None


def status_of(record: dict[str, Any], attempts: list[dict[str, Any]] | None = None) -> ImportStatus:
    """The API's view of a status record: with ``attempts`` (every one, for ``GET`` on one job),
    else the last one the record keeps."""
    doc = dict(record)
    count = doc.pop("attemptCount", None)
    old = doc.pop("attempts", 0)  # records from before attempts were kept: the count alone
    doc["attemptCount"] = count if count is not None else old if isinstance(old, int) else 0
    last = doc.pop("lastAttempt", None)
    doc["attempts"] = attempts if attempts is not None else [last] if last else []
    return ImportStatus.model_validate(doc)


def targets_of(spec: ImportSpec) -> list[str]:
    return [f"{spec.target_registry}/{t}" for t in spec.targets]


__all__ = [
    "FINISHED",
    "Attempt",
    "ImportJob",
    "ImportRequest",
    "ImportStatus",
    "InlineCredentials",
    "Source",
    "TargetRef",
    "now",
    "status_of",
]
