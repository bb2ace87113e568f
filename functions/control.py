"""The control room: a status page served by the function app itself, and the two reads it needs
beside the jobs API.

- ``GET /api/control``: the page (``functions/static/``: plain HTML, CSS and JavaScript, no build
  step), one document with its style and script inline, so the function key a person opens it
  with (``?code=``) is needed once; the script keeps it for the tab and sends it as
  ``x-functions-key``. A Content-Security-Policy allows only that script and style (by hash) and
  requests to this origin; ``Referrer-Policy: no-referrer`` keeps the key out of any referrer.
- ``GET /api/rules``: each promotion and mirror and how it is doing
  (:mod:`shared.automation.status`).
- ``GET /api/imports/{id}/request``: the request a job was made with, as kept for a retry:
  without its secrets (inline credentials never leave the sealed message).

Everything here sits behind the same function key or Easy Auth as the rest of the API.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute

from functions.root import Services
from shared.automation.calls import rules_status
from shared.errors import UnknownJobError
from shared.service.models import ImportJob

STATIC = Path(__file__).resolve().parent / "static"
PAGE = "/api/control"


def _hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


@functools.cache
def page(runs: bool) -> tuple[str, dict[str, str]]:
    """The page with its style and script inline, and the headers it is served with."""
    css = (STATIC / "control.css").read_text()
    js = (STATIC / "control.js").read_text()
    html = (STATIC / "control.html").read_text()
    html = html.replace("/*CSS*/", css).replace("/*JS*/", js).replace("/*RUNS*/", "1" if runs else "0")
    policy = (
        f"default-src 'none'; script-src '{_hash(js)}'; style-src '{_hash(css)}'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    headers = {
        "Content-Security-Policy": policy,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }
    return html, headers


def _has_runs(app: FastAPI) -> bool:
    return any(isinstance(r, APIRoute) and r.path == "/api/runs" and "GET" in (r.methods or ()) for r in app.routes)


def _request_of(svc: Services, job_id: str) -> dict[str, Any]:
    record = svc.statuses.get(job_id) if job_id.isalnum() else None
    if record is None:
        raise UnknownJobError(f"no import job {job_id!r}")
    if record.request is not None:
        return {"request": record.request.without_secrets()}
    content = svc.statuses.message(job_id)  # a record from before requests were kept on it
    return {"request": ImportJob.model_validate_json(content).request.without_secrets() if content else None}


def add_control_routes(app: FastAPI, get_services: Callable[[], Services]) -> None:
    """The page and its two reads, on ``app``."""

    @app.get(PAGE, response_class=HTMLResponse, include_in_schema=False)
    async def control() -> HTMLResponse:
        html, headers = page(_has_runs(app))
        return HTMLResponse(html, headers=headers)

    @app.get("/api/rules")
    async def rules() -> dict[str, Any]:
        """Each promotion and mirror: last pass, last success, tags selected, up to date, behind
        (since when) and failing; ``configured: false`` without a rules file."""
        return await asyncio.to_thread(rules_status, get_services())

    @app.get("/api/imports/{job_id}/request", responses={404: {"description": "No such job"}})
    async def request(job_id: str) -> dict[str, Any]:
        """The request the job was made with, without secrets (``request: null`` if not kept)."""
        return await asyncio.to_thread(_request_of, get_services(), job_id)
