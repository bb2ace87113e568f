"""One import as asked for: ARM's ``ImportImageParameters`` plus the target and Ferry's options
(``POST /api/imports``, ``ferry import``, a rule's import). Validated with pydantic; every bad field
is named with its reason. :meth:`ImportRequest.spec` is the engine's view of it."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.importing.spec import ImportSpec, Limits, build_spec, parse_target_image
from shared.oci.manifest import Platform
from shared.oci.reference import RESOURCE_ID, parse_image_path, parse_reference, parse_registry, parse_repository


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
    credential: str | None = Field(
        None,
        description="Name of a credential configured in app settings; several, comma-separated (several "
        "accounts of one registry): each job pulls as the one whose pull budget has the most room.",
    )
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
        if value is None:
            return None
        names = [n.strip() for n in value.split(",")]
        if not all(CREDENTIAL_NAME.fullmatch(n.lower()) for n in names):
            raise ValueError("a credential name is lowercase letters, digits, '-' and '_' (several: comma-separated)")
        return ",".join(names)

    @field_validator("sourceImage")
    @classmethod
    def _image(cls, value: str, info: ValidationInfo) -> str:
        registry = info.data.get("registryUri")
        if registry is None and info.data.get("resourceId"):
            parse_image_path(value)  # a path inside the registry the resource ID names
        elif registry:
            try:
                parse_reference(value, default_registry=registry)
            except ValueError:
                host, _, path = value.partition("/")
                if path and ("." in host or ":" in host or host == "localhost"):
                    raise ValueError(
                        f"{value!r} starts with a registry ({host}): put the host in registryUri "
                        f"and only the path in sourceImage ({path!r})"
                    ) from None
                raise
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
    verify: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="a verification policy of the rules file: the digest is copied only if it holds (docs/signing.md)",
    )

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

    def without_secrets(self) -> dict[str, Any]:
        """The request as a queue message or a job's record carries it (JSON, as it leaves):
        inline credentials left out (they travel sealed, apart)."""
        doc = self.model_dump(mode="json", exclude_none=True)
        doc["source"].pop("credentials", None)
        return doc


#: A request as it leaves in a queue message or a job's record: :meth:`ImportRequest.without_secrets`.
PublicRequest = Annotated[ImportRequest, PlainSerializer(ImportRequest.without_secrets)]
