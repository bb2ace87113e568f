"""Ferry's HTTP API from the other side: what ``ferry import --service`` and ``ferry jobs`` send.

Authenticates as the Functions host expects: the function key in ``x-functions-key``
(``FERRY_FUNCTION_KEY``), or, with App Service Authentication (Easy Auth) on, an Entra token
for the app (``FERRY_SERVICE_SCOPE``, e.g. ``api://<app id>/.default``). Every answer is read
to at most 4 MiB and within 60 s (each wait for bytes within 30 s) and read as the model the API
answers with (:mod:`shared.service.models`, :class:`~shared.runs.model.Run`); every failure is a
:class:`ServiceError` naming what the service said, or the field of an answer it cannot read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Literal, NotRequired, Required, TypedDict, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from shared.errors import ServiceError
from shared.http.policy import is_loopback
from shared.runs.model import Run
from shared.service.models import Accepted, ImportStatus, JobList, RunAccepted, RunList
from shared.strict import loads_bounded
from shared.text import register_secret, shorten

#: The most of an answer read (a page of 100 jobs with their attempts fits many times over).
MAX_ANSWER = 4 * 1024 * 1024
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
#: Seconds a whole answer may take, however its bytes trickle in.
ANSWER_SECONDS = 60.0


#: The answer a call reads: one of the API's models.
Answer = TypeVar("Answer", bound=BaseModel)


class SourceCredentials(TypedDict):
    username: str | None
    password: str | None


class SourceDocument(TypedDict, total=False):
    """The source as ``--source``, ``--registry`` and the source's credentials give it: by name
    (``credential``, configured in the service) or inline (``credentials``, sealed by it)."""

    sourceImage: Required[str]
    registryUri: str
    resourceId: str
    credential: str
    credentials: SourceCredentials


class RequestDocument(TypedDict):
    """``POST /api/imports``'s body as the command line sends it; the service validates it
    (:class:`~shared.importing.request.ImportRequest`) and answers each bad field by name."""

    targetRegistry: str
    source: SourceDocument
    targetTags: list[str]
    untaggedTargetRepositories: list[str]
    mode: Literal["Force", "NoForce"]
    platforms: list[str]
    includeReferrers: bool
    dryRun: bool
    engine: str
    verify: NotRequired[str]


def base_url(url: str) -> tuple[str, str | None]:
    """The service's root, however given (``https://app.azurewebsites.net[/api][/][?code=KEY]``),
    and the function key when the URL carries one (as the portal's "Get function URL" does): it
    goes in a header, never in a URL or a message."""
    parsed = httpx.URL(url.strip())
    key = parsed.params.get("code")
    root = str(parsed.copy_with(query=None, fragment=None)).rstrip("/")
    return root.removesuffix("/api"), key


class ServiceClient:
    def __init__(
        self,
        url: str,
        *,
        function_key: str | None = None,
        token: Callable[[], str] | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url, key_in_url = base_url(url)
        function_key = function_key or key_in_url
        parsed = httpx.URL(self.url)
        if (function_key or token) and parsed.scheme != "https" and not is_loopback(parsed.host):
            raise ValueError(f"{self.url}: a function key or token goes over https only (loopback excepted)")
        self._token = token
        self._clock = clock
        headers = {"Accept": "application/json", "User-Agent": "ferry-cli"}
        if function_key:
            register_secret(function_key)
            headers["x-functions-key"] = function_key
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT, transport=transport)

    def close(self) -> None:
        self._http.close()

    def location(self, path: str) -> str:
        """An absolute URL for a ``Location`` the service answered with."""
        return path if "://" in path else f"{self.url}{path}"

    def submit(self, request: RequestDocument, idempotency_key: str | None = None) -> Accepted:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._call(Accepted, "POST", "/api/imports", json=request, headers=headers)

    def job(self, job_id: str) -> ImportStatus:
        return self._call(ImportStatus, "GET", f"/api/imports/{job_id}")

    def jobs(self, state: str | None = None, limit: int = 20) -> JobList:
        params: dict[str, str | int] = {"limit": limit, **({"state": state} if state else {})}
        return self._call(JobList, "GET", "/api/imports", params=params)

    def cancel(self, job_id: str) -> ImportStatus:
        return self._call(ImportStatus, "POST", f"/api/imports/{job_id}/cancel")

    def retry(self, job_id: str) -> Accepted:
        return self._call(Accepted, "POST", f"/api/imports/{job_id}/retry")

    def submit_run(self, requests: list[RequestDocument], idempotency_key: str | None = None) -> RunAccepted:
        """``POST /api/runs``: the imports as one run."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._call(RunAccepted, "POST", "/api/runs", json={"imports": requests}, headers=headers)

    def run(self, run_id: str) -> Run:
        return self._call(Run, "GET", f"/api/runs/{run_id}")

    def runs(self, kind: str | None = None, state: str | None = None, limit: int = 20) -> RunList:
        params: dict[str, str | int] = {"limit": limit, **{k: v for k, v in (("kind", kind), ("state", state)) if v}}
        return self._call(RunList, "GET", "/api/runs", params=params)

    def cancel_run(self, run_id: str) -> Run:
        return self._call(Run, "POST", f"/api/runs/{run_id}/cancel")

    def retry_run(self, run_id: str) -> RunAccepted:
        return self._call(RunAccepted, "POST", f"/api/runs/{run_id}/retry")

    def _call(self, answer: type[Answer], method: str, path: str, **kwargs: Any) -> Answer:
        """The call, and its answer read as ``answer``; a refusal raised as a :class:`ServiceError`."""
        headers = dict(kwargs.pop("headers", None) or {})
        if self._token is not None:
            token = self._token()
            register_secret(token)
            headers["Authorization"] = f"Bearer {token}"
        try:
            with self._http.stream(method, path, headers=headers, **kwargs) as response:
                body = self._read(response)
        except httpx.HTTPError as exc:
            raise ServiceError(
                f"the Ferry service at {self.url} did not answer ({type(exc).__name__})", code="SERVICE_UNREACHABLE"
            ) from None
        doc = loads_bounded(body) if body else {}
        if not isinstance(doc, dict):
            raise ServiceError(f"the Ferry service at {self.url} answered {response.status_code} with no JSON document")
        if response.status_code >= 400:
            raise _refused(self.url, response.status_code, doc)
        try:
            return answer.model_validate(doc)
        except ValidationError as exc:
            raise _unreadable(self.url, response.status_code, answer, exc) from None

    def _read(self, response: httpx.Response) -> bytes:
        data, started = bytearray(), self._clock()
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) > MAX_ANSWER:
                raise ServiceError(f"the Ferry service's answer is over {MAX_ANSWER // 2**20} MiB")
            if self._clock() - started > ANSWER_SECONDS:
                raise ServiceError(f"the Ferry service did not finish its answer within {ANSWER_SECONDS:g} s")
        return bytes(data)


def _unreadable(url: str, status: int, answer: type[BaseModel], exc: ValidationError) -> ServiceError:
    """An answer that is not the document the API answers with (a proxy's, another version's):
    the first field that does not read, and why (never its value)."""
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "the document"
    return ServiceError(
        f"the Ferry service at {url} answered {status} with a document Ferry cannot read as {answer.__name__}: "
        f"{where}: {first['msg']}"
    )


def _refused(url: str, status: int, doc: dict[str, Any]) -> ServiceError:
    """A refusal as the API words it (a ``Problem``: code, message, bad fields; a ``409``'s state),
    or as a proxy or the Functions host does."""
    if status in (401, 403):
        return ServiceError(
            f"the Ferry service at {url} refused the request ({status}): give its function key in "
            "FERRY_FUNCTION_KEY, or, when the app uses Entra sign-in, its scope in FERRY_SERVICE_SCOPE",
            code="SERVICE_UNAUTHORIZED",
            status=status,
        )
    code = str(doc.get("code") or f"HTTP_{status}")
    message = str(doc.get("message") or json.dumps(doc)[:200])
    listed = doc["fields"] if isinstance(doc.get("fields"), list) else []
    fields = [(str(f.get("field", "")), str(f.get("message", ""))) for f in listed if isinstance(f, dict)]
    state = None if doc.get("state") is None else str(doc["state"])
    return ServiceError(shorten(message, 2000), code=code, status=status, fields=fields, state=state)
