"""Running a job with the ARM engine, and choosing the engine.

Engine choice per job (``engine``): ``oci`` (the default) streams through Ferry; ``arm`` asks the
target ACR to import server-side (the only way to reach a source by resource ID whose public
endpoint is off: ACR's trusted-service path); ``auto`` picks ``arm`` when the source is given by
resource ID, or when the target's resource ID is configured (``FERRY_REGISTRIES``) and the job
needs nothing only the OCI engine does (a platform filter, referrers, a dry run).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shared.arm.importer import ArmImporter, import_body
from shared.credentials import AccessToken, Anonymous, Credential, EntraIdentity, UsernamePassword
from shared.errors import ConfigurationError, NotFoundError
from shared.jobs.models import ImportRequest
from shared.jobs.spec import ImportSpec
from shared.oci.reference import parse_image_path
from shared.registry import RegistryClient

OCI_ONLY = ("platforms", "includeReferrers", "dryRun")


def oci_only_options(request: ImportRequest) -> list[str]:
    return [name for name in OCI_ONLY if getattr(request, name)]


def choose_engine(request: ImportRequest, registries: dict[str, str]) -> tuple[str, str]:
    """(engine, why). Raises :class:`ConfigurationError` for an ``arm`` job that cannot run."""
    target_id = registries.get(request.targetRegistry)
    needs_oci = oci_only_options(request)
    if request.engine == "oci":
        return "oci", "requested"
    if request.engine == "arm":
        if target_id is None:
            raise ConfigurationError(
                f"engine arm: the resource ID of {request.targetRegistry} is not configured (FERRY_REGISTRIES)"
            )
        if needs_oci:
            raise ConfigurationError(f"engine arm: {', '.join(needs_oci)} need the OCI engine")
        return "arm", "requested"
    if target_id is not None and not needs_oci:
        if request.source.resourceId:
            return (
                "arm",
                "the source is given by resource ID, which only ACR's own import reaches when its endpoint is private",
            )
        return "arm", "the target's resource ID is configured and the job needs nothing only the OCI engine does"
    if request.source.resourceId and target_id is None:
        return "oci", "the target's resource ID is not configured; the source is reached at its login server"
    return "oci", "the job needs the OCI engine" if needs_oci else "no resource ID is configured for the target"


def _source_image(request: ImportRequest) -> str:
    """ARM takes a tag or a digest, not both: a pinned ``tag@digest`` goes as the digest."""
    path = parse_image_path(request.source.sourceImage)
    return str(replace(path, tag=None)) if path.digest else str(path)


def arm_body(request: ImportRequest, spec: ImportSpec, credential: Credential) -> dict[str, Any]:
    username, password = None, None
    if isinstance(credential, UsernamePassword):
        username, password = credential.username, credential.password
    elif isinstance(credential, AccessToken):
        password = credential.token
    elif not isinstance(credential, (Anonymous, EntraIdentity)):  # pragma: no cover - exhaustive
        raise ConfigurationError(f"no ARM form for {type(credential).__name__}")
    return import_body(
        source_image=_source_image(request),
        registry_uri=None if request.source.resourceId else spec.source.registry,
        resource_id=request.source.resourceId,
        username=username,
        password=password,
        target_tags=[f"{t.repository}:{t.tag}" for t in spec.tagged],
        untagged=[t.repository for t in spec.targets if not t.tag],
        force=spec.force,
    )


async def run_arm_import(
    request: ImportRequest,
    spec: ImportSpec,
    importer: ArmImporter,
    target_resource_id: str,
    source_credential: Credential,
    target: RegistryClient,
) -> dict[str, Any]:
    """Import server-side, then read what landed through the data plane, so that both engines
    report the same fields."""
    arm = await importer.run(target_resource_id, arm_body(request, spec, source_credential))
    result: dict[str, Any] = {"source": str(spec.source)}
    first = (spec.tagged or spec.targets)[0]
    reference = first.tag or str(parse_image_path(request.source.sourceImage).digest or "")
    try:
        landed = await target.resolve(first.repository, reference) if reference else None
    except NotFoundError:
        landed = None
    if landed is not None:
        result.update({"digest": str(landed.digest), "mediaType": landed.media_type, "size": landed.size})
        result["targets"] = [
            f"{spec.target_registry}/{t.repository}:{t.tag}"
            if t.tag
            else f"{spec.target_registry}/{t.repository}@{landed.digest}"
            for t in spec.targets
        ]
    result["arm"] = arm
    result["seconds"] = arm["seconds"]
    return result
