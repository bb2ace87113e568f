"""Running a job: handle a queue message (``running`` → ``succeeded`` | ``failed``), as the queue
trigger and the local worker both do. Submitting is :mod:`shared.service.submit`.

Retry policy, decided here only: a retryable failure (429, 5xx, connection) raises
:class:`RetryLater`, so the message comes back; on its last delivery (``max_dequeue_count``) the
job is recorded ``failed`` with the last error and the message goes to the poison queue. A
permanent failure (bad reference, tag exists, not found, denied) is recorded ``failed`` at once
and the message consumed. A redelivered message of a finished job changes nothing.

Inline credentials are opened (:func:`~shared.service.submit.unseal`) only in the worker's memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from shared.arm.importer import ArmImporter, ArmOptions
from shared.credentials import Anonymous, Credential
from shared.credentials.resolver import Resolver
from shared.engine.progress import Progress
from shared.errors import BadRequest, ConfigurationError, FerryError, UnexpectedError
from shared.importing.arm import run_arm_import
from shared.importing.run import run_import
from shared.importing.spec import ImportSpec, TargetRef
from shared.logs import job_fields
from shared.registry import RegistryClient
from shared.service.engines import arm_source, choose_engine
from shared.service.models import ImportJob, ImportRequest, now
from shared.service.submit import Statuses, Submitter, seal, unseal
from shared.settings import Settings
from shared.text import clean

log = logging.getLogger(__name__)

#: Seconds between progress writes to the status table.
PROGRESS_INTERVAL = 2.0


class RetryLater(Exception):
    """The job failed in a way worth another delivery; the message must not be consumed."""


def _summary(result: dict[str, Any]) -> str:
    """``source -> targets (N bytes, B blobs copied, S s)``, for the job's success line."""
    blobs = result.get("blobs") or {}
    copied = blobs.get("copied", 0) if isinstance(blobs, dict) else 0
    moved = f"{result.get('bytes', 0)} bytes, {copied} blobs copied, {result.get('seconds', 0)} s"
    return f"{result.get('source')} -> {', '.join(result.get('targets', []))} ({moved})"


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
        fields = job_fields(job.id, str((found or {}).get("source", "")), (found or {}).get("targets"))
        log.info("job %s started (attempt %d): %s", job.id, dequeue_count, fields["source"], extra=fields)
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
        log.info("job %s succeeded: %s", job.id, _summary(result), extra=fields)

    async def _failed(self, job_id: str, exc: FerryError, dequeue_count: int) -> None:
        error = {"code": exc.code, "message": str(exc)}
        if exc.detail:
            error["detail"] = clean(exc.detail)  # what lies under the message: the HTTP exchange
        last = dequeue_count >= self.settings.max_dequeue_count
        if exc.retryable and not last:
            await self._update(job_id, state="queued", error=error)
            log.warning(
                "job %s: attempt %d failed (%s): %s; retry in %g s", job_id, dequeue_count, exc.code, exc,
                self.settings.retry_delay, extra=job_fields(job_id),
            )  # fmt: skip
            raise RetryLater(str(exc))
        await self._update(job_id, state="failed", finishedAt=now(), error=error)
        log.warning("job %s failed (%s): %s", job_id, exc.code, exc, extra=job_fields(job_id))
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
