"""A stand-in for Azure Resource Manager's ``Registries - Import Image`` (api-version 2023-07-01),
following the documented protocol: ``200`` (done), or ``202`` with ``Location`` or
``Azure-AsyncOperation`` and ``Retry-After``, polled until ``Succeeded``/``Failed``/``Canceled``;
ARM error bodies ``{"error": {"code", "message"}}`` with ``x-ms-correlation-request-id``.

When an import succeeds, the fake performs it for real with ``skopeo copy --all
--preserve-digests`` between the loopback registries it was told about, so the data plane sees
what ACR would have done.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import jwt
from azure.core.credentials import AccessToken

from tests.harness.loopback import LoopbackServer, reply
from tests.harness.skopeo import copy_command

ARM_SECRET = "fake-arm-signing-secret-for-tests-only-0123456789"
ARM_AUDIENCE = "https://management.azure.com"
_IMPORT = re.compile(
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.ContainerRegistry"
    r"/registries/(?P<name>[^/]+)/importImage"
)
_REGISTRY_ID = re.compile(r"/registries/(?P<name>[A-Za-z0-9]+)$", re.IGNORECASE)


class FakeArmCredential:
    """A managed identity's ``get_token`` for the ARM audience."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        now = int(time.time())
        token = jwt.encode(
            {"aud": scopes[0].removesuffix("/.default"), "exp": now + 3600}, ARM_SECRET, algorithm="HS256"
        )
        return AccessToken(token, now + 3600)


class FakeArm(LoopbackServer):
    def __init__(self, hosts: dict[str, str]) -> None:
        #: registry name (as in resource IDs) -> loopback host of the registry that plays it
        self.hosts = hosts
        #: "sync" | "location" | "async" | "fail" | "never" | "forbidden" | "elsewhere" (polls on
        #: the metadata address, as a compromised or spoofed endpoint might answer)
        self.mode = "async"
        self.polls = 2
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.operations: dict[str, dict[str, Any]] = {}
        self.src_creds: dict[str, str] = {}

    def perform(self, registry: str, body: dict[str, Any]) -> None:
        """Do the import with skopeo, as ACR would."""
        source = body["source"]
        if "resourceId" in source:
            src_host = self.hosts[_REGISTRY_ID.search(source["resourceId"]).group("name").lower()]  # type: ignore[union-attr]
        else:
            src_host = source["registryUri"]
        dst_host = self.hosts[registry]
        creds = source.get("credentials") or {}
        login = f"{creds['username']}:{creds['password']}" if creds.get("username") else None
        for target in body.get("targetTags", []):
            cmd = copy_command(f"{src_host}/{source['sourceImage']}", f"{dst_host}/{target}", login)
            subprocess.run(cmd, check=True, capture_output=True)


class _Handler(BaseHTTPRequestHandler):
    owner: FakeArm
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, doc: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        reply(self, status, doc, {"x-ms-correlation-request-id": "corr-" + uuid.uuid4().hex[:8], **(headers or {})})

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        try:
            jwt.decode(header.removeprefix("Bearer "), ARM_SECRET, algorithms=["HS256"], audience=ARM_AUDIENCE)
        except jwt.PyJWTError:
            self._send(401, {"error": {"code": "AuthenticationFailed", "message": "Authentication failed."}})
            return False
        return True

    def do_POST(self) -> None:
        o = self.owner
        parts = urlsplit(self.path)
        match = _IMPORT.fullmatch(parts.path)
        if not match or "api-version=2023-07-01" not in parts.query:
            return self._send(404, {"error": {"code": "NotFound", "message": "no such route"}})
        if not self._authorized():
            return None
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        o.bodies.append(body)
        o.paths.append(parts.path)
        registry = match.group("name").lower()
        if o.mode == "forbidden":
            return self._send(
                403,
                {
                    "error": {
                        "code": "AuthorizationFailed",
                        "message": "The client does not have "
                        "authorization to perform action 'Microsoft.ContainerRegistry/registries/importImage/action'.",
                    }
                },
            )
        if o.mode == "sync":
            o.perform(registry, body)
            return self._send(200)
        op = uuid.uuid4().hex
        o.operations[op] = {"registry": registry, "body": body, "polls": 0}
        base = f"http://{self.headers['Host']}/subscriptions/{match.group('sub')}/providers/Microsoft.ContainerRegistry/locations/eastus/operationResults/registries-{op}?api-version=2023-07-01"
        if o.mode == "location":
            return self._send(202, None, {"Location": base, "Retry-After": "0"})
        if o.mode == "elsewhere":
            metadata = "https://169.254.169.254/metadata/identity/oauth2/token?resource=x"
            return self._send(202, None, {"Azure-AsyncOperation": metadata, "Retry-After": "0"})
        status_url = base.replace("operationResults", "operationStatuses")
        return self._send(202, None, {"Azure-AsyncOperation": status_url, "Location": base, "Retry-After": "0"})

    def do_GET(self) -> None:
        o = self.owner
        if not self._authorized():
            return None
        op_id = self.path.split("registries-")[-1].split("?")[0]
        op = o.operations.get(op_id)
        if op is None:
            return self._send(404, {"error": {"code": "NotFound", "message": "no such operation"}})
        op["polls"] += 1
        running = o.mode == "never" or op["polls"] <= o.polls
        if "operationResults" in self.path:  # Location polling: 202 while running, then 200
            if running:
                return self._send(
                    202, None, {"Location": f"http://{self.headers['Host']}{self.path}", "Retry-After": "0"}
                )
            o.perform(op["registry"], op["body"])
            return self._send(200)
        if running:
            return self._send(200, {"status": "InProgress"}, {"Retry-After": "0"})
        if o.mode == "fail":
            return self._send(
                200, {"status": "Failed", "error": {"code": "InvalidParameters", "message": "Error copying blobs."}}
            )
        if not op.get("done"):
            o.perform(op["registry"], op["body"])
            op["done"] = True
        return self._send(200, {"status": "Succeeded"})


FakeArm.handler = _Handler
