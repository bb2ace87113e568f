"""Docker tags as versions, the way teams tag images (after Renovate's ``docker`` versioning):
an optional ``v``, one to four numeric parts without leading zeros, and an optional suffix after
the first ``-`` (``alpine``, ``slim-bookworm``, ``alpine3.21``, ``rc1``). ``latest``,
``mainline``, ``stable-alpine-slim``, ``2024.01.15`` and ``3.14.0a3`` are not versions.

Tags are compared within their suffix only. A tag with fewer parts than the most precise tag of
its suffix (``1.27`` beside ``1.27.3``) is *floating*: it moves as releases come.

Ranges (:func:`parse_range`) take npm's syntax — ``^1.27``, ``~1.27.0``, ``1.27.x``,
``1.25 - 1.27``, ``>=1.25 <2``, ``||`` — and ``>=1.25, <2``; they apply to the version part,
padded with zeros.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

_TAG = re.compile(r"v?(?P<parts>(?:0|[1-9]\d*)(?:\.(?:0|[1-9]\d*)){0,3})(?:-(?P<suffix>[A-Za-z0-9][A-Za-z0-9._-]*))?")
Version = tuple[int, int, int, int]
Comparator = tuple[str, Version]


@dataclass(frozen=True, slots=True)
class DockerTag:
    tag: str
    parts: tuple[int, ...]
    suffix: str

    @property
    def version(self) -> Version:
        """The version padded with zeros to four parts (``1.27`` is 1.27.0.0)."""
        padded = (*self.parts, 0, 0, 0, 0)[:4]
        return (padded[0], padded[1], padded[2], padded[3])


def parse_tag(tag: str) -> DockerTag | None:
    """``tag`` as a version with a suffix, or None when it is not one."""
    match = _TAG.fullmatch(tag)
    if match is None:
        return None
    return DockerTag(tag, tuple(int(p) for p in match["parts"].split(".")), match["suffix"] or "")


def _version(text: str) -> tuple[Version, int]:
    """``1.27``, ``v1.27.3``, ``1.27.x`` → the padded version and how many parts were given
    (wildcards ``x``, ``X``, ``*`` end the count)."""
    parts = []
    for part in text.lstrip("v").split("."):
        if part in ("x", "X", "*", ""):
            break
        if not part.isdigit():
            raise ValueError(f"{text!r} is not a version")
        parts.append(int(part))
    if len(parts) > 4:
        raise ValueError(f"{text!r} has more than four parts")
    padded = (*parts, 0, 0, 0, 0)[:4]
    return (padded[0], padded[1], padded[2], padded[3]), len(parts)


def _bump(version: Version, at: int) -> Version:
    """The next version at part ``at`` (0-based), the parts after it zeroed."""
    bumped = [*version[:at], version[at] + 1, 0, 0, 0][:4]
    return (bumped[0], bumped[1], bumped[2], bumped[3])


def _comparators(term: str) -> list[Comparator]:
    """One space-separated term of a range: ``^1.2``, ``~1.2.3``, ``1.2.x``, ``>=1.2``, ``1.2``."""
    for prefix in (">=", "<=", ">", "<", "==", "="):
        if term.startswith(prefix):
            version, _ = _version(term[len(prefix) :])
            return [(prefix.replace("==", "="), version)]
    if term.startswith("^"):
        version, given = _version(term[1:])
        first = next((i for i, v in enumerate(version[: max(given, 1)]) if v), max(given, 1) - 1)
        return [(">=", version), ("<", _bump(version, first))]
    if term.startswith("~"):
        version, given = _version(term[1:])
        return [(">=", version), ("<", _bump(version, 1 if given >= 2 else 0))]
    version, given = _version(term)
    if given == 0:
        return []  # * or x: anything
    if given < 4:
        return [(">=", version), ("<", _bump(version, given - 1))]  # 1.27 and 1.27.x: 1.27.*
    return [("=", version)]


def parse_range(text: str) -> list[list[Comparator]]:
    """A range as alternatives of comparator lists; :class:`ValueError` when it does not parse."""
    alternatives = []
    for alternative in text.split("||"):
        terms = alternative.replace(",", " ").split()
        comparators: list[Comparator] = []
        if len(terms) == 3 and terms[1] == "-":  # 1.25 - 1.27: inclusive of the whole upper line
            low, _ = _version(terms[0])
            high, given = _version(terms[2])
            comparators = [(">=", low), ("<", _bump(high, given - 1)) if given < 4 else ("<=", high)]
        else:
            for term in terms:
                comparators.extend(_comparators(term))
        alternatives.append(comparators)
    if not alternatives or not text.strip():
        raise ValueError("the range is empty")
    return alternatives


_OPS = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    "<": lambda a, b: a < b, "=": lambda a, b: a == b,
}  # fmt: skip


def in_range(version: Version, alternatives: list[list[Comparator]]) -> bool:
    return any(all(_OPS[op](version, bound) for op, bound in alt) for alt in alternatives)


@dataclass(frozen=True, slots=True)
class Selection:
    """How a mirror picks among versioned tags."""

    versions: str | None = None
    #: A glob over the whole suffix; ``""`` is no suffix; ``"*"`` each suffix on its own.
    suffix: str = ""
    floating: bool = False
    newest: int | None = None
    #: Flux's ``extract``: a regex whose group ``version`` is what is ordered, by ``order``.
    extract: str | None = None
    order: str = "semver"

    def select(self, tags: list[str]) -> list[str]:
        if self.extract:
            return self._extracted(tags)
        return self._versions(tags)

    def _extracted(self, tags: list[str]) -> list[str]:
        """Tags whose ``extract`` match gives a version, ordered by ``order``, the newest N."""
        pattern = re.compile(self.extract or "")
        keyed: list[tuple[object, str]] = []
        for tag in tags:
            match = pattern.fullmatch(tag)
            if match is None or match.groupdict().get("version") is None:
                continue
            text = match["version"]
            if self.order == "numerical":
                if not text.isdigit():
                    continue
                keyed.append((int(text), tag))
            elif self.order == "alphabetical":
                keyed.append((text, tag))
            else:
                parsed = parse_tag(text)
                if parsed is None:
                    continue
                keyed.append((parsed.version, tag))
        keyed.sort(key=lambda pair: pair[0])  # type: ignore[arg-type, return-value]
        chosen = [tag for _, tag in keyed]
        return chosen[-self.newest :] if self.newest else chosen

    def _versions(self, tags: list[str]) -> list[str]:
        """The tags to mirror, in tag order: per suffix, full-precision versions in range (the
        ``newest`` N of them), and floating ones in range when ``floating``."""
        alternatives = parse_range(self.versions) if self.versions else None
        by_suffix: dict[str, list[DockerTag]] = {}
        for tag in tags:
            parsed = parse_tag(tag)
            if parsed is not None and fnmatch.fnmatchcase(parsed.suffix, self.suffix or ""):
                by_suffix.setdefault(parsed.suffix, []).append(parsed)
        chosen: list[str] = []
        for group in by_suffix.values():
            precision = max(len(t.parts) for t in group)
            fit = [t for t in group if alternatives is None or in_range(t.version, alternatives)]
            full = sorted((t for t in fit if len(t.parts) == precision), key=lambda t: (t.version, t.tag))
            if self.newest:
                full = full[-self.newest :]
            chosen += [t.tag for t in full]
            if self.floating:
                chosen += [t.tag for t in fit if len(t.parts) < precision]
        order = {t: (parsed.version, parsed.suffix, t) for t in chosen if (parsed := parse_tag(t)) is not None}
        return sorted(chosen, key=lambda t: order[t])
