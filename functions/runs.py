"""The runs API (``shared/service/runcontrol.py`` does the work; docs/events.md explains runs):

- ``POST /api/runs``: ``{"imports": [ ... ]}``, each item a ``POST /api/imports`` body, at most
  :data:`~shared.service.runcontrol.MAX_BATCH`; a bad item is refused with its index (nothing is
  enqueued); one ``Idempotency-Key`` for the batch. ``202`` with the run, ``Location``.
- ``GET /api/runs?kind=&state=&limit=&continuation=``: runs newest first, without their jobs.
- ``GET /api/runs/{id}``: counts, bytes, what landed where, the event's delivery, and its jobs.
- ``POST /api/runs/{id}/cancel``: cancels what has not ended (``202``); ``409`` once it has ended.
- ``POST /api/runs/{id}/retry``: a new run of its failed and cancelled jobs (``202``, ``retryOf``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from functions.root import Services
from shared.azure_storage.records import Requester
from shared.errors import BadRequest
from shared.importing.request import ImportRequest
from shared.runs.model import Run
from shared.service import runcontrol
from shared.service.models import RetriedJob, RunAccepted, RunList
from shared.service.requester import requested_by

RETRY_AFTER = "5"
KINDS = "^(import|batch|mirror|promotion|retry)$"
STATES = "^(running|succeeded|failed|partial|cancelled)$"


class RunRequest(BaseModel):
    """``POST /api/runs``: imports that make one run."""

    model_config = ConfigDict(extra="forbid")
    imports: list[ImportRequest] = Field(min_length=1, max_length=runcontrol.MAX_BATCH)


def caller(request: Request, services: Services) -> Requester:
    """Who sent ``request`` (shared/service/requester.py)."""
    name = requested_by(request.headers, request.query_params, easy_auth=services.settings.easy_auth)
    return Requester(kind="api", name=name)


def _accepted(run_id: str, created: bool, jobs: list[RetriedJob] | None = None) -> JSONResponse:
    location = f"/api/runs/{run_id}"
    doc = RunAccepted(id=run_id, state="running", location=location, created=created, jobs=jobs or [])
    return JSONResponse(
        status_code=202, content=doc.model_dump(), headers={"Location": location, "Retry-After": RETRY_AFTER}
    )


def run_routes(app: FastAPI, get_services: Callable[[], Services], answers: dict[int | str, dict[str, Any]]) -> None:
    """The routes above; ``answers`` are the API's documented refusals (400, 404, 409, 422)."""

    @app.post("/api/runs", status_code=202, response_model=RunAccepted, responses=answers)
    async def submit_run(
        body: RunRequest, request: Request, idempotency_key: Annotated[str | None, Header(max_length=256)] = None
    ) -> JSONResponse:
        svc = get_services()
        run_id, created = await asyncio.to_thread(
            runcontrol.submit_batch, svc.submitter, svc.runs, body.imports, idempotency_key, caller(request, svc)
        )
        return _accepted(run_id, created)

    @app.get("/api/runs", response_model=RunList)
    async def list_runs(
        kind: Annotated[str | None, Query(pattern=KINDS)] = None,
        state: Annotated[str | None, Query(pattern=STATES)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        continuation: Annotated[str | None, Query(max_length=2048)] = None,
    ) -> RunList:
        if continuation is not None and not continuation.startswith("{"):
            raise BadRequest("continuation", "not a token from a previous page's 'next'")
        items, token = await asyncio.to_thread(
            runcontrol.listing, get_services().runs, kind, state, limit, continuation
        )
        return RunList(items=items, next=token)

    @app.get("/api/runs/{run_id}", response_model=Run, responses=answers)
    async def show_run(run_id: str) -> Run:
        return await asyncio.to_thread(runcontrol.show, get_services().runs, run_id)

    _run_control(app, get_services, answers)


def _run_control(app: FastAPI, get_services: Callable[[], Services], answers: dict[int | str, dict[str, Any]]) -> None:
    """Cancel a run; retry its failures."""

    @app.post("/api/runs/{run_id}/cancel", status_code=202, response_model=Run, responses=answers)
    async def cancel_run(run_id: str) -> JSONResponse:
        """Cancels every job of the run that has not ended; the run ends ``cancelled``."""
        svc = get_services()
        run = await asyncio.to_thread(runcontrol.cancel, svc.submitter, svc.runs, run_id)
        return JSONResponse(status_code=202, content=run.model_dump(mode="json"))

    @app.post("/api/runs/{run_id}/retry", status_code=202, response_model=RunAccepted, responses=answers)
    async def retry_run(run_id: str, request: Request) -> JSONResponse:
        """A new run of the run's failed and cancelled jobs (``retryOf`` names the run)."""
        svc = get_services()
        new, jobs = await asyncio.to_thread(runcontrol.retry, svc.submitter, svc.runs, run_id, caller(request, svc))
        return _accepted(new, True, jobs)
