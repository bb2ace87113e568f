"""A stop leaves nothing behind (issue #20, points 1 and 4).

- Ctrl-C in the CLI (a process of its own, SIGINT) and a cancel through the service stop the
  copy of blobs of every size (256 KiB, 320 KiB: read whole, then one ``PUT`` from memory; 12 MiB,
  36 MiB: a streamed ``PATCH``, also over the old 32 MiB line) from a throttled source at random
  moments; the target registry's storage then holds no upload session with data
  (``_uploads/<id>/data``), and no tag moved.
- A stop asked as a small blob's ``PUT`` leaves lets that ``PUT`` finish: the blob lands,
  referenced by nothing, and no session holds data.
- A many-tag import stopped at every step (each answer the target gives) moved either none of
  its tags or all of them: the engine commits before the first tag moves, and a stop after that
  (even one that cancels outright, as a second Ctrl-C or the worker's grace running out do)
  waits for the last tag.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from shared import stopping
from shared.importing.run import run_import
from shared.importing.spec import build_spec
from shared.registry.client import RegistryClient
from shared.service.wiring import Services
from tests.conftest import FAST, Reg
from tests.harness.figures import record
from tests.harness.hostile import Pieces, hostile_server, response
from tests.harness.images import make_image, seed
from tests.harness.service import drain
from tests.harness.uploads import manifest_answer, streamed_image

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parent.parent
PIECE = 64 * 1024
#: Seconds between two 64 KiB pieces of one blob: about 3 MB/s per blob.
THROTTLE = 0.02
#: Two blobs of each size class: small, mid-sized, and over the old 32 MiB line.
SIZES = (256 * 1024, 256 * 1024 + PIECE, 12 * 2**20, 12 * 2**20 + PIECE, 36 * 2**20)


def _blob(n: int, size: int) -> tuple[bytes, str]:
    """Blob ``n``: a 64 KiB block of its own, repeated to ``size``; (block, digest)."""
    block = b"".join(hashlib.sha256(b"%d-%d" % (n, i)).digest() for i in range(PIECE // 32))
    hasher = hashlib.sha256()
    for _ in range(size // PIECE):
        hasher.update(block)
    return block, f"sha256:{hasher.hexdigest()}"


def throttled_source() -> Any:
    """A source serving ``stop/app:v1``, an image of :data:`SIZES` layers, each at about 3 MB/s."""
    layers = {}
    for n, size in enumerate(SIZES):
        block, digest = _blob(n, size)
        layers[digest] = (block, size)
    config, config_digest, manifest, digest = streamed_image({d: s for d, (_, s) in layers.items()})

    def answer(method: str, path: str, headers: dict[str, str]) -> bytes | Pieces:
        if "/manifests/" in path:
            return manifest_answer(method, manifest, digest)
        name = path.rsplit("/", 1)[-1]
        if name in layers:
            block, size = layers[name]
            start = response(200, b"", {"Content-Length": str(size)}, length=False)
            return [(start, 0.0)] + [(block, THROTTLE)] * (size // PIECE)
        if name == config_digest:
            return response(200, config)
        return response(404, b"")

    return answer


def _uploads(target: Reg, repo: str) -> Path:
    return target.proc.workdir / "data/docker/registry/v2/repositories" / repo / "_uploads"


def sessions_with_data(target: Reg, repo: str) -> int:
    """Upload sessions that hold data in the target's storage (distribution keeps an empty
    ``hashstates`` folder after a ``DELETE``, which holds none)."""
    return len(list(_uploads(target, repo).glob("*/data")))


def _uploading(target: Reg, repo: str, seconds: float, alive: Any = lambda: True) -> None:
    """Wait until the target holds an upload session for ``repo``."""
    deadline = time.monotonic() + seconds
    while not list(_uploads(target, repo).glob("*/startedat")):
        assert time.monotonic() < deadline and alive(), "no upload started"
        time.sleep(0.02)


def _ferry_import(source: str, target: str, repo: str) -> subprocess.Popen[str]:
    """``ferry import`` of the throttled source's image into ``target``, a process of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "import", "--name", target, "--source", f"{source}/stop/app:v1",
         "--image", f"{repo}:v1"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _tags(target: Reg, repo: str) -> list[str]:
    answer = httpx.get(f"http://{target.host}/v2/{repo}/tags/list")
    return list(answer.json().get("tags") or []) if answer.status_code == 200 else []


# -- point 1: Ctrl-C and cancel leave no session holding data -----------------------------------


@pytest.mark.parametrize("run", range(3))
def test_ctrl_c_at_a_random_moment_leaves_no_upload_session_with_data(run: int, target_reg: Reg, repo: str) -> None:
    delay = random.Random(f"ctrl-c-{run}").uniform(0.0, 3.0)
    with hostile_server(throttled_source()) as (source, _):
        proc = _ferry_import(source, target_reg.host, repo)
        try:
            _uploading(target_reg, repo, 20, lambda: proc.poll() is None)
            time.sleep(delay)
            open_before = len(list(_uploads(target_reg, repo).glob("*/startedat")))
            asked = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
            stopped = time.monotonic() - asked
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, out + err
    assert err.strip().splitlines()[-1] == "ferry: interrupted; open uploads were cancelled and no tag was moved"
    assert sessions_with_data(target_reg, repo) == 0
    assert _tags(target_reg, repo) == []
    record(
        f"Ctrl-C at a random moment ({run + 1} of 3)",
        {"after (s)": round(delay, 2), "sessions open then": open_before, "stopped after (s)": round(stopped, 2),
         "sessions with data left": 0, "tags moved": 0},
    )  # fmt: skip


def _submit(api: TestClient, source: str, target: Reg, repo: str) -> str:
    doc = {"targetRegistry": target.host, "source": {"registryUri": source, "sourceImage": "stop/app:v1"},
           "targetTags": [f"{repo}:v1"]}  # fmt: skip
    answer = api.post("/api/imports", json=doc)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["location"])


@pytest.mark.parametrize("run", range(3))
def test_a_cancel_at_a_random_moment_leaves_no_upload_session_with_data(
    run: int, api: TestClient, svc: Services, target_reg: Reg, repo: str
) -> None:
    delay = random.Random(f"cancel-{run}").uniform(0.0, 3.0)
    location = "/api/imports/none"
    with hostile_server(throttled_source()) as (source, _):
        try:
            location = _submit(api, source, target_reg, repo)
            worker = threading.Thread(target=drain, args=(svc,))
            worker.start()
            _uploading(target_reg, repo, 20)
            time.sleep(delay)
            asked = time.monotonic()
            assert api.post(f"{location}/cancel").status_code == 202
            while api.get(location).json()["state"] == "running":
                assert time.monotonic() - asked < 10, "still running 10 s after the cancel"
                time.sleep(0.05)
            stopped = time.monotonic() - asked
            worker.join(10)
        finally:
            api.post(f"{location}/cancel")  # a failed assertion leaves no import running
    status = api.get(location).json()
    assert status["state"] == "cancelled", status
    assert "uploadSessionsLeft" not in (status.get("result") or {}), status
    assert sessions_with_data(target_reg, repo) == 0
    assert _tags(target_reg, repo) == []
    record(
        f"cancel at a random moment ({run + 1} of 3)",
        {"after (s)": round(delay, 2), "stopped after (s)": round(stopped, 2), "sessions with data left": 0,
         "tags moved": 0},
    )  # fmt: skip


def test_a_stop_as_a_small_blob_goes_up_lets_its_put_finish(open_reg: Reg, target_reg: Reg, repo: str) -> None:
    """A blob of up to 1 MiB goes up from memory in one ``PUT`` (``POST``, ``PUT``: no ``PATCH``);
    a stop asked as the first such ``PUT`` leaves lets it finish into a blob nothing references
    yet (garbage collection's to remove), the import stops, and no session holds data."""
    image = make_image((300 * 1024, 200 * 1024), seed="small-stop")
    asyncio.run(seed(open_reg, "small/app", image))
    spec = build_spec(f"{open_reg.host}/small/app:v1", target_reg.host, [f"{repo}:v1"])
    stop, sent = stopping.Stop(), []

    async def hook(request: httpx.Request) -> None:
        sent.append((request.method, request.url.path))
        if request.method == "PUT" and "/blobs/uploads/" in request.url.path:
            stop.ask()

    async def run() -> None:
        async with RegistryClient(open_reg.host, None, FAST) as s, RegistryClient(target_reg.host, None, FAST) as d:
            d.transport.http.event_hooks["request"].append(hook)
            with stopping.scope(stop):
                await run_import(spec, s, d)

    with pytest.raises(stopping.Stopped):
        asyncio.run(run())
    puts = [path for method, path in sent if method == "PUT"]
    assert puts and all("/blobs/uploads/" in p for p in puts), sent  # no manifest, no tag
    assert not any(method == "PATCH" for method, _ in sent), sent
    landed = [
        b
        for b in image.blobs
        if httpx.head(f"http://{target_reg.host}/v2/{repo}/blobs/{b.descriptor.digest}").is_success
    ]
    assert len(landed) == len(puts)  # every PUT sent finished
    assert sessions_with_data(target_reg, repo) == 0
    assert _tags(target_reg, repo) == []


# -- point 4: all tags or none -------------------------------------------------------------------

TAGS = 4


async def _stopped_at(step: int | None, cancel: bool, source: str, target: str, repos: tuple[str, str]) -> int:
    """Import into ``TAGS`` tags in each of ``repos``, stopping at the target's answer number
    ``step`` (``cancel``: and cancelling outright at once); returns how many answers there were."""
    images = [f"{r}:t{i}" for r in repos for i in range(TAGS)]
    spec = build_spec(f"{source}/many/app:v1", target, images)
    stop, answers = stopping.Stop(), 0
    task: asyncio.Task[Any] | None = None

    async def hook(_: httpx.Response) -> None:
        nonlocal answers
        answers += 1
        if answers == step and task is not None:
            stop.ask()
            if cancel:
                stop.cancel(task)

    # One connection to the target: the tags go one after another, so a stop can fall between two.
    one = dataclasses.replace(FAST, max_connections=1)
    async with RegistryClient(source, None, FAST) as s, RegistryClient(target, None, one) as d:
        d.transport.http.event_hooks["response"].append(hook)
        with stopping.scope(stop):
            task = asyncio.create_task(run_import(spec, s, d))
        with contextlib.suppress(stopping.Stopped, asyncio.CancelledError):
            await task
    return answers


@pytest.mark.parametrize("cancel", [False, True], ids=["stop", "stop and cancel at once"])
def test_a_many_tag_import_stopped_at_every_step_moves_all_tags_or_none(
    cancel: bool, open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    asyncio.run(seed(open_reg, "many/app", make_image((3000, 5000), seed="many-tags")))
    steps = asyncio.run(_stopped_at(None, cancel, open_reg.host, target_reg.host, (f"{repo}-whole", f"{repo}-w2")))
    outcomes = {"none": 0, "all": 0}
    for step in range(1, steps + 1):
        repos = (f"{repo}-{step}a", f"{repo}-{step}b")
        asyncio.run(_stopped_at(step, cancel, open_reg.host, target_reg.host, repos))
        moved = sum(len(_tags(target_reg, r)) for r in repos)
        assert moved in (0, 2 * TAGS), f"stopped at answer {step} of {steps}: {moved} of {2 * TAGS} tags moved"
        outcomes["all" if moved else "none"] += 1
    assert outcomes["none"] and outcomes["all"], outcomes  # both sides of the commit were reached
    record(
        f"a {2 * TAGS}-tag import stopped at each of its {steps} steps ({'cancelled at once' if cancel else 'stopped'})",
        {"no tag moved": outcomes["none"], "all tags moved": outcomes["all"], "some moved": 0},
    )


# -- the answer to a cancelled upload ----------------------------------------------------------


def test_the_answer_to_a_cancelled_upload_is_never_read_and_a_session_left_is_named() -> None:
    """A ``DELETE`` answered ``202`` with an endless body ends at once, its body unread; one
    answered ``404 BLOB_UPLOAD_INVALID`` (distribution: the session stays, its state no longer
    matching) is noted for the stop's report, its URL without the signed query."""
    endless = [(response(202, b"", {"Transfer-Encoding": "chunked"}, length=False), 0.0)]
    endless += [(b"10000\r\n" + b"x" * PIECE + b"\r\n", 0.0)] * 16_384  # 1 GiB, never all read
    invalid = b'{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"blob upload invalid"}]}'

    def answer(method: str, path: str, headers: dict[str, str]) -> bytes | Pieces:
        if "gone" in path:
            return response(404, invalid, {"Content-Type": "application/json"})
        return endless

    async def cancel(host: str) -> tuple[float, list[str]]:
        stop = stopping.Stop()
        async with RegistryClient(host, None, FAST) as client:
            with stopping.scope(stop):
                started = time.monotonic()
                await client.cancel_upload(httpx.URL(f"http://{host}/v2/a/blobs/uploads/1?_state=secret"), "a")
                seconds = time.monotonic() - started
                await client.cancel_upload(httpx.URL(f"http://{host}/v2/a/blobs/uploads/gone?_state=secret"), "a")
        return seconds, stop.left

    with hostile_server(answer) as (host, seen):
        seconds, left = asyncio.run(cancel(host))
    assert [s.method for s in seen] == ["DELETE", "DELETE"]
    assert seconds < 2, f"{seconds:.1f} s"
    assert left == [f"http://{host}/v2/a/blobs/uploads/gone"]


_INVALID = b'{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"blob upload invalid"}]}'


def test_ctrl_c_names_the_sessions_the_target_would_not_delete(target_reg: Reg, repo: str) -> None:
    """A target that refuses every ``DELETE`` of a session (as distribution does one whose body
    was cut): Ctrl-C says so, naming each session without its signed query, instead of claiming
    the uploads were cancelled."""
    from tests.harness.faultproxy import FaultProxy, Rule

    proxy = FaultProxy("127.0.0.1", target_reg.proc.port).start()
    proxy.add(
        Rule("DELETE", "/blobs/uploads/", times=1000, respond=(404, {"Content-Type": "application/json"}, _INVALID))
    )
    try:
        with hostile_server(throttled_source()) as (source, _):
            proc = _ferry_import(source, proxy.host, repo)
            try:
                _uploading(target_reg, repo, 20, lambda: proc.poll() is None)
                time.sleep(0.5)
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
    finally:
        proxy.stop()
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 130 and "Traceback" not in err, out + err
    assert last.startswith("ferry: interrupted; no tag was moved; the target would not delete "), last
    named = last.rpartition(": ")[2].split(", ")
    assert named and all(u.startswith(f"http://{proxy.host}/v2/{repo}/blobs/uploads/") for u in named), last
    assert "_state" not in err and "?" not in last
    assert len(named) == sessions_with_data(target_reg, repo)  # each session left is named, and only those
