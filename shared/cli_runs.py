"""``ferry runs list|show|wait|cancel|retry`` and ``ferry import --service`` with several
``--source``: runs through a Ferry service's API (docs/events.md explains runs).

- ``wait`` follows a run to its end, one line on stderr as its counts change, then prints the run
  and exits ``0`` only when it ``succeeded`` (``1`` for ``partial``, ``failed``, ``cancelled``).
- ``import --service URL -n REG --source A --source B …`` submits one run (``POST /api/runs``) of
  one import per source, each to the repository and tag of its source (as ``az acr import`` does
  without ``--image``), with the other flags (``--force``, ``--platform``, ``--credential``…)
  applying to each; ``--image`` and ``--repository`` name one source's targets, so they are
  refused with several. Then it waits as ``runs wait`` does (``--no-wait``: prints the run).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.cli_service import _refused, answered, client_of
from shared.errors import ServiceError
from shared.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, print_failed

if TYPE_CHECKING:
    from pydantic import BaseModel

    from shared.service.client import RequestDocument, ServiceClient

ENDED = ("succeeded", "failed", "partial", "cancelled")


def through_service(
    args: argparse.Namespace,
    request_doc: Callable[[argparse.Namespace], RequestDocument],
    source_login: Callable[[argparse.Namespace], tuple[str | None, str | None]],
) -> int | None:
    """``jobs``, ``runs``, and ``import`` for a service (``--service``, ``FERRY_SERVICE_URL``);
    None when the import runs here."""
    from shared import cli_service  # noqa: PLC0415

    if args.command in ("jobs", "runs"):
        return cli_service.jobs(args) if args.command == "jobs" else runs(args)
    if len(args.sources) > 1 and not (args.service or args.env.service_url):
        raise ValueError("several --source make one run in a Ferry service: give --service URL")
    if not (args.service or args.env.service_url or args.no_wait or args.credential):
        return None
    # The source's credentials as the command line has them: by name (--credential), else inline
    # (sealed by the service); read once (from stdin too) and sent with each source.
    asks = args.username or args.password or args.password_stdin or args.env.source_password
    docs, login = [], (source_login(args) if asks and not args.credential else None)
    for source in args.sources:
        args.source = source
        doc = request_doc(args)
        if args.credential:
            doc["source"]["credential"] = args.credential
        elif login is not None:
            doc["source"]["credentials"] = {"username": login[0], "password": login[1]}
        docs.append(doc)
    return submit_sources(args, docs) if len(docs) > 1 else cli_service.submit(args, docs[0])


def submit_sources(args: argparse.Namespace, docs: list[RequestDocument]) -> int:
    """Several ``--source``: one run of their imports, followed to its end."""
    if args.image or args.repository:
        print_failed(
            {"code": "BAD_INPUT", "message": "--image and --repository name one source's targets: with several "
             "--source each goes to its own repository and tag; submit sources one by one to name targets"}
        )  # fmt: skip
        return EXIT_BAD_INPUT
    client = client_of(args)
    try:
        accepted = client.submit_run(docs)
    except ServiceError as exc:
        return _refused(exc)
    run_id = accepted.id
    if args.no_wait:
        print(json.dumps({"id": run_id, "state": accepted.state, "location": client.location(accepted.location)}))
        print(f"ferry: run {run_id} of {len(docs)} imports; follow it with `ferry runs wait {run_id}`", file=sys.stderr)
        return EXIT_OK
    print(f"ferry: run {run_id} of {len(docs)} imports at {client.url}", file=sys.stderr)
    return wait(client, run_id)


def wait(client: ServiceClient, run_id: str, poll: float = 0.5) -> int:
    """Follow the run to its end; exit 0 only for ``succeeded``."""
    said = ""
    try:
        while True:
            run = client.run(run_id)
            counts = run.counts
            line = (
                f"ferry: run {run_id} {run.state}: {counts.succeeded} succeeded, "
                f"{counts.failed} failed, {counts.cancelled} cancelled of {counts.total}"
            )
            if line != said:
                print(line, file=sys.stderr)
                said = line
            if run.state in ENDED:
                print(json.dumps(run.model_dump(mode="json"), indent=2))
                return EXIT_OK if run.state == "succeeded" else EXIT_FAILED
            time.sleep(poll)
    except KeyboardInterrupt:
        print(
            f"ferry: stopped following run {run_id}; it goes on (`ferry runs cancel {run_id}` stops it)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except ServiceError as exc:
        return _refused(exc)


def runs(args: argparse.Namespace) -> int:
    """``ferry runs list|show|wait|cancel|retry``."""

    def ask(client: ServiceClient) -> int | BaseModel:
        if args.runs_command == "wait":
            return wait(client, args.id)
        if args.runs_command == "list":
            return client.runs(args.kind, args.state, args.limit)
        if args.runs_command == "cancel":
            return client.cancel_run(args.id)
        if args.runs_command == "retry":
            accepted = client.retry_run(args.id)
            print(f"ferry: run {accepted.id} retries the failures of {args.id}; `ferry runs wait {accepted.id}`",
                  file=sys.stderr)  # fmt: skip
            return accepted
        return client.run(args.id)

    return answered(args, ask)


def add_parser(commands: Any) -> None:
    """The ``runs`` subcommand."""
    parser = commands.add_parser("runs", help="list, show, wait for, cancel or retry a service's runs")
    parser.add_argument("--service", help="the Ferry service's URL (or FERRY_SERVICE_URL)")
    sub = parser.add_subparsers(dest="runs_command", required=True)
    listed = sub.add_parser("list", help="recent runs, newest first")
    listed.add_argument("--kind", choices=("import", "batch", "mirror", "promotion", "retry"))
    listed.add_argument("--state", choices=("running", *ENDED))
    listed.add_argument("--limit", type=int, default=20, choices=range(1, 101), metavar="1-100")
    for name, help_text in (
        ("show", "one run: its counts, what landed where, its event's delivery, its jobs"),
        ("wait", "follow a run to its end; exit 0 only when it succeeded"),
        ("cancel", "cancel every job of the run that has not ended"),
        ("retry", "a new run of the run's failed and cancelled jobs"),
    ):
        sub.add_parser(name, help=help_text).add_argument("id", help="the run's id")
    for command in sub.choices.values():  # --service after the subcommand too
        command.add_argument("--service", default=argparse.SUPPRESS, help="the Ferry service's URL")
