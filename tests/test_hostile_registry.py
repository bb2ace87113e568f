"""A hostile or broken source registry, byte by byte, through the whole import: once through
the CLI (a process of its own: exit code, exactly one JSON document on stdout, no traceback,
seconds and peak memory within bounds) and once through the worker (the job ends with the
case's code, never INTERNAL, and a failure worth retrying is retried).

Each case is a raw answer from :mod:`tests.harness.hostile`: what the issue "Trust nothing a
registry sends" measured crashing, hanging, filling memory or leaking credentials. Limits are
set small through settings so the cases finish in seconds; the behaviour is the production one.
``make reliability`` writes each case's figures to bench/RELIABILITY.md.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.http import create_app
from shared.oci import mediatypes as mt
from shared.oci.digest import Digest
from shared.settings import Settings
from tests.conftest import BASIC_USERS, Reg
from tests.harness.azurite import Azurite
from tests.harness.figures import record
from tests.harness.hostile import Answer, Close, Pieces, hostile_server, response
from tests.harness.images import Image, make_image, make_index
from tests.harness.service import drain, environment

pytestmark = pytest.mark.process  # every test here starts a process

ROOT = Path(__file__).resolve().parent.parent
IMAGE = make_image((60_000,), seed="hostile-registry")
LAYER = IMAGE.blobs[1]
PASSWORD = BASIC_USERS["alice"]
#: Settings both paths run with: a short stall window, two attempts, a short budget.
SMALL = {
    "FERRY_STALL_WINDOW_SECONDS": "1",
    "FERRY_STALL_FLOOR_BYTES": "65536",
    "FERRY_RETRY_ATTEMPTS": "2",
    "FERRY_RETRY_BUDGET_SECONDS": "5",
}
#: A failing import through the CLI: at most this long, and this much resident memory.
SECONDS = 15.0
MAX_RSS_MIB = 160

Reply = bytes | Pieces | Close | None
Override = Callable[[str, str, dict[str, str]], Reply]


def _manifest_head(image: Image | Any) -> dict[str, str]:
    return {"Content-Type": image.media_type, "Docker-Content-Digest": str(Digest.of(image.manifest))}


def registry(
    image: Any = IMAGE,
    *,
    manifest: Override | None = None,
    blob: Override | None = None,
    token: Override | None = None,
    every: Override | None = None,
    extra: dict[str, bytes] | None = None,
) -> Answer:
    """An honest registry serving ``image`` as ``evil/app:v1`` (and by digest), but where a
    hook answers otherwise: ``manifest``, ``blob``, ``token`` (path ``/token``), ``every``
    (before the rest; None falls through). ``extra`` serves more manifests by digest."""
    manifests = {str(Digest.of(image.manifest)): (image.media_type, image.manifest)}
    for child in getattr(image, "children", []):
        manifests[str(Digest.of(child.manifest))] = (child.media_type, child.manifest)
    for digest, data in (extra or {}).items():
        manifests[digest] = (mt.OCI_MANIFEST, data)
    blobs = {str(b.descriptor.digest): b.data for b in image.blobs}

    def answer(method: str, path: str, headers: dict[str, str]) -> Reply:
        if every is not None and (reply := every(method, path, headers)) is not None:
            return reply
        if path.startswith("/token"):
            if token is not None:
                return token(method, path, headers)
            return response(200, b'{"token": "honest-token-123"}', {"Content-Type": "application/json"})
        if path == "/v2/":
            return response(200, b"{}")
        if "/manifests/" in path:
            if manifest is not None and (reply := manifest(method, path, headers)) is not None:
                return reply
            ref = path.rsplit("/", 1)[1]
            media_type, data = manifests.get(ref, (image.media_type, image.manifest) if ref == "v1" else (None, b""))
            if media_type is None:
                return response(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}')
            fields = {"Content-Type": media_type, "Docker-Content-Digest": str(Digest.of(data))}
            if method == "HEAD":
                return response(200, b"", {**fields, "Content-Length": str(len(data))})
            return response(200, data, fields)
        if "/blobs/" in path:
            if blob is not None and (reply := blob(method, path, headers)) is not None:
                return reply
            data = blobs.get(path.rsplit("/", 1)[1])
            if data is not None:
                return response(200, data, {"Content-Type": "application/octet-stream"})
        return response(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}')

    return answer


def bearer(inner: Answer, check: Callable[[str], bool] = lambda value: value.startswith("Bearer ")) -> Answer:
    """``inner`` behind Docker token auth: no acceptable ``Authorization``, a 401 challenge."""

    def answer(method: str, path: str, headers: dict[str, str]) -> Reply:
        if path.startswith("/token") or check(headers.get("authorization", "")):
            return inner(method, path, headers)
        realm = f"http://{headers['host']}/token"
        challenge = f'Bearer realm="{realm}",service="evil",scope="repository:evil/app:pull"'
        return response(401, b"", {"WWW-Authenticate": challenge})

    return answer


def _json(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _token(doc: dict[str, Any] | bytes) -> Override:
    body = doc if isinstance(doc, bytes) else _json(doc)
    return lambda method, path, headers: response(200, body, {"Content-Type": "application/json"})


def _jwt(payload: bytes) -> str:
    return "eyJhbGciOiJub25lIn0." + base64.urlsafe_b64encode(payload).decode().rstrip("=") + ".c2ln"


def _is_layer(path: str) -> bool:
    return path.endswith(str(LAYER.descriptor.digest))


def _cut_layer(method: str, path: str, headers: dict[str, str]) -> Reply:
    """The layer cut in half on the first GET; a resume answered with a Content-Range of ``²``."""
    if not _is_layer(path):
        return None
    if "range" in headers:
        return response(206, LAYER.data, {"Content-Range": f"bytes ²-{len(LAYER.data) - 1}/{len(LAYER.data)}"})
    head = response(200, b"", {"Content-Length": str(len(LAYER.data))}, length=False)
    return Close(head + LAYER.data[: len(LAYER.data) // 2])


def _image_with(layers: list[dict[str, Any]]) -> tuple[bytes, str]:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": IMAGE.blobs[0].descriptor.to_json(),
        "layers": layers,
    }
    data = _json(doc)
    return data, str(Digest.of(data))


def _wide_manifests(count: int, layers: int) -> tuple[Any, dict[str, bytes]]:
    """An index of ``count`` manifests that each list ``layers`` tiny layers (within 4 MiB each)."""
    extra: dict[str, bytes] = {}
    children = []
    for i in range(count):
        entries = [
            {"mediaType": "a", "digest": "sha256:" + hashlib.sha256(b"%d-%d" % (i, n)).hexdigest(), "size": 1}
            for n in range(layers)
        ]
        data, digest = _image_with(entries)
        extra[digest] = data
        children.append({"mediaType": mt.OCI_MANIFEST, "digest": digest, "size": len(data)})
    index = _json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": children})
    return _Served(index, mt.OCI_INDEX, IMAGE.blobs), extra


@dataclass
class _Served:
    manifest: bytes
    media_type: str
    blobs: list[Any]
    children: list[Any] = field(default_factory=list)


def _variant_not_a_string() -> _Served:
    index = make_index([IMAGE])
    doc = json.loads(index.manifest)
    doc["manifests"][0]["platform"] = {"os": "linux", "architecture": "amd64", "variant": 7, "os.version": ["x"]}
    doc["manifests"][0]["annotations"] = {"vnd.docker.reference.digest": ["not", "a", "string"]}
    return _Served(_json(doc), mt.OCI_INDEX, IMAGE.blobs, [IMAGE])


def _self_listing_index() -> _Served:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [{"mediaType": mt.OCI_INDEX, "digest": "blake3:" + "a" * 64, "size": 100}],
    }
    return _Served(_json(doc), mt.OCI_INDEX, [])


def _huge_layer() -> tuple[_Served, Override]:
    """A layer declared as (almost) 2 GiB that arrives one byte every 0.3 s."""
    size = 2**31 - 1
    data, _ = _image_with([{"mediaType": mt.OCI_LAYER_GZIP, "digest": "sha256:" + "b" * 64, "size": size}])
    head = response(200, b"", {"Content-Length": str(size)}, length=False)
    trickle: Pieces = [(head, 0.0)] + [(b"x", 0.3)] * 100
    return _Served(data, mt.OCI_MANIFEST, IMAGE.blobs), (lambda m, p, h: trickle if "b" * 64 in p else None)


def _echo(method: str, path: str, headers: dict[str, str]) -> Reply:
    """Basic auth whose 403 quotes the Authorization header it was sent."""
    sent = headers.get("authorization", "")
    if not sent:
        return response(401, b"", {"WWW-Authenticate": 'Basic realm="evil"'})
    if path == "/v2/":
        return None
    body = _json({"errors": [{"code": "DENIED", "message": f"you sent {sent} and {PASSWORD}"}]})
    return response(403, body, {"Content-Type": "application/json", "X-Echo": sent})


def _pieces(*parts: bytes, wait: float = 0.0) -> Pieces:
    return [(p, wait) for p in parts]


_chunked = {"Transfer-Encoding": "chunked", "Content-Type": mt.OCI_MANIFEST}


def _with_header(inner: Answer, name: str, value: str) -> Answer:
    """``inner`` with one more header on every answer."""

    def answer(method: str, path: str, headers: dict[str, str]) -> Reply:
        reply = inner(method, path, headers)
        if isinstance(reply, bytes):
            line, _, rest = reply.partition(b"\r\n")
            return line + f"\r\n{name}: {value}".encode() + b"\r\n" + rest
        return reply

    return answer


def _several_challenges(method: str, path: str, headers: dict[str, str]) -> Reply:
    """Bearer and Basic in one WWW-Authenticate header, Bearer first."""
    if headers.get("authorization", "").startswith("Bearer ") or path.startswith("/token"):
        return None
    challenge = f'Bearer realm="http://{headers["host"]}/token",service="reg", Basic realm="Registry Realm"'
    return response(401, b"", {"WWW-Authenticate": challenge})


def _get_after_head(reply: Callable[[], Reply]) -> Override:
    """``HEAD`` answered without a digest, so the client reads the manifest with ``GET``, which
    gets ``reply()``: what a body does is then what is tried (a ``HEAD`` answer has none)."""

    def answer(method: str, path: str, headers: dict[str, str]) -> Reply:
        if method == "HEAD":
            return response(200, b"", {"Content-Type": IMAGE.media_type, "Content-Length": "500"}, length=False)
        return reply()

    return answer


def _on_get(reply: Reply) -> Override:
    return lambda method, path, headers: reply if method == "GET" else None


#: An endless chunked body (1 GiB, never all read): what an answer Ferry does not use may carry.
_ENDLESS: Pieces = [(b"10000\r\n" + b"x" * 65536 + b"\r\n", 0.0)] * 16_384


def _endless(status: int, headers: dict[str, str] | None = None) -> Pieces:
    head = response(status, b"", {**(headers or {}), "Transfer-Encoding": "chunked"}, length=False)
    return [(head, 0.0), *_ENDLESS]


def _layer_redirected(method: str, path: str, headers: dict[str, str]) -> Reply:
    """The layer's GET redirected to storage (as registries do) by a 307 with an endless body."""
    if path.startswith("/storage/"):
        return response(200, LAYER.data, {"Content-Type": "application/octet-stream"})
    if "/blobs/" in path and _is_layer(path) and method == "GET":
        return _endless(307, {"Location": f"/storage/{LAYER.descriptor.digest}"})
    return None


def _layer_endless(status: int, headers: dict[str, str] | None = None) -> Override:
    return lambda m, p, h: _endless(status, headers) if _is_layer(p) and m == "GET" else None


@dataclass
class Case:
    name: str
    answer: Answer
    #: ``succeeded``, or the error code the import fails with.
    outcome: str
    #: A fragment of the message (or of the result) to find.
    message: str = ""
    retryable: bool = False
    credential: bool = False
    source: str = "evil/app:v1"
    rss_mib: int = MAX_RSS_MIB
    #: Through the worker too (pins are CLI syntax; the API validates them the same way).
    worker: bool = True
    #: Refused as bad input (exit 2) before any request.
    bad_input: bool = False
    args: tuple[str, ...] = ()


#: 200 MB of zeros, gzipped: what a 401 body would expand to if anything decoded it.
GZIP_BOMB = gzip.compress(b"\0" * 200_000_000, compresslevel=9)
WIDE, WIDE_EXTRA = _wide_manifests(2, 30_000)
HUGE, HUGE_BLOB = _huge_layer()
CASES = [
    Case(
        "manifest body cut short",
        registry(manifest=_on_get(Close(response(200, b"", {**_manifest_head(IMAGE), "Content-Length": "9000"},
                                                 length=False) + IMAGE.manifest[:10]))),
        "TRANSPORT", "closed", retryable=True,
    ),
    Case(
        "bad chunk size",
        registry(manifest=_on_get(response(200, b"zz\r\n{}\r\n0\r\n\r\n", _chunked))),
        "PROTOCOL", "malformed chunk size",
    ),
    Case(
        "oversized trailer",
        registry(manifest=_on_get(response(200, b"0\r\nX-T: " + b"a" * 70_000 + b"\r\n\r\n", _chunked))),
        "PROTOCOL", "broke the HTTP protocol",
    ),
    Case(
        "5,000 [ in a 404 body",
        registry(blob=lambda m, p, h: response(404, b"[" * 5000) if _is_layer(p) else None),
        "NOT_FOUND", "not found",
    ),
    Case("5,000 [ as a token answer", bearer(registry(token=_token(b"[" * 5000))), "PROTOCOL", "not a JSON object"),
    Case(
        "5,000 [ in a JWT payload",
        bearer(registry(token=_token({"token": _jwt(b"[" * 5000)}))), "succeeded", str(IMAGE.digest),
    ),
    Case(
        "expires_in of 10^400",
        bearer(registry(token=_token(b'{"token": "big-expiry-token", "expires_in": 1' + b"0" * 400 + b"}"))),
        "succeeded", str(IMAGE.digest),
    ),
    Case(
        "exp of 10^400 in the JWT",
        bearer(registry(token=_token({"token": _jwt(b'{"exp": 1' + b"0" * 400 + b"}")}))),
        "succeeded", str(IMAGE.digest),
    ),
    Case(
        "² in Content-Length",
        registry(manifest=lambda m, p, h: response(200, IMAGE.manifest if m == "GET" else b"",
                                                   {**_manifest_head(IMAGE), "Content-Length": "²"}, length=False)),
        "PROTOCOL", "invalid Content-Length",
    ),
    Case(
        "² in Retry-After",
        registry(blob=lambda m, p, h: response(429, b"", {"Retry-After": "²"}) if _is_layer(p) else None),
        "TOOMANYREQUESTS", "rate limit", retryable=True,
    ),
    Case("² in RateLimit-Remaining", _with_header(registry(), "RateLimit-Remaining", "²;w=21600"), "succeeded",
         str(IMAGE.digest)),
    Case("² in Content-Range", registry(blob=_cut_layer), "PROTOCOL", "Content-Range does not start where asked"),
    Case(
        "a token that is not ASCII",
        bearer(registry(token=_token({"token": "tök€n-ünicode"}))), "UNAUTHORIZED", "without a usable token",
    ),
    # Ferry reads past the bad fields; the target registry then refuses the index, as it should.
    Case("a platform variant that is not a string", registry(_variant_not_a_string()), "PROTOCOL",
         "MANIFEST_INVALID", args=("--platform", "linux/amd64"), worker=False),
    Case("several challenges in one header", registry(every=_several_challenges), "succeeded", str(IMAGE.digest)),
    Case(
        "a 64 KiB challenge",
        registry(every=lambda m, p, h: response(401, b"", {"WWW-Authenticate": "Bearer " + "a=b, " * 13_000})),
        "PROTOCOL", "without realm",
    ),
    Case(
        "a 10 MB 401 body",
        registry(manifest=_get_after_head(lambda: response(401, b"x" * 10_000_000,
                                                          {"WWW-Authenticate": 'Basic realm="r"'}))),
        "AUTH_REQUIRED", "requires credentials",
    ),
    # Answers Ferry does not use as content, each read to 64 KiB at most (issue #20, point 2).
    Case("a blob redirected by a 307 with an endless body", registry(every=_layer_redirected), "succeeded",
         str(IMAGE.digest)),
    Case("a 500 with an endless body to a blob", registry(blob=_layer_endless(500)), "UNAVAILABLE", "500",
         retryable=True),
    Case("a 401 with an endless body to a blob",
         registry(blob=_layer_endless(401, {"WWW-Authenticate": 'Basic realm="r"'})), "AUTH_REQUIRED",
         "requires credentials"),
    # (1xx were bounded already, at 5 informational answers; this one passes on the old code too.)
    Case("endless 103 Early Hints to a blob",
         registry(blob=lambda m, p, h: [(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", 0.01)] * 500
                  if _is_layer(p) else None), "PROTOCOL", "informational"),
    Case(
        "gzip where bytes must be exact",
        registry(manifest=_on_get(response(200, gzip.compress(IMAGE.manifest),
                                           {**_manifest_head(IMAGE), "Content-Encoding": "gzip"}))),
        "PROTOCOL", "Content-Encoding",
    ),
    Case(
        "a gzip bomb in a 401 body",
        registry(manifest=_get_after_head(lambda: response(401, GZIP_BOMB, {"Content-Encoding": "gzip",
                                                                              "WWW-Authenticate": 'Basic realm="r"'}))),
        "AUTH_REQUIRED", "requires credentials",
    ),
    Case(
        "an index of manifests of 30,000 layers each",
        registry(WIDE, extra=WIDE_EXTRA), "LIMIT_EXCEEDED", "max_descriptors", rss_mib=220,
    ),
    Case(
        "endless 100 Continue",
        registry(manifest=_on_get([(b"HTTP/1.1 100 Continue\r\n\r\n", 0.01)] * 500)),
        "PROTOCOL", "informational",
    ),
    Case(
        "a 401 body trickled",
        registry(manifest=_get_after_head(lambda: [(response(401, b"", {"Content-Length": "500",
                                                                        "WWW-Authenticate": 'Basic realm="r"'},
                                                                length=False), 0.0)] + [(b"x", 0.4)] * 50)),
        "AUTH_REQUIRED", "requires credentials",
    ),
    Case("an index that lists itself by a digest nobody verifies", registry(_self_listing_index()),
         "MANIFEST_INVALID", "blake3"),
    Case("a 2 GiB layer trickled", registry(HUGE, blob=HUGE_BLOB), "STALLED", "stalled", retryable=True),
    Case("Authorization echoed in an error body", registry(every=_echo), "DENIED", "denied", credential=True),
    Case(
        "ESC and CR in a reason phrase",
        registry(manifest=lambda m, p, h: response(404, b"", reason="Not Found\x1b[2J\rferry: forged")),
        "PROTOCOL", "control characters in the reason phrase",
    ),
    Case(
        "ESC, CR and LF in an error message",
        registry(blob=lambda m, p, h: response(
            404, _json({"errors": [{"code": "BLOB_UNKNOWN", "message": "x\r\nferry: forged\x1b[31m"}]}),
            {"Content-Type": "application/json"}) if _is_layer(p) else None),
        "NOT_FOUND", "ferry: forged\\x1b[31m",
    ),
    Case(
        "a sha384 pin the bytes do not match",
        registry(manifest=lambda m, p, h: response(200, IMAGE.manifest if m == "GET" else b"", {
            **_manifest_head(IMAGE), "Content-Length": str(len(IMAGE.manifest))}, length=False)),
        "DIGEST_MISMATCH", "sha384:", source="evil/app@sha384:" + "c" * 96, worker=False,
    ),
    Case(
        "a blake3 pin",
        registry(), "INVALID_REFERENCE", "digest algorithm blake3 cannot be verified",
        source="evil/app@blake3:" + "d" * 64, worker=False, bad_input=True,
    ),
]  # fmt: skip


#: Runs the CLI as a child of a small interpreter and reports the child's own peak RSS: one forked
#: from pytest would count pytest's pages in its ``ru_maxrss``.
_MEASURED = (
    "import os, sys\n"
    "pid = os.posix_spawn(sys.executable, [sys.executable, '-m', 'shared.cli', *sys.argv[1:]], os.environ)\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "sys.stderr.write(f'\\nMAXRSS {usage.ru_maxrss}\\n')\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def _run_cli(args: list[str], env: dict[str, str], stdin: str = "") -> tuple[int, str, str, float, float]:
    """The CLI as a process: exit code, stdout, stderr, seconds, peak resident MiB."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, *args],
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    seconds = time.monotonic() - started
    err, _, rss = done.stderr.rpartition("\nMAXRSS ")
    return done.returncode, done.stdout, err, seconds, int(rss) / 1024


def _secrets_absent(text: str) -> None:
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert PASSWORD not in text and basic not in text


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_through_the_cli(case: Case, target_reg: Reg) -> None:
    with hostile_server(case.answer) as (host, seen):
        landed = f"landed/{hashlib.sha256(case.name.encode()).hexdigest()[:12]}:v1"
        args = ["import", "--name", target_reg.host, "--source", f"{host}/{case.source}", "--image", landed, *case.args]
        if case.credential:
            args += ["--username", "alice", "--password-stdin"]
        code, out, err, seconds, rss = _run_cli(args, SMALL, stdin=PASSWORD + "\n" if case.credential else "")
    doc = json.loads(out)  # exactly one JSON document: anything else fails here
    assert "Traceback" not in err, err
    assert "\x1b" not in out + err and "\r" not in err
    assert sum(1 for line in err.splitlines() if line.startswith("ferry:")) <= 1
    _secrets_absent(out + err)
    if case.outcome == "succeeded":
        assert code == 0 and doc["status"] == "succeeded", out
        assert case.message in json.dumps(doc)
    else:
        assert code == (2 if case.bad_input else 1), out + err
        assert doc["error"]["code"] == case.outcome, out
        assert case.message in doc["error"]["message"] + doc["error"].get("detail", ""), out
    assert seconds < SECONDS, f"{seconds:.1f} s"
    assert rss < case.rss_mib, f"peak RSS {rss:.0f} MiB"
    if case.bad_input:
        assert seen == []  # refused before a request
    record(
        f"hostile registry (CLI): {case.name}",
        {"outcome": case.outcome, "seconds": round(seconds, 2), "peakRssMiB": round(rss), "requests": len(seen)},
    )


@pytest.fixture
def worker_env(azurite: Azurite) -> dict[str, str]:
    return environment(azurite, FERRY_MAX_DEQUEUE_COUNT="2", **SMALL)


@pytest.mark.parametrize("case", [c for c in CASES if c.worker], ids=[c.name for c in CASES if c.worker])
def test_through_the_worker(case: Case, target_reg: Reg, worker_env: dict[str, str]) -> None:
    from shared.service.wiring import build

    services = build(Settings.from_env(worker_env))
    api = TestClient(create_app(lambda: services))
    with hostile_server(case.answer) as (host, _):
        source: dict[str, Any] = {"registryUri": host, "sourceImage": case.source}
        if case.credential:
            source["credential"] = "dev"
        landed = f"worker/{hashlib.sha256(case.name.encode()).hexdigest()[:12]}:v1"
        doc = {"targetRegistry": target_reg.host, "source": source, "targetTags": [landed]}
        submitted = api.post("/api/imports", json=doc)
        assert submitted.status_code == 202, submitted.text
        started = time.monotonic()
        drain(services)
        seconds = time.monotonic() - started
    status = api.get(f"/api/imports/{submitted.json()['id']}").json()
    text = json.dumps(status)
    _secrets_absent(text)
    assert "\x1b" not in text
    if case.outcome == "succeeded":
        assert status["state"] == "succeeded", text
    else:
        assert status["state"] == "failed", text
        assert status["error"]["code"] == case.outcome, text
        assert case.message in status["error"]["message"] + status["error"].get("detail", "")
        assert status["attemptCount"] == (2 if case.retryable else 1), text
    record(
        f"hostile registry (worker): {case.name}",
        {"outcome": status["state"] if case.outcome == "succeeded" else case.outcome,
         "attempts": status["attemptCount"], "seconds": round(seconds, 2)},
    )  # fmt: skip
