"""An import run by ACR itself through ARM's ``importImage`` (the ``arm`` engine): the request
body from the spec, the long-running operation, then what landed read through the data plane,
so that both engines report the same fields. Which engine a job gets is the service's choice
(:mod:`shared.importing.engines`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from shared.arm.importer import ArmImporter, ImportImageParameters, ImportSource, ImportSourceCredentials
from shared.credentials import Credential
from shared.importing.result import ImportResult
from shared.importing.spec import ImportSpec
from shared.oci.reference import parse_image_path
from shared.registry import RegistryClient
from shared.registry.store import RegistryRepository


@dataclass(frozen=True, slots=True)
class ArmSource:
    """The source as ARM names it: ``image`` is a path in the registry (``repo[:tag][@digest]``),
    which is given by login server (the spec's) or by ``resource_id``."""

    image: str
    resource_id: str | None = None


def _source_image(source: ArmSource) -> str:
    """ARM takes a tag or a digest, not both: a pinned ``tag@digest`` goes as the digest."""
    path = parse_image_path(source.image)
    return str(replace(path, tag=None)) if path.digest else str(path)


def arm_body(source: ArmSource, spec: ImportSpec, credential: Credential) -> ImportImageParameters:
    """ARM's ``ImportImageParameters`` for ``spec``, whole: the only place a password is put into
    a request body. ARM takes a username and password, or a password alone (a token); an identity
    sends none."""
    src = ImportSource(sourceImage=_source_image(source))
    if source.resource_id:
        src["resourceId"] = source.resource_id
    elif spec.source.registry:
        src["registryUri"] = spec.source.registry
    login = credential.login()
    username, password = login if login is not None else (None, credential.registry_token())
    if password is not None:
        src["credentials"] = ImportSourceCredentials(password=password.reveal())
        if username:
            src["credentials"]["username"] = username
    body = ImportImageParameters(source=src, mode="Force" if spec.force else "NoForce")
    if tags := [f"{t.repository}:{t.tag}" for t in spec.tagged]:
        body["targetTags"] = tags
    if untagged := [t.repository for t in spec.targets if not t.tag]:
        body["untaggedTargetRepositories"] = untagged
    return body


async def run_arm_import(
    source: ArmSource,
    spec: ImportSpec,
    importer: ArmImporter,
    target_resource_id: str,
    source_credential: Credential,
    target: RegistryClient,
) -> ImportResult:
    """Import server-side, then read what landed through the data plane, so that both engines
    report the same fields."""
    arm = await importer.run(target_resource_id, arm_body(source, spec, source_credential))
    result = ImportResult(source=str(spec.source))
    first = (spec.tagged or spec.targets)[0]
    reference = first.tag or str(parse_image_path(source.image).digest or "")
    landed = await RegistryRepository(target, first.repository).lookup(reference) if reference else None
    if landed is not None:
        result.digest, result.mediaType, result.size = str(landed.digest), landed.media_type, landed.size
        result.targets = [
            f"{spec.target_registry}/{t.repository}:{t.tag}"
            if t.tag
            else f"{spec.target_registry}/{t.repository}@{landed.digest}"
            for t in spec.targets
        ]
    result.arm = arm
    result.seconds = arm["seconds"]
    return result
