"""The HTTP API (FastAPI; served by ``func.AsgiFunctionApp`` in Azure and by uvicorn locally).

- ``POST /api/imports``: validate, record ``queued``, enqueue; ``202`` with the job, ``Location``
  and ``Retry-After``. An ``Idempotency-Key`` header returns the first job for a repeated request.
- ``GET /api/imports/{id}``: the job's status with every attempt; ``GET /api/imports``: recent
  jobs, newest first, each with its last attempt.
- ``POST /api/imports/{id}/cancel``: a queued job is ``cancelled`` at once (``200``); a running
  one is asked to stop (``202``) and stops before any tag moves; a finished one is ``409``.
- ``POST /api/imports/{id}/retry``: a new job with a failed or cancelled job's request
  (``202``, ``Location``, ``retryOf``); ``409`` for any other state.
- ``GET /api/health``: the queue and the table answer; the rules file in force, its counts,
  when it was loaded and a refused edit (``degraded``).

Bad input answers ``400`` with every bad field and why; nothing else is echoed back.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from functions.bodies import BoundedBodies
from functions.control import add_control_routes
from functions.docs import add_docs_routes
from functions.messages import body_message
from functions.notifications import add_notification_routes
from functions.root import Services, services
from functions.runs import caller, run_routes
from functions.tracing import RequestSpans
from shared.automation.calls import rules_state, run_mirrors
from shared.errors import BadRequest, ConfigurationError, IdempotencyKeyReusedError, JobStateError, UnknownJobError
from shared.importing.request import ImportRequest
from shared.service import control, runcontrol
from shared.service.models import Accepted, ImportStatus, JobList, status_of

log = logging.getLogger(__name__)
RETRY_AFTER = "5"


class Problem(BaseModel):
    code: str
    message: str
    fields: list[dict[str, str]] = []


class Conflict(Problem):
    """The job is not in a state the request applies to: its state is given."""

    state: str


def _field(loc: tuple[Any, ...]) -> str:
    """A field's path as a client writes it: ``source.registryUri``, ``targetTags[2]``."""
    out = ""
    for part in loc:
        if part == "body":
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _message(error: dict[str, Any]) -> str:
    if error.get("type") == "bool_type":
        return "must be true or false"
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")


def _is_token(text: str) -> bool:
    try:
        return isinstance(json.loads(text), (dict, str))
    except ValueError:
        return False


def create_app(get_services: Callable[[], Services] = services) -> FastAPI:
    app = FastAPI(
        responses={400: {"model": Problem, "description": "Bad input: every bad field and why"}},
        title="Ferry",
        version="0.1.0",
        description="Import container images and OCI artifacts into a registry, as `az acr import` does.",
        openapi_url="/api/openapi.json",
        docs_url=None,  # functions/docs.py serves it, with Swagger UI's files from a package
        redoc_url=None,
    )
    app.add_middleware(BoundedBodies)
    app.add_middleware(RequestSpans)  # outermost: the request's span holds everything under it
    _error_handlers(app)
    _job_error_handlers(app)
    _import_routes(app, get_services)
    run_routes(app, get_services, {**_SUBMIT_ANSWERS, **_CONTROL_ANSWERS})
    _service_routes(app, get_services)
    add_notification_routes(app, get_services)
    add_docs_routes(app, "/api/openapi.json")
    add_control_routes(app, get_services)
    return app


def _allowed(app: FastAPI, path: str) -> str:
    """The methods of every route on ``path``, for a 405's ``Allow``."""
    methods = {m for r in app.routes if isinstance(r, APIRoute) and r.path_regex.match(path) for m in r.methods or ()}
    return ", ".join(sorted(methods))


def _invalid_fields(exc: RequestValidationError, content_type: str = "") -> list[dict[str, str]]:
    """Each bad field of a request, named by its path (``targetTags[2]``), and why."""
    return [
        {
            "field": "body" if e.get("type") == "json_invalid" else _field(tuple(e.get("loc", ()))),
            "message": body_message(e, exc.body, content_type) or _message(e),
        }
        for e in exc.errors()
    ]


def _error_handlers(app: FastAPI) -> None:
    """Every refusal as a :class:`Problem`: validation (400, each bad field), HTTP errors,
    :class:`BadRequest` (400, its field), a deployment not set up for the request (409)."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = _invalid_fields(exc, request.headers.get("content-type", ""))
        message = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return JSONResponse(
            status_code=400, content=Problem(code="BAD_REQUEST", message=message, fields=fields).model_dump()
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # one path, several routes: Allow names the methods of all of them
            headers["Allow"] = _allowed(app, request.url.path)
        problem = Problem(code=f"HTTP_{exc.status_code}", message=str(exc.detail))
        return JSONResponse(status_code=exc.status_code, content=problem.model_dump(), headers=headers)

    @app.exception_handler(BadRequest)
    async def _bad(request: Request, exc: BadRequest) -> JSONResponse:
        problem = Problem(code=exc.code, message=str(exc), fields=[{"field": exc.field, "message": exc.reason}])
        return JSONResponse(status_code=400, content=problem.model_dump())

    @app.exception_handler(IdempotencyKeyReusedError)
    async def _reused(request: Request, exc: IdempotencyKeyReusedError) -> JSONResponse:
        # IETF httpapi Idempotency-Key draft: a key reused with another payload is 422.
        problem = Problem(code=exc.code, message=str(exc), fields=[{"field": "Idempotency-Key", "message": str(exc)}])
        return JSONResponse(status_code=422, content=problem.model_dump())

    @app.exception_handler(ConfigurationError)
    async def _unconfigured(request: Request, exc: ConfigurationError) -> JSONResponse:
        # 409: the request is fine, this deployment is not set up for it (e.g. no rules file).
        return JSONResponse(status_code=409, content=Problem(code="NOT_CONFIGURED", message=str(exc)).model_dump())


def _job_error_handlers(app: FastAPI) -> None:
    """No such job (404); a job whose state does not allow the request (409, with the state)."""

    @app.exception_handler(UnknownJobError)
    async def _unknown(request: Request, exc: UnknownJobError) -> JSONResponse:
        return JSONResponse(status_code=404, content=Problem(code=exc.code, message=str(exc)).model_dump())

    @app.exception_handler(JobStateError)
    async def _conflict(request: Request, exc: JobStateError) -> JSONResponse:
        return JSONResponse(
            status_code=409, content=Conflict(code=exc.code, message=str(exc), state=exc.state).model_dump()
        )


#: Seconds each health probe may take: the endpoint answers within twice this whatever storage does.
HEALTH_SECONDS = 2.5

_SUBMIT_ANSWERS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem},
    422: {"model": Problem, "description": "Idempotency-Key already used for another request"},
}


def _accepted(status: ImportStatus, created: bool) -> JSONResponse:
    """``202`` for a submission: the job, its ``Location`` and when to look."""
    location = f"/api/imports/{status.id}"
    content = Accepted(id=status.id, state=status.state, location=location, created=created).model_dump()
    return JSONResponse(status_code=202, content=content, headers={"Location": location, "Retry-After": RETRY_AFTER})


IdempotencyKey = Annotated[str | None, Header(max_length=256)]
STATES = "^(queued|running|succeeded|failed|cancelled)$"


def _import_routes(app: FastAPI, get_services: Callable[[], Services]) -> None:
    """Submit an import, follow one, list them."""

    @app.post("/api/imports", status_code=202, response_model=Accepted, responses=_SUBMIT_ANSWERS)
    async def submit(body: ImportRequest, request: Request, idempotency_key: IdempotencyKey = None) -> JSONResponse:
        """One import: a run of one (``run`` in its status names it)."""
        svc = get_services()
        submit = functools.partial(svc.submitter.submit, requested_by=caller(request, svc))
        return _accepted(*await asyncio.to_thread(submit, body, idempotency_key))

    @app.get("/api/imports/{job_id}", response_model=ImportStatus, responses={404: {"model": Problem}})
    async def status(job_id: str) -> ImportStatus:
        return await asyncio.to_thread(control.show, get_services().statuses, job_id)

    @app.get("/api/imports", response_model=JobList)
    async def recent(
        state: Annotated[str | None, Query(pattern=STATES)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        continuation: Annotated[str | None, Query(max_length=2048)] = None,
    ) -> JobList:
        if continuation is not None and not _is_token(continuation):
            raise BadRequest("continuation", "not a token from a previous page's 'next'")
        items, token = await asyncio.to_thread(get_services().statuses.list, state, limit, continuation)
        return JobList(items=[status_of(i) for i in items], next=token)

    _control_routes(app, get_services)


_CONTROL_ANSWERS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such job"},
    409: {"model": Conflict, "description": "The job's state does not allow it: the state is given"},
}


def _control_routes(app: FastAPI, get_services: Callable[[], Services]) -> None:
    """Cancel a job; retry one."""

    @app.post(
        "/api/imports/{job_id}/cancel",
        response_model=ImportStatus,
        responses={**_CONTROL_ANSWERS, 202: {"model": ImportStatus, "description": "Running: asked to stop"}},
    )
    async def cancel(job_id: str) -> JSONResponse:
        """A queued job is cancelled at once (200); a running one is asked to stop (202) and
        stops within seconds, before any tag moves; cancelling a cancelled job changes nothing."""
        svc = get_services()
        status = await asyncio.to_thread(control.cancel, svc.statuses, job_id)
        if status.state == "cancelled" and status.run:  # no worker will end it soon: count it now
            await asyncio.to_thread(runcontrol.count, svc.runs, svc.statuses, status.run, job_id)
        code = 200 if status.state == "cancelled" else 202
        return JSONResponse(status_code=code, content=status.model_dump(mode="json"))

    @app.post(
        "/api/imports/{job_id}/retry",
        status_code=202,
        response_model=Accepted,
        responses={**_CONTROL_ANSWERS, **_SUBMIT_ANSWERS},
    )
    async def retry(job_id: str, request: Request, idempotency_key: IdempotencyKey = None) -> JSONResponse:
        """A new job with the request of a failed or cancelled one (``retryOf`` names it)."""
        svc = get_services()
        resubmit = functools.partial(svc.submitter.resubmit, requested_by=caller(request, svc))
        return _accepted(*await asyncio.to_thread(resubmit, job_id, idempotency_key))


def _service_routes(app: FastAPI, get_services: Callable[[], Services]) -> None:
    """Run the mirror pass now; the service's health."""

    @app.post("/api/mirror/run", responses={409: {"model": Problem, "description": "No rules file is configured"}})
    async def mirror_run(dry_run: Annotated[bool, Query(alias="dryRun")] = False) -> dict[str, Any]:
        """Run the timer's mirror pass now; with ``dryRun=true`` only report what it would enqueue."""
        return {"dryRun": dry_run, "entries": await run_mirrors(get_services(), dry_run)}

    @app.get(
        "/api/health",
        responses={
            200: {"description": "Up; `degraded` when an edit of the rules file was refused (`rules.error`)"},
            503: {"description": "The queue or the table does not answer"},
        },
    )
    async def health() -> JSONResponse:
        svc = get_services()
        checks: dict[str, str] = {}
        for name, probe in (("queue", svc.queue.healthy), ("table", svc.statuses.healthy)):
            try:
                await asyncio.wait_for(asyncio.to_thread(probe), HEALTH_SECONDS)
                checks[name] = "ok"
            except TimeoutError:
                checks[name] = f"no answer within {HEALTH_SECONDS:g} s"
            except Exception as exc:  # report, never raise: this is the health endpoint
                checks[name] = type(exc).__name__
        ok = all(v == "ok" for v in checks.values())
        rules = await asyncio.to_thread(rules_state, svc)
        # A refused rules edit degrades the service but does not stop it: 200, the last good rules run.
        status = "ok" if ok and not (rules and "error" in rules) else "degraded"
        content = {"status": status, **checks, **({"rules": rules} if rules else {})}
        return JSONResponse(status_code=200 if ok else 503, content=content)


fast_app = create_app()
