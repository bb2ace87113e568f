"""Which engine runs a job (``engine`` in the request): ``oci`` (the default) streams through
Ferry; ``arm`` asks the target ACR to import server-side (the only way to reach a source by
resource ID whose public endpoint is off: ACR's trusted-service path); ``auto`` picks ``arm``
when the source is given by resource ID, or when the target's resource ID is configured
(``FERRY_REGISTRIES``) and the job needs nothing only the OCI engine does (a platform filter,
referrers, a dry run, a verification policy).
"""

from __future__ import annotations

from shared.errors import ConfigurationError
from shared.importing.arm import ArmSource
from shared.importing.launch import Engine
from shared.importing.request import ImportRequest

#: A verified import resolves, verifies and copies one digest itself: ACR's import would resolve
#: the tag again.
OCI_ONLY = ("platforms", "includeReferrers", "dryRun", "verify")


def oci_only_options(request: ImportRequest) -> list[str]:
    return [name for name in OCI_ONLY if getattr(request, name)]


def choose_engine(request: ImportRequest, registries: dict[str, str]) -> tuple[str, str]:
    """(engine, why). Raises :class:`ConfigurationError` for an ``arm`` job that cannot run."""
    target_id = registries.get(request.targetRegistry)
    needs_oci = oci_only_options(request)
    if request.engine == "oci":
        if "engine" in request.model_fields_set:
            return "oci", "requested"
        return (
            "oci",
            "the default: oci streams through Ferry between any two registries"
            ' ("engine": "auto" or "arm" for ACR\'s import)',
        )
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


def arm_source(request: ImportRequest) -> ArmSource:
    """The request's source as the ARM engine takes it."""
    return ArmSource(request.source.sourceImage, request.source.resourceId)


def engine_for(request: ImportRequest, registries: dict[str, str]) -> Engine:
    """The engine ``request`` runs on with these target resource IDs (``FERRY_REGISTRIES``)."""
    name, why = choose_engine(request, registries)
    if name == "arm":
        return Engine(name, why, registries[request.targetRegistry], arm_source(request))
    return Engine(name, why)
