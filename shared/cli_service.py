"""``ferry import … --service URL`` and ``ferry jobs …``: the command line driving a Ferry service
through its API, as ``az acr import`` drives ACR's, instead of running the engine here.

``import --service`` sends the same flags as the request the API takes, maps the API's ``400``
fields back to the flags, then follows the job (``GET``) with the same progress line and ends
with the same JSON document and exit code as a local run. ``--no-wait`` prints the job and its
``Location`` and exits 0. Ctrl-C while following stops following, not the job.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.errors import ServiceError
from shared.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, print_failed

if TYPE_CHECKING:  # the client (and httpx, pydantic) only when a command talks to a service
    from pydantic import BaseModel

    from shared.service.client import RequestDocument, ServiceClient
    from shared.service.models import Accepted, ImportStatus

#: The API's request fields as the command line names them.
FLAGS = {
    "targetRegistry": "--name",
    "source.sourceImage": "--source",
    "source.registryUri": "--registry",
    "source.resourceId": "--registry",
    "source.credential": "--credential",
    "source.credentials": "--username/--password",
    "source": "--source",
    "targetTags": "--image",
    "untaggedTargetRepositories": "--repository",
    "mode": "--force",
    "platforms": "--platform",
    "includeReferrers": "--include-referrers",
    "dryRun": "--dry-run",
    "engine": "--engine",
    "verify": "--verify",
}


def flag_of(field: str) -> str:
    """``targetTags[2]`` → ``--image (3rd)``; ``source.credentials.password`` → ``--username/--password``."""
    name, _, index = field.partition("[")
    while name not in FLAGS and "." in name:
        name = name.rsplit(".", 1)[0]
    flag = FLAGS.get(name, field)
    if index:
        n = int(index.split("]", 1)[0]) + 1
        flag += f" ({n}{_ordinal(n)})"
    return flag


def _ordinal(n: int) -> str:
    """``st``, ``nd``, ``rd`` or ``th``: 1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st."""
    if n % 100 in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def client_of(args: argparse.Namespace) -> ServiceClient:
    """The service named by ``--service`` or ``FERRY_SERVICE_URL``, with its key or token."""
    from shared.service.client import ServiceClient  # noqa: PLC0415 - not for the parser alone

    env = args.env
    token = None
    if env.service_scope:
        scope = env.service_scope

        def token() -> str:
            from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - only for Easy Auth

            return str(DefaultAzureCredential().get_token(scope).token)

    url = getattr(args, "service", None) or env.service_url
    if not url:
        raise ValueError("no service: give --service URL or set FERRY_SERVICE_URL")
    return ServiceClient(url, function_key=env.function_key.reveal() if env.function_key else None, token=token)


def submit(args: argparse.Namespace, request: RequestDocument) -> int:
    """Submit ``request``; with ``--no-wait`` print the job, else follow it to its end."""

    client = client_of(args)
    for option, setting in (("concurrency", "FERRY_CONCURRENCY"), ("resource_group", "FERRY_REGISTRIES")):
        if getattr(args, option, None):
            print(
                f"warning: --{option.replace('_', '-')} is the service's to set ({setting}); ignored", file=sys.stderr
            )
    try:
        accepted = client.submit(request)
    except ServiceError as exc:
        return _refused(exc)
    if args.no_wait:
        return _print_accepted(client, accepted)
    try:
        print(f"ferry: job {accepted.id} {accepted.state} at {client.url}", file=sys.stderr)
        return follow(client, accepted.id)
    except KeyboardInterrupt:  # before following began
        return _stopped_following(accepted.id)


def _print_accepted(client: ServiceClient, accepted: Accepted) -> int:
    job_id, state = accepted.id, accepted.state
    print(json.dumps({"id": job_id, "state": state, "location": client.location(accepted.location)}))
    print(f"ferry: job {job_id} {state}; follow it with `ferry jobs wait {job_id}`", file=sys.stderr)
    return EXIT_OK


def follow(client: ServiceClient, job_id: str) -> int:
    """Poll the job until it ends, drawing its progress; print what a local run prints."""
    from shared.progressline import ProgressLine  # noqa: PLC0415 - imported when following only

    line, drawn, polls = ProgressLine(sys.stderr), 0.0, 0
    try:
        while True:
            status = client.job(job_id)
            if status.state in ("succeeded", "failed", "cancelled"):
                if drawn:
                    line.close()
                return _ended(status)
            if status.progress and time.monotonic() - drawn >= line.interval:
                line.draw(status.progress)
                drawn = time.monotonic()
            polls += 1
            time.sleep(0.1 if polls < 20 else 0.5 if polls < 120 else 2.0)
    except KeyboardInterrupt:
        return _stopped_following(job_id)
    except ServiceError as exc:
        return _refused(exc)


def _stopped_following(job_id: str) -> int:
    print(
        f"ferry: stopped following job {job_id}; it goes on in the service (`ferry jobs cancel {job_id}` stops it)",
        file=sys.stderr,
    )
    return EXIT_INTERRUPTED


def _ended(status: ImportStatus) -> int:
    """The JSON document a local run prints, and its exit code."""
    if status.state == "succeeded":
        print(json.dumps({**(status.result or {}), "status": "succeeded"}, indent=2))
        return EXIT_OK
    if status.state == "cancelled":
        doc = {"status": "cancelled", "id": status.id, "progress": status.progress}
        print(json.dumps(doc, indent=2))
        print(f"ferry: job {status.id} was cancelled; no tag was moved", file=sys.stderr)
        return EXIT_FAILED
    print_failed(status.error or {"code": "FAILED", "message": "the job failed"})
    return EXIT_FAILED


def _refused(exc: ServiceError) -> int:
    """A refusal as a local run reports bad input (exit 2) or a failure (exit 1)."""
    if exc.status == 400 and exc.fields:
        named = [{"flag": flag_of(field), "message": message} for field, message in exc.fields]
        message = "; ".join(f"{f['flag']}: {f['message']}" for f in named)
        print_failed({"code": "BAD_INPUT", "message": message, "fields": named})
        return EXIT_BAD_INPUT
    error = {"code": exc.code, "message": str(exc)}
    if exc.state is not None:
        error["state"] = exc.state
    print_failed(error)
    return EXIT_FAILED


def answered(args: argparse.Namespace, ask: Callable[[ServiceClient], int | BaseModel]) -> int:
    """Ask the service (``ask`` returns an exit code, or the answer to print as JSON, as the
    service sent it); a refusal is printed as the service gave it."""
    try:
        done = ask(client_of(args))
    except ServiceError as exc:
        return _refused(exc)
    if isinstance(done, int):
        return done
    print(json.dumps(done.model_dump(mode="json"), indent=2))
    return EXIT_OK


def jobs(args: argparse.Namespace) -> int:
    """``ferry jobs list|show|cancel|retry|wait``."""

    def ask(client: ServiceClient) -> int | BaseModel:
        if args.jobs_command == "wait":
            return follow(client, args.id)
        if args.jobs_command == "retry":
            return _print_accepted(client, client.retry(args.id))
        if args.jobs_command == "list":
            listed = client.jobs(args.state, args.limit)
            if (args.output or ("table" if sys.stdout.isatty() else "json")) == "table":
                print(table(listed.items))
                return EXIT_OK
            return listed
        if args.jobs_command == "cancel":
            return client.cancel(args.id)
        return client.job(args.id)

    return answered(args, ask)


#: ``ferry jobs list``'s table: (heading, how a job shows in that column).
_COLUMNS: tuple[tuple[str, Callable[[ImportStatus], str]], ...] = (
    ("ID", lambda j: j.id),
    ("STATE", lambda j: j.state),
    ("CREATED", lambda j: f"{j.createdAt:%Y-%m-%d %H:%M:%S}"),
    ("TRIES", lambda j: str(j.attemptCount)),
    ("SOURCE", lambda j: j.source),
    ("TARGETS", lambda j: ", ".join(j.targets)),
    ("ERROR", lambda j: (j.error or {}).get("code", "")),
)


def table(items: list[ImportStatus]) -> str:
    """Jobs as ``az ... -o table`` shows them: one line each, columns aligned."""
    from shared.text import printable  # noqa: PLC0415 - the list command only

    rows = [[h for h, _ in _COLUMNS]] + [[printable(show(job)) for _, show in _COLUMNS] for job in items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    rows.insert(1, ["-" * w for w in widths])
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def add_parser(commands: Any) -> None:
    """The ``jobs`` subcommand. ``--service`` is taken before the subcommand or after it."""
    parser = commands.add_parser("jobs", help="list, show, cancel, retry or wait for a service's import jobs")
    parser.add_argument("--service", help="the Ferry service's URL (or FERRY_SERVICE_URL)")
    sub = parser.add_subparsers(dest="jobs_command", required=True)
    listed = sub.add_parser("list", help="recent jobs, newest first, each with its last attempt")
    listed.add_argument("--state", choices=("queued", "running", "succeeded", "failed", "cancelled"))
    listed.add_argument("--limit", type=int, default=20, choices=range(1, 101), metavar="1-100")
    listed.add_argument(
        "--output", "-o", choices=("json", "table"), help="table (the default on a terminal) or json (otherwise)"
    )
    subcommands = [listed]
    for name, help_text in (
        ("show", "one job with every attempt"),
        ("cancel", "cancel a queued job, or stop a running one before any tag moves"),
        ("retry", "a new job with the request of a failed or cancelled one"),
        ("wait", "follow a job to its end: its progress, then the JSON a local import prints"),
    ):
        subcommands.append(sub.add_parser(name, help=help_text))
        subcommands[-1].add_argument("id", help="the job's id")
    for command in subcommands:  # after the subcommand too; SUPPRESS keeps one given before it
        command.add_argument("--service", default=argparse.SUPPRESS, help="the Ferry service's URL")
