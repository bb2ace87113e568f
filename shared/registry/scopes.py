"""Token scopes (distribution docs, spec/auth/scope.md): ``type:name:action[,action]``.

The name may itself contain ``:`` (a ``host:port``), so scopes are built from parts and parsed
from the right, never split naively.
"""

from __future__ import annotations

from collections.abc import Iterable

Scope = tuple[str, str, str]  # (resource type, name, action)


def repository(name: str, *actions: str) -> frozenset[Scope]:
    return frozenset(("repository", name, action) for action in actions)


def parse(text: str) -> frozenset[Scope]:
    kind, _, rest = text.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name or not actions:
        return frozenset()
    return frozenset((kind, name, a) for a in actions.split(",") if a)


def parse_all(texts: Iterable[str]) -> frozenset[Scope]:
    out: frozenset[Scope] = frozenset()
    for text in texts:
        out |= parse(text)
    return out


def render(scopes: Iterable[Scope]) -> list[str]:
    """One string per resource, actions sorted: ``repository:a/b:pull,push``."""
    grouped: dict[tuple[str, str], set[str]] = {}
    for kind, name, action in scopes:
        grouped.setdefault((kind, name), set()).add(action)
    return [f"{k}:{n}:{','.join(sorted(a))}" for (k, n), a in sorted(grouped.items())]
