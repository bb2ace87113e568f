"""Ferry's HTTP API from the other side: what ``ferry import --service`` and ``ferry jobs`` send.

Authenticates as the Functions host expects: the function key in ``x-functions-key``
(``FERRY_FUNCTION_KEY``), or, with App Service Authentication (Easy Auth) on, an Entra token
for the app (``FERRY_SERVICE_SCOPE``, e.g. ``api://<app id>/.default``). Every answer is read
to at most 4 MiB and within 60 s (each wait for bytes within 30 s); every failure is a
:class:`ServiceError` naming what the service said.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from shared.errors import ServiceError
from shared.http.policy import is_loopback
from shared.strict import loads_bounded
from shared.text import register_secret, shorten

#: The most of an answer read (a page of 100 jobs with their attempts fits many times over).
MAX_ANSWER = 4 * 1024 * 1024
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
#: Seconds a whole answer may take, however its bytes trickle in.
ANSWER_SECONDS = 60.0


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

    def submit(self, request: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._call("POST", "/api/imports", json=request, headers=headers)[1]

    def job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/imports/{job_id}")[1]

    def jobs(self, state: str | None = None, limit: int = 20) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, **({"state": state} if state else {})}
        return self._call("GET", "/api/imports", params=params)[1]

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"/api/imports/{job_id}/cancel")[1]

    def retry(self, job_id: str) -> dict[str, Any]:
        return self._call("POST", f"/api/imports/{job_id}/retry")[1]

    def submit_run(self, requests: list[dict[str, Any]], idempotency_key: str | None = None) -> dict[str, Any]:
        """``POST /api/runs``: the imports as one run."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._call("POST", "/api/runs", json={"imports": requests}, headers=headers)[1]

    def run(self, run_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/runs/{run_id}")[1]

    def runs(self, kind: str | None = None, state: str | None = None, limit: int = 20) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, **{k: v for k, v in (("kind", kind), ("state", state)) if v}}
        return self._call("GET", "/api/runs", params=params)[1]

    def cancel_run(self, run_id: str) -> dict[str, Any]:
        return self._call("POST", f"/api/runs/{run_id}/cancel")[1]

    def retry_run(self, run_id: str) -> dict[str, Any]:
        return self._call("POST", f"/api/runs/{run_id}/retry")[1]

    def _call(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
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
        return response.status_code, doc

    def _read(self, response: httpx.Response) -> bytes:
        data, started = bytearray(), self._clock()
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) > MAX_ANSWER:
                raise ServiceError(f"the Ferry service's answer is over {MAX_ANSWER // 2**20} MiB")
            if self._clock() - started > ANSWER_SECONDS:
                raise ServiceError(f"the Ferry service did not finish its answer within {ANSWER_SECONDS:g} s")
        return bytes(data)


def _refused(url: str, status: int, doc: dict[str, Any]) -> ServiceError:
    if status in (401, 403):
        return ServiceError(
            f"the Ferry service at {url} refused the request ({status}): give its function key in "
            "FERRY_FUNCTION_KEY, or, when the app uses Entra sign-in, its scope in FERRY_SERVICE_SCOPE",
            code="SERVICE_UNAUTHORIZED",
            status=status,
        )
    code = str(doc.get("code") or f"HTTP_{status}")
    message = str(doc.get("message") or json.dumps(doc)[:200])
    return ServiceError(shorten(message, 2000), code=code, status=status, answer=doc)
