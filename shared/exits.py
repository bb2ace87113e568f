"""How a command ends, for every command Ferry has (``ferry import``, ``ferry jobs``, ``ferry
rules``): the exit codes, and a failure as the command prints it (the JSON document on stdout,
its message on stderr)."""

from __future__ import annotations

import json
import sys
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def print_failed(error: dict[str, Any]) -> None:
    """A failure as the command prints it, here or through a service: the JSON document on
    stdout, its message on stderr."""
    print(json.dumps({"status": "failed", "error": error}, indent=2))
    print(f"ferry: {error['message']}", file=sys.stderr)


def fail(exc: Exception, code: str) -> None:
    """Print ``exc`` as a failure: its own code when it has one, else ``code``."""
    from shared.text import clean  # noqa: PLC0415 - only when failing

    code = getattr(exc, "code", code)
    error = {"code": code, "message": clean(str(exc))}
    if getattr(exc, "detail", ""):
        error["detail"] = clean(str(exc.detail))  # type: ignore[attr-defined]
    print_failed(error)
