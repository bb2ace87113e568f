"""The command line's arguments: ``ferry import|rules|jobs|runs|worker`` and their options
(``shared/cli.py`` runs them)."""

from __future__ import annotations

import argparse
from typing import Any


def _concurrency(text: str) -> int:
    from shared.environment import CONCURRENCY

    low, high = int(CONCURRENCY.low or 1), int(CONCURRENCY.high or 1)
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}, not {text[:20]!r}")
    return int(text)


def parse(argv: list[str] | None) -> argparse.Namespace:
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
