"""What a ``400`` says about a request body pydantic or the JSON parser refused, in a person's
words: a syntax error with its line and column, a body sent without ``Content-Type:
application/json`` named as such, an unknown field with the nearest known one."""

from __future__ import annotations

from typing import Any

from shared.fields import unknown_field
from shared.importing.request import ImportRequest

JSON = "application/json"


def _position(body: Any, pos: int) -> str:
    """``line 3, column 1`` of ``pos`` in the body the parser read."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body if isinstance(body, str) else ""
    pos = max(0, min(pos, len(text)))
    return f"line {text.count(chr(10), 0, pos) + 1}, column {pos - text.rfind(chr(10), 0, pos)}"


def body_message(error: dict[str, Any], body: Any, content_type: str) -> str | None:
    """The message for ``error`` when the body's shape explains it better than pydantic; None
    when pydantic's own message is the one to give."""
    kind, loc = error.get("type"), tuple(error.get("loc", ()))
    if kind == "json_invalid":
        pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
        reason = (error.get("ctx") or {}).get("error") or "not JSON"
        return f"not valid JSON: {_position(body, pos)}: {reason}"
    if loc == ("body",) and kind in ("model_attributes_type", "dict_type", "missing"):
        media = content_type.split(";", maxsplit=1)[0].strip().lower()
        if media != JSON:
            given = f"Content-Type: {media}" if media else "no Content-Type"
            return f"expected a JSON object sent with Content-Type: {JSON} (the request has {given})"
        return "expected a JSON object: {...}"
    if kind == "extra_forbidden":
        return unknown_field(ImportRequest, tuple(p for p in loc if p != "body"))
    return None
