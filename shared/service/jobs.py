"""The service around the engine: submit a request (record ``queued``, enqueue), and handle a
queue message (``running`` → ``succeeded`` | ``failed``), as the triggers and the local worker
both do.

Retry policy, decided here only: a retryable failure (429, 5xx, connection) raises
:class:`RetryLater`, so the message comes back; on its last delivery (``max_dequeue_count``) the
job is recorded ``failed`` with the last error and the message goes to the poison queue. A
permanent failure (bad reference, tag exists, not found, denied) is recorded ``failed`` at once
and the message consumed. A redelivered message of a finished job changes nothing.

No secret is stored: inline credentials travel sealed (AES-GCM, key from app settings, the job id
as associated data) and are opened only in the worker's memory.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import ValidationError

from shared.arm.importer import ArmImporter, ArmOptions
from shared.credentials import Anonymous, Credential, Secret
from shared.credentials.resolver import Resolver
from shared.engine.progress import Progress
from shared.errors import BadRequest, ConfigurationError, FerryError, UnexpectedError
from shared.importing.arm import run_arm_import
from shared.importing.run import run_import
from shared.importing.spec import ImportSpec, TargetRef
from shared.registry import RegistryClient
from shared.service.engines import arm_source, choose_engine
from shared.service.models import ImportJob, ImportRequest, ImportStatus, now, targets_of
from shared.settings import Settings
from shared.text import clean

log = logging.getLogger(__name__)

#: Seconds between progress writes to the status table.
PROGRESS_INTERVAL = 2.0


class RetryLater(Exception):
    """The job failed in a way worth another delivery; the message must not be consumed."""


class Statuses(Protocol):
    def insert(self, job_id: str, fields: dict[str, Any]) -> None: ...
    def get(self, job_id: str) -> dict[str, Any] | None: ...
    def update(self, job_id: str, fields: dict[str, Any]) -> None: ...
    def list(
        self, state: str | None, limit: int, continuation: str | None
    ) -> tuple[list[dict[str, Any]], str | None]: ...
    def claim_idempotency_key(self, key: str, job_id: str) -> str: ...
    def claim_tag(self, tag: str, job_id: str) -> None: ...
    def newest_for_tag(self, tag: str) -> str | None: ...


class Queue(Protocol):
    def send(self, content: str) -> None: ...


# -- sealing inline credentials ---------------------------------------------------------------


def seal(key: Secret, job_id: str, username: str | None, password: str) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415 - only with inline credentials

    nonce = os.urandom(12)
    data = json.dumps({"u": username, "p": password}).encode()
    sealed = AESGCM(base64.b64decode(key.reveal())).encrypt(nonce, data, job_id.encode())
    return base64.b64encode(nonce + sealed).decode()


def unseal(key: Secret, job_id: str, sealed: str) -> tuple[str | None, Secret]:
    from cryptography.exceptions import InvalidTag  # noqa: PLC0415
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

    raw = base64.b64decode(sealed)
    try:
        doc = json.loads(AESGCM(base64.b64decode(key.reveal())).decrypt(raw[:12], raw[12:], job_id.encode()))
    except InvalidTag:
        raise ConfigurationError("the sealed credentials of this job do not open with FERRY_CREDENTIAL_KEY") from None
    return doc["u"], Secret(doc["p"])


# -- submitting --------------------------------------------------------------------------------


class Submitter:
    def __init__(self, settings: Settings, statuses: Statuses, queue: Queue, new_id: Callable[[], str]) -> None:
        self.settings = settings
        self.statuses = statuses
        self.queue = queue
        self.new_id = new_id

    def check(self, request: ImportRequest) -> None:
        """What pydantic cannot know: which credentials this deployment has."""
        source = request.source
        if source.credential is not None:
            try:
                self.settings.credential(source.credential)
            except ConfigurationError as exc:
                raise BadRequest("source.credential", str(exc)) from None
        self._check_destinations(request)
        try:
            choose_engine(request, self.settings.registries)
        except ConfigurationError as exc:
            raise BadRequest("engine", str(exc).removeprefix("engine arm: ")) from None
        if source.credentials is not None and not self.settings.allow_inline_credentials:
            raise BadRequest(
                "source.credentials",
                "inline credentials are turned off: configure a named credential in app settings "
                "(FERRY_CREDENTIAL_<NAME>_USERNAME and _PASSWORD, Key Vault references in Azure) and "
                'send "credential": "<name>" instead',
            )

    def _check_destinations(self, request: ImportRequest) -> None:
        """SSRF: no private, link-local, metadata or (unless allowed) loopback address as a source
        or target; only allowed sources when FERRY_SOURCE_REGISTRIES is set. Names that resolve to
        such addresses are refused again when Ferry connects."""
        transport = self.settings.transport
        source = request.source.registry
        for field, registry in (("targetRegistry", request.targetRegistry), ("source.registryUri", source)):
            reason = transport.refusal(registry) if registry else None
            if reason is not None:
                raise BadRequest(field, f"refused: {reason} (FERRY_ALLOWED_REGISTRIES can allow it)")
        allowed = self.settings.source_registries
        if allowed and (source or "docker.io") not in allowed:
            raise BadRequest("source.registryUri", f"{source or 'docker.io'} is not one of FERRY_SOURCE_REGISTRIES")

    def submit(self, request: ImportRequest, idempotency_key: str | None = None) -> tuple[ImportStatus, bool]:
        """Record the job ``queued`` and enqueue it; returns its status and whether it is new.
        A repeated ``idempotency_key`` returns the first job instead of a second import."""
        self.check(request)
        job_id = self.new_id()
        if idempotency_key:
            first = self.statuses.claim_idempotency_key(idempotency_key, job_id)
            if first != job_id:
                found = self.statuses.get(first)
                if found is not None:
                    return ImportStatus.model_validate(found), False
                job_id = first  # claimed, but its record never landed: make it now
        spec = request.spec(self.settings.limits)
        at = now()
        status = ImportStatus(
            id=job_id, state="queued", createdAt=at, updatedAt=at, source=str(spec.source), targets=targets_of(spec)
        )
        self.statuses.insert(job_id, status.model_dump(mode="json"))
        for target in spec.tagged:  # the newest job asking for a tag is the one that moves it
            self.statuses.claim_tag(f"{spec.target_registry}/{target}", job_id)
        sealed = None
        creds = request.source.credentials
        if creds is not None:
            assert self.settings.credential_key is not None
            sealed = seal(self.settings.credential_key, job_id, creds.username, creds.password.get_secret_value())
        message = ImportJob(id=job_id, request=_without_secrets(request), sealed=sealed, createdAt=at)
        try:
            self.queue.send(message.model_dump_json())
        except Exception:
            self.statuses.update(
                job_id,
                {
                    "state": "failed",
                    "updatedAt": now(),
                    "error": {"code": "ENQUEUE_FAILED", "message": "the job could not be put on the queue"},
                },
            )
            raise
        return status, True

    def submit_keyed(self, request: ImportRequest, key: str) -> str:
        """For the triggers: submit under an idempotency ``key``; returns the job id."""
        status, created = self.submit(request, key)
        if not created:
            log.info("job %s already exists for this event or mirror entry; nothing new enqueued", status.id)
        return status.id


def _without_secrets(request: ImportRequest) -> dict[str, Any]:
    doc = request.model_dump(mode="json", exclude_none=True)
    doc["source"].pop("credentials", None)
    return doc


# -- handling ----------------------------------------------------------------------------------


class Worker:
    """Runs one queue message. The Functions queue trigger and ``python -m shared.cli worker``
    both call :meth:`handle`."""

    def __init__(
        self,
        settings: Settings,
        statuses: Statuses,
        target_credential: Callable[[str], Credential] | None = None,
        identity: Callable[[], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.statuses = statuses
        self._target_credential = target_credential
        if identity is None and settings.client_id:
            client_id = settings.client_id

            def identity() -> Any:
                from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - only in Azure

                return DefaultAzureCredential(managed_identity_client_id=client_id)

        self.credentials = Resolver(settings.credential, identity)

    async def _update(self, job_id: str, **fields: Any) -> None:
        fields["updatedAt"] = now()
        await asyncio.to_thread(self.statuses.update, job_id, fields)

    def source_credential(self, job: ImportJob, request: ImportRequest) -> Credential:
        """Sealed inline credentials, else the named one, else the identity for an ACR."""
        given = None
        if job.sealed:
            if self.settings.credential_key is None:
                raise ConfigurationError("this job carries sealed credentials but FERRY_CREDENTIAL_KEY is not set")
            given = unseal(self.settings.credential_key, job.id, job.sealed)
        return self.credentials(request.source.registry or "", name=request.source.credential, given=given)

    def credential_for(self, registry: str, name: str | None) -> Credential:
        """A named credential, else the target's (the triggers')."""
        return self.credentials(registry, name=name) if name else self.target_credential(registry)

    def target_credential(self, registry: str) -> Credential:
        if self._target_credential is not None:
            return self._target_credential(registry)
        return self.credentials(registry)

    async def handle(self, content: str, dequeue_count: int) -> None:
        """Run the job in ``content``. Returns when the message may be consumed; raises
        :class:`RetryLater` when it must come back."""
        try:
            job = ImportJob.model_validate_json(content)
            request = ImportRequest.model_validate(job.request)
        except ValidationError as exc:
            log.error("dropping a malformed queue message: %s", exc.errors(include_input=False, include_url=False)[:3])
            return
        found = await asyncio.to_thread(self.statuses.get, job.id)
        if found is not None and found.get("state") in ("succeeded", "failed"):
            log.info("job %s is already %s; redelivery ignored", job.id, found["state"])
            return
        started_at = (found or {}).get("startedAt") or now()
        await self._update(job.id, state="running", attempts=dequeue_count, startedAt=started_at)
        try:
            result = await self._run(job, request)
        except FerryError as exc:
            await self._failed(job.id, exc, dequeue_count)
            return
        except RetryLater:
            raise
        except Exception as exc:  # a bug or an unexpected library error: retry, then poison
            log.exception("job %s failed unexpectedly", job.id)
            await self._failed(job.id, UnexpectedError(type(exc).__name__), dequeue_count)
            return
        final = result.pop("progress", None)
        await self._update(job.id, state="succeeded", finishedAt=now(), result=result, progress=final, error=None)
        log.info("job %s succeeded: %s -> %s", job.id, result.get("source"), ", ".join(result.get("targets", [])))

    async def _failed(self, job_id: str, exc: FerryError, dequeue_count: int) -> None:
        error = {"code": exc.code, "message": str(exc)}
        if exc.detail:
            error["detail"] = clean(exc.detail)  # what lies under the message: the HTTP exchange
        last = dequeue_count >= self.settings.max_dequeue_count
        if exc.retryable and not last:
            await self._update(job_id, state="queued", error=error)
            log.warning("job %s: attempt %d failed, will retry: %s", job_id, dequeue_count, exc)
            raise RetryLater(str(exc))
        await self._update(job_id, state="failed", finishedAt=now(), error=error)
        log.warning("job %s failed: %s", job_id, exc)
        if exc.retryable:  # the last delivery: the host (or the local worker) moves it to poison
            raise RetryLater(str(exc))

    async def _run(self, job: ImportJob, request: ImportRequest) -> dict[str, Any]:
        spec = request.spec(self.settings.limits)
        engine, why = choose_engine(request, self.settings.registries)
        if engine == "arm":
            result = await self._run_arm(job, request, spec)
        else:
            result = await self._run_oci(job, request, spec)
        result.update({"engine": engine, "engineReason": why})
        return result

    async def _run_arm(self, job: ImportJob, request: ImportRequest, spec: ImportSpec) -> dict[str, Any]:
        options = ArmOptions(endpoint=self.settings.arm_endpoint, timeout=self.settings.arm_timeout)
        identity = self.credentials.identity()
        importer = ArmImporter(identity.source, options, self.settings.transport)
        target = RegistryClient(
            spec.target_registry, self.target_credential(spec.target_registry), self.settings.transport, role="target"
        )
        try:
            async with target:
                return await run_arm_import(
                    arm_source(request),
                    spec,
                    importer,
                    self.settings.registries[spec.target_registry],
                    self._arm_source_credential(job, request),
                    target,
                )
        finally:
            await importer.aclose()

    def _arm_source_credential(self, job: ImportJob, request: ImportRequest) -> Credential:
        """ARM reaches Azure sources with the caller's identity: only named or inline credentials go in the body."""
        if job.sealed or request.source.credential:
            return self.source_credential(job, request)
        return Anonymous()

    async def _run_oci(self, job: ImportJob, request: ImportRequest, spec: ImportSpec) -> dict[str, Any]:
        progress = _ProgressWriter(self.statuses, job.id)

        async def may_tag(target: TargetRef) -> bool:
            newest = await asyncio.to_thread(self.statuses.newest_for_tag, f"{spec.target_registry}/{target}")
            return newest is None or newest >= job.id  # ids sort newest first

        source = RegistryClient(
            spec.source.registry, self.source_credential(job, request), self.settings.transport, role="source"
        )
        target = RegistryClient(
            spec.target_registry, self.target_credential(spec.target_registry), self.settings.transport, role="target"
        )
        try:
            async with source, target:
                result = await run_import(
                    spec,
                    source,
                    target,
                    concurrency=self.settings.concurrency,
                    on_progress=progress,
                    progress_interval=PROGRESS_INTERVAL,
                    may_tag=may_tag,
                )
        finally:
            await progress.aclose()  # no progress write may land after the job's final record
        if progress.latest is not None:
            result["progress"] = progress.latest
        return result


class _ProgressWriter:
    """Progress to the status table off the event loop (the table client is synchronous, and in
    the Functions host several messages share one loop): one write at a time in a thread; the
    engine's :class:`~shared.engine.progress.Reporter` alone throttles."""

    def __init__(self, statuses: Any, job_id: str) -> None:
        self._statuses = statuses
        self._job_id = job_id
        self._task: asyncio.Task[None] | None = None
        self.latest: dict[str, Any] | None = None

    def __call__(self, p: Progress) -> None:
        self.latest = p.snapshot()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._write(self.latest))

    async def _write(self, snapshot: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(self._statuses.update, self._job_id, {"progress": snapshot, "updatedAt": now()})
        except Exception:  # progress is best effort: never fail an import over it
            log.warning("job %s: could not record progress", self._job_id)

    async def aclose(self) -> None:
        if self._task is not None:
            await self._task


__all__ = ["BadRequest", "RetryLater", "Submitter", "Worker", "seal", "unseal"]
