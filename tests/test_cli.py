"""``python -m shared.cli import``: az acr import's naming rules, JSON out, exit codes 0/1/2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.credentials import UsernamePassword
from shared.errors import InvalidReferenceError
from shared.importing.spec import TargetRef, build_spec
from tests.conftest import Reg
from tests.harness.images import make_image, make_multiarch, seed
from tests.harness.registry import free_port

pytestmark = pytest.mark.process  # every test here starts a process

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("source", "images", "repositories", "registry", "targets"),
    [
        ("docker.io/library/nginx:1.27", (), (), None, [TargetRef("library/nginx", "1.27")]),
        ("nginx", (), (), None, [TargetRef("library/nginx", "latest")]),
        (f"mcr.microsoft.com/dotnet/runtime@sha256:{'a' * 64}", (), (), None, [TargetRef("dotnet/runtime", "latest")]),
        ("ghcr.io/org/app:v2", ("mirror/app",), (), None, [TargetRef("mirror/app", "v2")]),
        (f"ghcr.io/org/app@sha256:{'b' * 64}", ("mirror/app",), (), None, [TargetRef("mirror/app", "latest")]),
        (
            "ghcr.io/org/app:v2",
            ("a:1", "a:1", "b"),
            ("c",),
            None,
            [TargetRef("a", "1"), TargetRef("b", "v2"), TargetRef("c")],
        ),
        ("ghcr.io/org/app:v2", (), ("only",), None, [TargetRef("only")]),
        ("team/app:3", (), (), "devacr", [TargetRef("team/app", "3")]),
        ("devacr.azurecr.io/team/app:3", (), (), "devacr.azurecr.io", [TargetRef("team/app", "3")]),
    ],
)
def test_target_naming(
    source: str, images: tuple[str, ...], repositories: tuple[str, ...], registry: str | None, targets: list[TargetRef]
) -> None:
    spec = build_spec(source, "prodacr", images, repositories, registry=registry)
    assert list(spec.targets) == targets
    assert spec.target_registry == "prodacr.azurecr.io"


def test_registry_flag_names_the_source_registry() -> None:
    spec = build_spec("team/app:3", "prodacr", registry="devacr")
    assert str(spec.source) == "devacr.azurecr.io/team/app:3"


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"source": "Bad/Name"}, "lowercase"),
        ({"source": "nginx", "images": ("x@sha256:" + "a" * 64,)}, "a target image takes a tag"),
        ({"source": "nginx", "images": ("UPPER:1",)}, "lowercase"),
        ({"source": "nginx", "images": ("x:" + "t" * 129,)}, "over the limit of 128"),
        ({"source": "nginx", "repositories": ("a//b",)}, "empty path component"),
        ({"source": "nginx", "platforms": ("linux",)}, "os/arch"),
        ({"source": "nginx", "target": "abc"}, "5-50 letters"),
    ],
)
def test_bad_input(kwargs: dict[str, object], reason: str) -> None:
    args = {"source": "nginx", "target": "prodacr", **kwargs}
    with pytest.raises(InvalidReferenceError, match=reason):
        build_spec(str(args.pop("source")), str(args.pop("target")), **args)  # type: ignore[arg-type]


def cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", "import", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=60,
        check=False,
    )


async def test_cli_import_prints_json_and_progress(open_reg: Reg, target_reg: Reg, repo: str) -> None:
    index = make_multiarch(seed="cli")
    await seed(open_reg, repo, index)
    done = cli("--name", target_reg.host, "--source", f"{open_reg.host}/{repo}:v1", "--image", f"{repo}:copied")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded" and result["digest"] == str(index.digest)
    assert result["targets"] == [f"{target_reg.host}/{repo}:copied"]
    assert "manifests 4/4" in done.stderr and "blobs 10/10" in done.stderr


async def test_cli_failure_and_bad_input_exit_codes(open_reg: Reg, target_reg: Reg, basic_reg: Reg, repo: str) -> None:
    missing = cli("--name", target_reg.host, "--source", f"{open_reg.host}/{repo}:missing")
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["error"]["code"] == "NOT_FOUND"
    bad = cli("--name", target_reg.host, "--source", f"{open_reg.host}/Bad:1")
    assert bad.returncode == 2 and "lowercase" in json.loads(bad.stdout)["error"]["message"]
    assert "Traceback" not in bad.stderr + missing.stderr
    usage = cli("--name", target_reg.host)
    assert usage.returncode == 2 and "--source" in usage.stderr
    limit = cli("--name", target_reg.host, "--source", f"{open_reg.host}/a:1", env={"FERRY_MAX_MANIFESTS": "lots"})
    assert limit.returncode == 2 and "setting FERRY_MAX_MANIFESTS" in json.loads(limit.stdout)["error"]["message"]
    assert "Traceback" not in limit.stderr


async def test_cli_password_stdin_never_echoed(basic_reg: Reg, target_reg: Reg, repo: str) -> None:
    done = cli(
        "--name",
        target_reg.host,
        "--source",
        f"{basic_reg.host}/{repo}:v1",
        "--username",
        "alice",
        "--password-stdin",
        stdin="WRONG-planted-password\n",
    )
    assert done.returncode == 1 and "401" in done.stdout
    assert "WRONG-planted-password" not in done.stdout + done.stderr


async def test_cli_source_password_from_the_environment_and_a_warning_for_the_flag(
    basic_reg: Reg, target_reg: Reg, repo: str
) -> None:
    """--password shows in the process list (nothing the program can do once it runs): it works
    and warns; FERRY_SOURCE_USERNAME/PASSWORD keep the secret out of argv."""
    await seed(basic_reg, repo, make_image(seed="env-password"))
    assert isinstance(basic_reg.credential, UsernamePassword)
    password = basic_reg.credential.password.reveal()
    source = ("--source", f"{basic_reg.host}/{repo}:v1")
    by_env = cli(
        "--name", target_reg.host, *source, "--image", f"{repo}:env",
        env={"FERRY_SOURCE_USERNAME": "alice", "FERRY_SOURCE_PASSWORD": password},
    )  # fmt: skip
    assert by_env.returncode == 0, by_env.stdout
    assert "warning" not in by_env.stderr
    by_flag = cli("--name", target_reg.host, *source, "--image", f"{repo}:flag", "-u", "alice", "-p", password)
    assert by_flag.returncode == 0, by_flag.stdout
    assert "--password is visible to other users" in by_flag.stderr
    for done in (by_env, by_flag):
        assert password not in done.stdout + done.stderr


def test_the_ferry_command_runs_from_any_directory(tmp_path: Path) -> None:
    ferry = Path(sys.executable).parent / "ferry"
    assert ferry.exists(), "scripts/bootstrap.sh installs the ferry command into .venv"
    done = subprocess.run([str(ferry), "import", "--help"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.startswith("usage: ferry import"), done.stderr
    assert "--concurrency" in done.stdout and "1-64" in done.stdout and "--resource-group" in done.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--concurrency", "0"],
            {},
            "ferry import: error: argument --concurrency: must be a whole number from 1 to 64",
        ),
        (
            ["--concurrency", "-1"],
            {},
            "ferry import: error: argument --concurrency: must be a whole number from 1 to 64",
        ),
        (["--bogus"], {}, "ferry import: error: unrecognized arguments: --bogus"),
        ([], {"FERRY_CONCURRENCY": "lots"}, "setting FERRY_CONCURRENCY: must be a whole number from 1 to 64"),
        ([], {"FERRY_STALL_WINDOW_SECONDS": "soon"}, "setting FERRY_STALL_WINDOW_SECONDS: must be a positive number"),
    ],
)
def test_bad_options_and_settings_exit_2_naming_them(args: list[str], env: dict[str, str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", "import", "--name", "127.0.0.1:1", "--source", "a/b:1", "-g", "rg", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stdout + done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("size", "sent"), [(300_000, "POST"), (1_500_000, "PATCH")], ids=["read whole, then one PUT", "streamed"]
)
def test_ctrl_c_mid_import_cancels_the_uploads_and_moves_no_tag(
    size: int, sent: str, target_reg: Reg, repo: str
) -> None:
    """SIGINT while a layer is read (up to 1 MiB: read whole before its one ``PUT``) or streams
    (larger: one ``PATCH``): the upload session is cancelled (DELETE), one line on stderr, exit
    130, no traceback, and the target tag never moves."""
    import signal
    import time

    from tests.harness.faultproxy import FaultProxy
    from tests.harness.hostile import hostile_server, response
    from tests.harness.images import make_image as image_of

    image = image_of((size,), seed="ctrl-c")
    layer = image.blobs[1]
    blobs = {str(b.descriptor.digest): b.data for b in image.blobs}

    def slow_source(method: str, path: str, headers: dict[str, str]) -> bytes | list[tuple[bytes, float]] | None:
        if "/manifests/" in path:
            fields = {"Content-Type": image.media_type, "Docker-Content-Digest": str(image.digest)}
            return response(
                200,
                image.manifest if method == "GET" else b"",
                {**fields, "Content-Length": str(len(image.manifest))},
                length=False,
            )
        data = blobs.get(path.rsplit("/", 1)[-1])
        if data is None:
            return response(200, b"{}")
        if path.endswith(str(layer.descriptor.digest)):  # the layer trickles: the upload stays open
            start = response(200, b"", {"Content-Length": str(len(data))}, length=False)
            return [(start, 0.0)] + [(data[i : i + 4096], 0.05) for i in range(0, len(data), 4096)]
        return response(200, data)

    proxy = FaultProxy("127.0.0.1", target_reg.proc.port).start()
    try:
        with hostile_server(slow_source) as (source, _):
            proc = subprocess.Popen(
                [sys.executable, "-m", "shared.cli", "import", "--name", proxy.host, "--source", f"{source}/evil/app:v1",
                 "--image", f"{repo}:v1"],
                env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            deadline = time.monotonic() + 20
            while sum(r.method == sent and "/blobs/uploads/" in r.path for r in proxy.seen) < 2 - (sent == "PATCH"):
                assert time.monotonic() < deadline and proc.poll() is None, "the upload never started"
                time.sleep(0.05)
            time.sleep(0.3)  # the config is in; the layer trickles
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=20)
        assert proc.returncode == 130, out + err
        lines = err.strip().splitlines()
        assert (
            "Traceback" not in err
            and lines[-1] == "ferry: interrupted; open uploads were cancelled and no tag was moved"
        )
        assert [line for line in lines if line.startswith("ferry:")] == lines[-1:], err  # besides progress lines
        assert any(r.method == "DELETE" and "/blobs/uploads/" in r.path for r in proxy.seen)
        assert not any(r.method == "PUT" and "/manifests/" in r.path for r in proxy.seen)
    finally:
        proxy.stop()


def test_resource_group_names_the_targets_resource_id_for_the_arm_engine() -> None:
    import argparse

    from shared import environment
    from shared.cli import _with_resource_group

    env = environment.CommandLine.from_env({"AZURE_SUBSCRIPTION_ID": "0" * 8 + "-0000-0000-0000-" + "0" * 12})
    args = argparse.Namespace(env=env, resource_group="rg-prod")
    found = _with_resource_group(args, "prodacr.azurecr.io")
    assert found["prodacr.azurecr.io"] == (
        f"/subscriptions/{env.subscription_id}/resourceGroups/rg-prod/providers/Microsoft.ContainerRegistry/registries/prodacr"
    )
    assert _with_resource_group(argparse.Namespace(env=env, resource_group=None), "prodacr.azurecr.io") == {}


def test_ctrl_c_mid_streamed_upload_deletes_the_session_on_the_registry(target_reg: Reg, repo: str) -> None:
    """A 200 MiB layer streams in a PATCH; Ctrl-C ends its body at the next piece, so the
    registry answers with the session's current URL and the session is deleted: the registry's
    own GET on the upload URL says it is unknown (a cut connection leaves it there)."""
    import signal
    import threading
    import time

    from tests.harness.hostile import hostile_server
    from tests.harness.relay import Relay
    from tests.harness.uploads import trickling_source, upload_path, upload_session

    relay = Relay(target_reg.proc.port).start()
    try:
        with hostile_server(trickling_source(threading.Event())) as (source, _):
            proc = subprocess.Popen(
                [sys.executable, "-m", "shared.cli", "import", "--name", relay.host, "--source",
                 f"{source}/big/app:v1", "--image", f"{repo}:v1"],
                env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            upload = upload_path(relay, 20, target_reg)
            time.sleep(0.5)
            assert upload_session(target_reg, upload) == "open"
            asked = time.monotonic()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=20)
            stopped = time.monotonic() - asked
        assert proc.returncode == 130 and stopped < 5, err
        assert err.strip().splitlines()[-1] == "ferry: interrupted; open uploads were cancelled and no tag was moved"
        assert upload_session(target_reg, upload) == "BLOB_UPLOAD_UNKNOWN"
        assert not any(m == "PUT" and "/manifests/" in p for m, p in relay.requests)
    finally:
        relay.stop()


LOADED = (
    "import sys, json\nfrom shared import cli\ncode = cli.main(sys.argv[1:])\n"
    "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} | {m for m in sys.modules if m.startswith('shared.')})))\n"
    "sys.exit(code)"
)


async def _local_import(script: str, open_reg: Reg, target_reg: Reg, repo: str) -> subprocess.CompletedProcess[str]:
    """``script`` run as ``python -c`` with a local import's arguments, of a small image seeded first."""
    await seed(open_reg, repo, make_image(seed="start-up"), "v1")
    done = subprocess.run(
        [sys.executable, "-c", script, "import", "--name", target_reg.host, "--source", f"{open_reg.host}/{repo}:v1"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


async def test_a_local_import_without_verify_loads_no_verifier_telemetry_or_service_client(
    open_reg: Reg, target_reg: Reg, repo: str
) -> None:
    """Start-up: a local ``ferry import`` imports only what it runs; no signature checks (cryptography,
    rfc8785), telemetry, Azure SDK or the service's client unless it is asked for, and no
    challenge parser or token cache from registries that never ask for credentials."""
    done = await _local_import(LOADED, open_reg, target_reg, repo)
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "shared.importing.run" in loaded  # the import ran here
    heavy = {"shared.verify", "cryptography", "rfc8785", "opentelemetry", "azure", "shared.service.client"}
    heavy |= {"shared.registry.challenge", "shared.registry.tokens"}  # only once a registry answers 401
    assert not heavy & loaded, heavy & loaded


START = """
import gc, sys
from shared import cli
started = []
gc.callbacks.append(lambda phase, info: phase == "start" and started.append(info["generation"]))
real_main, real_collecting = cli.main, cli._collecting
def main(argv=None):
    started.clear()  # run() has paused the collector by now
    return real_main(argv)
def collecting():
    print(f"start-up: {len(started)} collections, enabled {gc.isenabled()}", file=sys.stderr)
    real_collecting()
    print(f"then: enabled {gc.isenabled()}, frozen {gc.get_freeze_count()}", file=sys.stderr)
cli.main, cli._collecting = main, collecting
sys.argv[0] = "ferry"
cli.run()
"""


async def test_a_local_imports_start_up_runs_no_garbage_collection(open_reg: Reg, target_reg: Reg, repo: str) -> None:
    """Start-up allocates ~100k objects that live as long as the process: the collector is paused
    while they are made (its ~50 collections found nothing), then runs again, blind to them."""
    done = await _local_import(START, open_reg, target_reg, repo)
    assert json.loads(done.stdout)["status"] == "succeeded"
    said = [line for line in done.stderr.splitlines() if line.startswith(("start-up:", "then:"))]
    assert said[0] == "start-up: 0 collections, enabled False", done.stderr
    assert said[1].startswith("then: enabled True, frozen ") and int(said[1].rsplit(" ", 1)[1]) > 10_000, said


def test_a_service_command_reads_answers_without_the_azure_sdk() -> None:
    """``ferry jobs`` reads the API's answers as the API's own models, and those are plain values:
    the Azure SDK the service stores them with is not loaded to show a job (nothing listens on the
    port: the command fails as it would, having imported what it needs)."""
    done = subprocess.run(
        [sys.executable, "-c", LOADED, "jobs", "--service", f"http://127.0.0.1:{free_port()}", "list"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1 and '"code": "SERVICE_UNREACHABLE"' in done.stdout, done.stdout + done.stderr
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert {"shared.service.client", "shared.service.models", "shared.runs.model"} <= loaded
    assert not {"azure", "shared.azure_storage.store"} & loaded, {"azure", "shared.azure_storage.store"} & loaded
