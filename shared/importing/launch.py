"""One import wired, wherever it runs: ``ferry import`` on a terminal and the worker both come
here with the import (a spec and its engine) and how to reach the registries; the clients are
built for the engine chosen, the engine runs, and its result is made (:class:`ImportResult`,
with the engine and why).

Credentials are asked for by registry (:data:`CredentialFor`). The ARM engine's body carries
the source credential asked for with no registry (``""``): only what was given or named, never
an identity (ARM reaches Azure sources with its caller's own). The engine's choice is
:mod:`shared.importing.engines` (pydantic's request: not imported for a plain local import).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.arm import ARM_ENDPOINT
from shared.credentials import Credential
from shared.engine.progress import Progress
from shared.errors import ConfigurationError
from shared.http.budget import PullBudget
from shared.http.policy import TransportOptions
from shared.importing.result import ImportResult
from shared.importing.run import MayTag, run_import
from shared.importing.spec import ImportSpec
from shared.registry import RegistryClient

if TYPE_CHECKING:  # the ARM engine's modules only when it runs; shared.verify only with a policy
    from shared.importing.arm import ArmSource
    from shared.verify.policy import Policy


@dataclass(frozen=True, slots=True)
class Engine:
    """The engine an import runs on, and why; for ``arm``, the target's resource ID and the
    source as ARM names it."""

    name: str
    reason: str
    target_id: str | None = None
    source: ArmSource | None = None


#: The OCI engine, when the command line asks for it (the default): no choice to make.
OCI = Engine("oci", "requested")


#: A registry's credential, by its login server.
CredentialFor = Callable[[str], Credential]


@dataclass(frozen=True, slots=True)
class Wiring:
    """How this process reaches registries and ARM: transport options, parallel transfers, and
    the Entra token credential ARM is called with (made only when the ARM engine runs)."""

    transport: TransportOptions
    concurrency: int
    identity: Callable[[], Any]
    arm_endpoint: str = ARM_ENDPOINT
    #: Seconds an ARM import may run (None: ArmOptions' default).
    arm_timeout: float | None = None
    #: The pull budget each source's manifest ``GET``s are taken from; by default one of this
    #: process's own that waits for a spent window (``ferry import``); None: none kept.
    budget: PullBudget | None = field(default_factory=lambda: PullBudget(wait=True))


@dataclass(frozen=True, slots=True)
class Access:
    """The credentials of one import: the source's and the target's, by registry."""

    source: CredentialFor
    target: CredentialFor
    #: The name of the source's pull budget (a named credential); None: the credential's own words.
    budget_name: str | None = None


async def launch(
    spec: ImportSpec,
    engine: Engine,
    wiring: Wiring,
    access: Access,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    progress_interval: float = 0.5,
    may_tag: MayTag | None = None,
    verification: Policy | None = None,
) -> ImportResult:
    """Run ``spec`` on ``engine``; returns what it came to. ``verification``: the digest is
    verified before a byte moves (the OCI engine only: ACR's import would resolve the tag again)."""
    if engine.name == "arm":
        if verification is not None:
            raise ConfigurationError("engine arm: verify needs the OCI engine")
        result = await _arm(spec, engine, wiring, access)
    else:
        source = _source_client(spec, wiring, access)
        target = RegistryClient(
            spec.target_registry, access.target(spec.target_registry), wiring.transport, role="target"
        )
        async with source, target:
            result = await run_import(
                spec,
                source,
                target,
                concurrency=wiring.concurrency,
                on_progress=on_progress,
                progress_interval=progress_interval,
                may_tag=may_tag,
                verification=verification,
            )
    result.engine, result.engineReason = engine.name, engine.reason
    return result


def _source_client(spec: ImportSpec, wiring: Wiring, access: Access) -> RegistryClient:
    """The source's client: its manifest ``GET``s taken from the pull budget."""
    registry = spec.source.registry
    return RegistryClient(
        registry, access.source(registry), wiring.transport, role="source", budget=wiring.budget,
        budget_name=access.budget_name,
    )  # fmt: skip


async def _arm(spec: ImportSpec, engine: Engine, wiring: Wiring, access: Access) -> ImportResult:
    from shared.arm.importer import ArmImporter, ArmOptions  # noqa: PLC0415 - the ARM engine only
    from shared.importing.arm import run_arm_import  # noqa: PLC0415

    assert engine.target_id is not None and engine.source is not None  # engine_for sets both for arm
    body_credential = access.source("")
    options = ArmOptions(wiring.arm_endpoint, **({} if wiring.arm_timeout is None else {"timeout": wiring.arm_timeout}))
    importer = ArmImporter(wiring.identity(), options, wiring.transport)
    try:
        target = RegistryClient(
            spec.target_registry, access.target(spec.target_registry), wiring.transport, role="target"
        )
        async with target:
            return await run_arm_import(engine.source, spec, importer, engine.target_id, body_credential, target)
    finally:
        await importer.aclose()
