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

from shared.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, fail


def _concurrency(text: str) -> int:
    from shared.environment import CONCURRENCY

    low, high = int(CONCURRENCY.low or 1), int(CONCURRENCY.high or 1)
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}, not {text[:20]!r}")
    return int(text)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """The arguments; an option the subcommand does not know is refused with that subcommand's
    usage (argparse would print the top-level one)."""
    parser, subcommands = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        subcommands.get(args.command, parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "import":
        args.source = args.sources[0]
    return args


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="ferry", description="Ferry: import images into a registry.")
    commands = parser.add_subparsers(dest="command", required=True)
    _import_parser(commands)
    rules = commands.add_parser("rules", help="the promotion and mirror rules file")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)
    check = rules_commands.add_parser("check", help="validate a rules file and say what each rule matches")
    check.add_argument("file")
    planned = rules_commands.add_parser("plan", help="list each mirror's source tags and say what it would select")
    planned.add_argument("file")
    match = rules_commands.add_parser(
        "match", help="say, per promotion, whether a push of REGISTRY/REPO:TAG matches and why"
    )
    match.add_argument("image", metavar="REGISTRY/REPO:TAG")
    match.add_argument("--rules", help="the rules file (default: FERRY_RULES_FILE, else rules.yaml)")
    from shared import cli_service

    cli_service.add_parser(commands)
    from shared import cli_runs

    cli_runs.add_parser(commands)
    work = commands.add_parser("worker", help="run import jobs from the queue, as the queue trigger does")
    work.add_argument("--once", action="store_true", help="stop when the queue is empty")
    return parser, dict(commands.choices)


def _credential_options(imp: argparse.ArgumentParser) -> None:
    imp.add_argument("--username", "-u", help="source registry username (or FERRY_SOURCE_USERNAME)")
    pw = imp.add_mutually_exclusive_group()
    pw.add_argument(
        "--password",
        "-p",
        help="source registry password or token; shows in the process list: prefer --password-stdin or "
        "FERRY_SOURCE_PASSWORD",
    )
    pw.add_argument("--password-stdin", action="store_true", help="read the source password from standard input")


def _verify_options(imp: Any) -> None:
    imp.add_argument(
        "--verify", metavar="POLICY", help="copy only if this policy of the rules file holds (docs/signing.md)"
    )
    imp.add_argument("--rules", metavar="FILE", help="the rules file --verify reads (default FERRY_RULES_FILE)")


def _import_parser(commands: Any) -> None:
    imp = commands.add_parser("import", help="copy an image or artifact into a registry, as `az acr import` does")
    imp.add_argument("--name", "-n", required=True, help="target registry: an ACR name or a login server host[:port]")
    source_help = "source image: [registry/]repository[:tag][@digest]; with --service, repeatable (one run)"
    imp.add_argument("--source", required=True, action="append", dest="sources", help=source_help)
    imp.add_argument("--image", "-t", action="append", default=[], help="target REPO[:TAG]; repeatable")
    imp.add_argument("--repository", action="append", default=[], help="untagged target repository; repeatable")
    imp.add_argument("--force", action="store_true", help="overwrite existing target tags (Force mode)")
    imp.add_argument(
        "--resource-group",
        "-g",
        help="the target's resource group, as az acr import takes it: with AZURE_SUBSCRIPTION_ID, the arm "
        "engine builds the target's resource ID from it when FERRY_REGISTRIES lacks one",
    )
    imp.add_argument(
        "--registry", "-r", help="source registry (ACR name or login server); --source is then a path in it"
    )
    _credential_options(imp)
    imp.add_argument(
        "--platform", action="append", default=[], help="OS/ARCH[/VARIANT] to keep from an index; repeatable"
    )
    imp.add_argument("--include-referrers", action="store_true", help="also copy signatures, SBOMs and attestations")
    imp.add_argument("--dry-run", action="store_true", help="print the plan and copy nothing")
    imp.add_argument(
        "--concurrency",
        type=_concurrency,
        default=None,
        help="registry operations in flight, 1-64 (default FERRY_CONCURRENCY, else 8)",
    )
    imp.add_argument(
        "--engine",
        choices=("oci", "arm", "auto"),
        default="oci",
        help="oci: stream through Ferry (default); arm: ACR's importImage (needs FERRY_REGISTRIES)",
    )
    _verify_options(imp)
    remote = imp.add_argument_group("through a Ferry service")
    remote.add_argument("--service", help="submit to the Ferry service at this URL (or FERRY_SERVICE_URL)")
    remote.add_argument("--no-wait", action="store_true", help="print the job and its Location, and exit")
    remote.add_argument("--credential", help="a source credential configured in the service, by name")


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
    args = _parse(argv)
    if args.command == "worker":
        return _worker(args)
    if args.command == "rules":
        return _rules(args)
    import asyncio

    from shared.environment import CommandLine
    from shared.errors import ConfigurationError, FerryError, InvalidReferenceError

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


def run() -> None:
    """The command's exit, without the interpreter's teardown: freeing every object one by one
    takes 20-40 ms, a tenth of a small import, and a finished command has nothing left to keep.
    What teardown would do that matters is done first: logging's handlers and both streams are
    flushed."""
    import logging

    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
