"""YAML or JSON text read into plain values, with a syntax error given by line and column: the
one reader of the rules file, which the automation (its rules) and the verifier (its policies)
both read. PyYAML is imported only when the text is YAML."""

from __future__ import annotations

import json
from typing import Any


class SyntaxProblem(ValueError):
    """Text that is neither valid YAML nor valid JSON; the message says where, as an editor
    shows it (``not valid YAML: line 5, column 1: expected ',' or ']'``)."""


def parse_yaml_or_json(text: str) -> Any:
    """The values ``text`` holds (JSON where it starts with ``{``, else YAML; None when empty).
    Whatever the parser raises, deep nesting included, is a :class:`SyntaxProblem`."""
    try:
        if text.lstrip().startswith("{"):
            return json.loads(text)
        import yaml  # noqa: PLC0415 - only where a YAML file is read

        return yaml.safe_load(text)
    except Exception as exc:
        raise SyntaxProblem(_syntax(exc)) from None


def _syntax(exc: Exception) -> str:
    """A YAML or JSON syntax error with its line and column (1-based)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"not valid YAML: {where}{problem}" + (f" ({context})" if context else "")
