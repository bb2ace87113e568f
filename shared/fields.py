"""Pydantic's validation errors in a person's words: for a field a model does not have, the nearest
field it does have (``targetTag`` → did you mean ``targetTags``?), as ``az`` and git suggest."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation may hold: ``Source``, ``list[Promotion]``, ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (list, tuple, typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def known_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The fields (and aliases) of the model at ``loc``'s parent, the place an unknown key sat."""
    models = [model]
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        found = [info for m in models if (info := m.model_fields.get(str(part))) is not None]
        models = [sub for info in found for sub in _models_in(info.annotation)]
    names: list[str] = []
    for m in models:
        for name, info in m.model_fields.items():
            names += [name] + ([info.alias] if info.alias else [])
    return list(dict.fromkeys(names))


def unknown_field(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """The message for a key ``model`` does not have at ``loc``: the nearest known one, or all."""
    known = known_fields(model, loc)
    wrong = str(loc[-1]) if loc else ""
    close = difflib.get_close_matches(wrong, known, n=1, cutoff=0.6)
    if not close:
        lowered = {k.lower(): k for k in known}
        close = [lowered[wrong.lower()]] if wrong.lower() in lowered else []
    if close:
        return f"unknown field; did you mean {close[0]!r}?"
    return f"unknown field; known fields here: {', '.join(known)}" if known else "unknown field"
