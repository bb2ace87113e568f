"""``python -m shared.cli import ...``: Ferry from a terminal, modelled on ``az acr import``.

Prints one JSON document on stdout (the result, or ``{"status": "failed", "error": ...}``) and
progress on stderr: a live line on a terminal, a plain line every few seconds otherwise.
Exit codes: 0 done, 1 failed, 2 bad input. Imports are lazy: a small import starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.credentials import Credential
    from shared.importing.launch import Access, Engine
    from shared.importing.result import ImportResult
    from shared.importing.spec import ImportSpec
    from shared.service.client import RequestDocument, SourceDocument

from shared.cli_args import parse
from shared.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, fail


def _source_credential(args: argparse.Namespace, registry: str) -> Credential:
    from shared.credentials import Secret
    from shared.credentials.resolver import Resolver

    if args.password:
        # Too late to hide: the process list has shown it since the start. Say so, once.
        print(
            "warning: --password is visible to other users of this machine in the process list; "
            "use --password-stdin or FERRY_SOURCE_PASSWORD",
            file=sys.stderr,
        )
    username, password = _source_login(args)
    return Resolver()(registry, given=(username, Secret(password)) if password else None)


def _source_login(args: argparse.Namespace) -> tuple[str | None, str | None]:
    env = args.env
    username = args.username or env.source_username
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = args.password or (env.source_password.reveal() if env.source_password else None)
    if username and not password:
        raise ValueError("--username needs --password-stdin, FERRY_SOURCE_PASSWORD or --password")
    return username, password


def _target_credential(args: argparse.Namespace, registry: str) -> Credential:
    """``FERRY_TARGET_USERNAME``/``FERRY_TARGET_PASSWORD`` (Basic, the username may be empty),
    else the Entra identity for an ACR."""
    from shared.credentials import UsernamePassword
    from shared.credentials.resolver import Resolver

    env = args.env
    if env.target_password is not None:
        return UsernamePassword(env.target_username or "", env.target_password)
    return Resolver()(registry)


def _request_doc(args: argparse.Namespace) -> RequestDocument:
    """The CLI's arguments as the API's request document (no credentials)."""
    from shared.importing.spec import parse_source
    from shared.oci.reference import is_resource_id

    source: SourceDocument = {"sourceImage": args.source}
    if args.registry and is_resource_id(args.registry):
        source["resourceId"] = args.registry
    else:
        ref = parse_source(args.source, args.registry)
        source["registryUri"], source["sourceImage"] = ref.registry, str(ref).removeprefix(ref.registry + "/")
    doc: RequestDocument = {
        "targetRegistry": args.name, "source": source, "targetTags": args.image,
        "untaggedTargetRepositories": args.repository, "mode": "Force" if args.force else "NoForce",
        "platforms": args.platform, "includeReferrers": args.include_referrers, "dryRun": args.dry_run,
        "engine": args.engine,
    }  # fmt: skip
    if args.verify:
        doc["verify"] = args.verify
    return doc


def _request(args: argparse.Namespace) -> Any:
    """The CLI's arguments as the API's request (for engine choice and the ARM engine)."""
    from shared.importing.request import ImportRequest

    return ImportRequest.model_validate(_request_doc(args))


def _with_resource_group(args: argparse.Namespace, target: str) -> dict[str, str]:
    """``FERRY_REGISTRIES``, and the target's resource ID made from ``--resource-group`` and
    ``AZURE_SUBSCRIPTION_ID`` when it lacks one (as ``az acr import -g`` names the target)."""
    registries = dict(args.env.registries)
    subscription = args.env.subscription_id
    if target not in registries and args.resource_group and subscription and target.endswith(".azurecr.io"):
        name = target.split(".", 1)[0]
        registries[target] = (
            f"/subscriptions/{subscription}/resourceGroups/{args.resource_group}"
            f"/providers/Microsoft.ContainerRegistry/registries/{name}"
        )
    return registries


def _access(args: argparse.Namespace) -> Access:
    """The command line's credentials: ``--username``/``--password`` (or the environment's) for
    the source, ``FERRY_TARGET_*`` for the target, else the Entra identity for an ACR."""
    from shared.importing.launch import Access

    return Access(
        lambda registry: _source_credential(args, registry), lambda registry: _target_credential(args, registry)
    )


def _identity() -> Any:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def _spec_and_engine(args: argparse.Namespace) -> tuple[ImportSpec, Engine]:
    """The import the arguments ask for, and its engine (the OCI engine unless ``--engine`` asks
    for a choice and ARM is chosen: the choice's modules and pydantic, 0.3 s of imports, only then)."""
    from shared.importing.launch import OCI
    from shared.importing.spec import build_spec

    if args.engine != "oci":
        from shared.importing.engines import engine_for

        request = _request(args)
        engine = engine_for(request, _with_resource_group(args, request.targetRegistry))
        if engine.name == "arm":
            return request.spec(args.env.limits), engine
    spec = build_spec(
        args.source,
        args.name,
        args.image,
        args.repository,
        registry=args.registry,
        force=args.force,
        platforms=args.platform,
        include_referrers=args.include_referrers,
        dry_run=args.dry_run,
        limits=args.env.limits,
    )
    return spec, OCI


async def _import(args: argparse.Namespace) -> ImportResult:
    from shared.importing.launch import Wiring, launch

    spec, engine = _spec_and_engine(args)
    env = args.env
    wiring = Wiring(env.transport, args.concurrency or env.concurrency, _identity, env.arm_endpoint)
    if engine.name == "arm":
        return await launch(spec, engine, wiring, _access(args))
    from shared.progressline import ProgressLine

    verification = _verification(args)  # a bad or unknown policy is refused before the progress line
    line = ProgressLine(sys.stderr)
    try:
        return await launch(
            spec, engine, wiring, _access(args), on_progress=line, progress_interval=line.interval,
            verification=verification,
        )  # fmt: skip
    finally:
        line.close()


def _verification(args: argparse.Namespace) -> Any:
    """``--verify POLICY``: the policy of the rules file (``--rules``, else ``FERRY_RULES_FILE``)."""
    if not args.verify:
        return None
    from shared.verify.load import policy_named

    return policy_named(args.rules or args.env.rules_file, args.verify, "--verify")


async def _interruptible(args: argparse.Namespace) -> ImportResult:
    """The import; Ctrl-C stops it at the engine's next safe point (so a streamed upload's session
    can be deleted), a second Ctrl-C, or ``stopping.GRACE`` seconds later, at once."""
    import asyncio
    import signal

    from shared import stopping

    loop, stop = asyncio.get_running_loop(), stopping.Stop()
    with stopping.scope(stop):
        task = asyncio.create_task(_import(args))
    loop.add_signal_handler(
        signal.SIGINT, stopping.interrupt, stop, task, lambda m: print(f"ferry: {m}", file=sys.stderr)
    )
    try:
        return await task
    except (stopping.Stopped, asyncio.CancelledError):
        raise KeyboardInterrupt(*stop.left) from None  # the sessions the target would not delete


def _worker(args: argparse.Namespace) -> int:
    import asyncio

    from shared import environment, logs
    from shared.errors import ConfigurationError
    from shared.service.localworker import serve
    from shared.service.wiring import build, observe
    from shared.settings import Settings

    try:
        logs.configure(environment.log_level(os.environ))
        services = build(Settings.from_env(os.environ))
        observe(services, os.environ)
    except ConfigurationError as exc:
        print(f"ferry worker: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    asyncio.run(serve(services, once=args.once))
    return EXIT_OK


def _rules(args: argparse.Namespace) -> int:
    from shared.automation import commands

    if args.rules_command == "match":
        return commands.match(args.image, args.rules, os.environ)
    return commands.plan(args.file, os.environ) if args.rules_command == "plan" else commands.check(args.file)


def _through_service(args: argparse.Namespace) -> int | None:
    """``jobs``, ``runs``, and an import a service runs (shared/cli_runs.py); None for one run here."""
    from shared import cli_runs

    return cli_runs.through_service(args, _request_doc, _source_login)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.command in ("worker", "rules"):
        _collecting()
        return _worker(args) if args.command == "worker" else _rules(args)
    import asyncio

    from shared.environment import CommandLine
    from shared.errors import ConfigurationError, FerryError, InvalidReferenceError

    _collecting()
    try:
        args.env = CommandLine.from_env(os.environ)  # every setting checked before any work
        if (done := _through_service(args)) is not None:
            return done
        result = asyncio.run(_interruptible(args)).document()
    except KeyboardInterrupt as exc:
        # The import stopped before its commit (a stop after it waits for the last tag): open
        # upload sessions were deleted on the way out, and no tag moved.
        if left := [str(url) for url in exc.args]:
            sessions = ", ".join(left)
            print(f"ferry: interrupted; no tag was moved; the target would not delete {len(left)} "
                  f"upload session(s), which it purges later: {sessions}", file=sys.stderr)  # fmt: skip
        else:
            print("ferry: interrupted; open uploads were cancelled and no tag was moved", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (InvalidReferenceError, ConfigurationError, ValueError) as exc:
        fail(exc, "BAD_INPUT")
        return EXIT_BAD_INPUT
    except FerryError as exc:
        fail(exc, exc.code)
        return EXIT_FAILED
    print(json.dumps({**result, "status": "succeeded"}, indent=2))
    return EXIT_OK


def _collecting() -> None:
    """Start-up is over: the garbage collector :func:`run` paused runs again, blind to what start-up made."""
    import gc

    if not gc.isenabled():  # paused by run() (a test calling main() never pauses it)
        gc.freeze()
        gc.enable()


def run() -> None:
    """The command as a process. Its start-up (imports: ~100k objects kept as long as the process,
    almost none freed) runs with the garbage collector paused: its ~50 collections found nothing
    (8 ms of a small import). Its exit skips the interpreter's teardown (freeing every object one
    by one: 20-40 ms) once logging's handlers and both streams are flushed."""
    import gc
    import logging

    gc.disable()
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
