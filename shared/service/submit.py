"""Submitting a request: validate what pydantic cannot (credentials configured, destinations
allowed, the engine), record the job ``queued``, enqueue it. An ``Idempotency-Key`` binds one
request to one job; sent again with another request, it is refused.

No secret is stored: inline credentials travel sealed (AES-GCM, key from app settings, the job id
as associated data) and are opened only in the worker's memory (:func:`unseal`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

from shared import telemetry
from shared.azure_storage.records import JobChange, JobError, JobRecord, Requester, Statuses, now
from shared.credentials import Secret
from shared.errors import (
    BadRequest,
    ConfigurationError,
    FerryError,
    IdempotencyKeyReusedError,
    JobStateError,
    UnknownJobError,
)
from shared.importing.engines import choose_engine
from shared.importing.request import ImportRequest
from shared.logs import job_fields
from shared.service.models import ImportJob, ImportStatus, status_of, targets_of
from shared.service.runs import Runs, RunSlot, trigger
from shared.settings import Settings
from shared.verify.load import policy_named
from shared.verify.policy import PolicyError

log = logging.getLogger(__name__)

#: Jobs submitted under one trigger key, each after the last one failed worth retrying.
RETRIES_PER_KEY = 10
#: Seconds a failed trigger job waits before the next pass retries it, doubling per attempt.
BACKOFF_BASE, BACKOFF_CAP = 60.0, 6 * 3600.0


def _retryable_codes() -> frozenset[str]:
    """The codes of every error class worth another try."""
    found, pending = set(), [FerryError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.retryable:
            found.add(cls.code)
    return frozenset(found)


RETRYABLE_CODES = _retryable_codes() | {"ENQUEUE_FAILED"}


class Submitted(NamedTuple):
    """What a trigger's submission came to: the job, whether it is new, and in words."""

    id: str
    created: bool
    note: str


def job_record(statuses: Statuses, job_id: str) -> JobRecord:
    """The job's status record; :class:`UnknownJobError` when no job has the id (ids are
    alphanumeric: anything else never reaches the table)."""
    record = statuses.get(job_id) if job_id.isalnum() else None
    if record is None:
        raise UnknownJobError(f"no import job {job_id!r}")
    return record


class Queue(Protocol):
    def send(self, content: str) -> None: ...


# -- sealing inline credentials ---------------------------------------------------------------


def seal(key: Secret, job_id: str, username: str | None, password: str) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415 - only with inline credentials

    nonce = os.urandom(12)
    data = json.dumps({"u": username, "p": password}).encode()
    sealed = AESGCM(base64.b64decode(key.reveal())).encrypt(nonce, data, job_id.encode())
    return base64.b64encode(nonce + sealed).decode()


def open_sealed(key: Secret | None, job_id: str, sealed: str) -> tuple[str | None, Secret]:
    """A job's sealed credentials, opened with the deployment's key (which must be set)."""
    if key is None:
        raise ConfigurationError("this job carries sealed credentials but FERRY_CREDENTIAL_KEY is not set")
    return unseal(key, job_id, sealed)


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
    def __init__(
        self, settings: Settings, statuses: Statuses, queue: Queue, new_id: Callable[[], str], runs: Runs | None = None
    ) -> None:
        self.settings = settings
        self.statuses = statuses
        self.queue = queue
        self.new_id = new_id
        #: Every job goes into a run (:mod:`shared.service.runs`): a run of one unless given one.
        self.runs = runs

    def check(self, request: ImportRequest) -> None:
        """What pydantic cannot know: which credentials this deployment has."""
        source = request.source
        if source.credential is not None:
            try:
                for name in source.credential.split(","):
                    self.settings.credential(name)
            except ConfigurationError as exc:
                raise BadRequest("source.credential", str(exc)) from None
        self._check_destinations(request)
        if request.verify is not None:
            try:
                policy_named(self.settings.rules_file, request.verify)
            except PolicyError as exc:
                raise BadRequest("verify", exc.reason) from None
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

    def submit(
        self,
        request: ImportRequest,
        idempotency_key: str | None = None,
        *,
        requested_by: Requester | None = None,
        run: RunSlot | None = None,
    ) -> tuple[ImportStatus, bool]:
        """Record the job ``queued`` and enqueue it; returns its status and whether it is new.
        A repeated ``idempotency_key`` returns the first job instead of a second import. The job
        goes into ``run``, else into a run of one."""
        self.check(request)
        return self._submit(
            request, idempotency_key, _fingerprint(request), self.sealer(request), None, requested_by, run
        )

    def sealer(self, request: ImportRequest) -> Callable[[str], str | None]:
        """Seals the request's inline credentials for a job id (None without any)."""
        creds = request.source.credentials

        def sealer(job_id: str) -> str | None:
            if creds is None:
                return None
            assert self.settings.credential_key is not None
            return seal(self.settings.credential_key, job_id, creds.username, creds.password.get_secret_value())

        return sealer

    def resubmit(
        self,
        job_id: str,
        idempotency_key: str | None = None,
        *,
        requested_by: Requester | None = None,
        run: RunSlot | None = None,
    ) -> tuple[ImportStatus, bool]:
        """``POST /api/imports/{id}/retry``: a new job with the request of a ``failed`` or
        ``cancelled`` one, ``retryOf`` naming it. Its sealed credentials are opened and sealed
        again for the new job, in memory only; nothing secret is read back."""
        record = job_record(self.statuses, job_id)
        if record.state not in ("failed", "cancelled"):
            raise JobStateError(
                f"job {job_id} is {record.state}: only a failed or cancelled job can be retried", state=record.state
            )
        kept = self.statuses.message(job_id)
        if kept is None:
            raise JobStateError(f"job {job_id} kept no request to retry (it predates retries)", state=record.state)
        old = ImportJob.model_validate_json(kept)
        request = old.request
        self.check(request)
        if old.sealed and not self.settings.allow_inline_credentials:
            raise BadRequest("source.credentials", "inline credentials are turned off: the job cannot be retried")

        def sealer(new_id: str) -> str | None:
            if old.sealed is None:
                return None
            username, password = open_sealed(self.settings.credential_key, job_id, old.sealed)
            assert self.settings.credential_key is not None  # open_sealed has checked it
            return seal(self.settings.credential_key, new_id, username, password.reveal())

        return self._submit(request, idempotency_key, f"retry:{job_id}", sealer, job_id, requested_by, run)

    def _submit(
        self,
        request: ImportRequest,
        idempotency_key: str | None,
        fingerprint: str,
        sealer: Callable[[str], str | None],
        retry_of: str | None = None,
        requested_by: Requester | None = None,
        run: RunSlot | None = None,
    ) -> tuple[ImportStatus, bool]:
        job_id = self.new_id()
        if idempotency_key:
            first, found = self._claim(fingerprint, idempotency_key, job_id)
            if found is not None:
                return found, False
            job_id = first  # new, or claimed but its record never landed: make it now
        slot = run or self.single_run(requested_by, "retry" if retry_of else "api")
        record = self.record(request, job_id, retry_of, requested_by, slot.reserve() if slot else None)
        if slot is not None:
            slot.add(record)
        self.enqueue(request, record, sealer(job_id))
        return status_of(record), True

    def single_run(self, requested_by: Requester | None, how: str) -> RunSlot | None:
        """A run of one job (None when this submitter keeps no runs)."""
        if self.runs is None:
            return None
        return RunSlot(self.runs, self.new_id, "import", trigger(how, requested_by), open_=False)

    def record(
        self,
        request: ImportRequest,
        job_id: str,
        retry_of: str | None = None,
        requested_by: Requester | None = None,
        run: str | None = None,
    ) -> JobRecord:
        """The job's record, ``queued``, inserted, and its target tags claimed."""
        spec = request.spec(self.settings.limits)
        at = now()
        record = JobRecord(
            id=job_id, state="queued", createdAt=at, updatedAt=at, source=str(spec.source), targets=targets_of(spec),
            retryOf=retry_of, requestedBy=requested_by, run=run,
        )  # fmt: skip
        self.statuses.insert(record)
        for target in spec.tagged:  # the newest job asking for a tag is the one that moves it
            self.statuses.claim_tag(f"{spec.target_registry}/{target}", job_id)
        return record

    def enqueue(self, request: ImportRequest, status: JobRecord, sealed: str | None) -> None:
        """The job's message (inline credentials sealed), kept for a retry; a job that cannot be
        enqueued is recorded ``failed`` rather than left ``queued`` for ever."""
        job_id = status.id
        trace = telemetry.carrier() or None  # the request's (or event's) trace, continued by the job
        message = ImportJob(id=job_id, request=request, sealed=sealed, createdAt=status.createdAt, traceContext=trace)
        content = message.model_dump_json()
        try:
            self.statuses.keep_message(job_id, content)
            self.queue.send(content)
        except Exception:
            error = JobError(code="ENQUEUE_FAILED", message="the job could not be put on the queue")
            change = JobChange(state="failed", updatedAt=now(), finishedAt=now(), error=error)
            self.statuses.update(job_id, change)
            if self.runs is not None and status.run:
                self.runs.job_ended(status.run, job_id, status.merged(change))
            raise
        log.info(
            "job %s queued: %s -> %s", job_id, status.source, ", ".join(status.targets),
            extra=job_fields(job_id, status.source, status.targets),
        )  # fmt: skip

    def _claim(self, fingerprint: str, key: str, job_id: str) -> tuple[str, ImportStatus | None]:
        """The job ``key`` belongs to, and its status when it is an earlier one; a key sent again
        with another request is refused (the second import is not silently dropped)."""
        first, recorded = self.statuses.claim_idempotency_key(key, job_id, fingerprint)
        if recorded and recorded != fingerprint:
            raise IdempotencyKeyReusedError(
                f"Idempotency-Key {key[:64]!r} was used for another request (job {first}): a new import needs a new key"
            )
        found = self.statuses.get(first) if first != job_id else None
        return first, status_of(found) if found is not None else None

    def submit_keyed(
        self,
        request: ImportRequest,
        key: str,
        now_: datetime | None = None,
        *,
        requested_by: Requester | None = None,
        run: RunSlot | None = None,
    ) -> Submitted:
        """For the triggers: submit under an idempotency ``key``. A job that failed in a way worth
        retrying does not hold its key: a later pass (or redelivered event) submits a new one,
        chained after it, once its back-off (doubling per failed attempt, capped) has passed, up to
        :data:`RETRIES_PER_KEY` attempts; a permanent failure is left alone (a new source digest
        makes a new key)."""
        attempt = 1
        while True:
            status, created = self.submit(request, key, requested_by=requested_by, run=run)
            if created:
                note = "enqueued" if attempt == 1 else f"retrying (attempt {attempt})"
                return Submitted(status.id, True, note)
            if status.state != "failed":
                return Submitted(status.id, False, f"already {status.state}")
            code = (status.error or {}).get("code", "")
            if code not in RETRYABLE_CODES or attempt >= RETRIES_PER_KEY:
                return Submitted(status.id, False, f"failed: {code}")
            wait = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
            finished = status.finishedAt or status.updatedAt
            if (now_ or now()) < finished + timedelta(seconds=wait):
                return Submitted(
                    status.id, False, f"failed: {code}; retrying after {finished + timedelta(seconds=wait):%H:%M:%S}Z"
                )
            key, attempt = f"{key}|after:{status.id}", attempt + 1


def _fingerprint(request: ImportRequest) -> str:
    """What an ``Idempotency-Key`` is bound to: the request as sent, secrets masked."""
    doc = request.model_dump(mode="json")
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
