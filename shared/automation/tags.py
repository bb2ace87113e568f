"""Docker tags as versions, the way teams tag images (after Renovate's ``docker`` versioning):
an optional ``v``, one to four numeric parts, and an optional suffix after the first ``-``
(``alpine``, ``slim-bookworm``, ``alpine3.21``, ``rc1``). A part may have leading zeros and is
read as a number, as Renovate reads it: ubuntu's ``24.04`` is 24.4, ``2024.01.15`` is 2024.1.15.
``latest``, ``mainline``, ``stable-alpine-slim`` and ``3.14.0a3`` are not versions.

Tags are compared within their suffix only. A tag with fewer parts than the most precise tag of
its suffix (``1.27`` beside ``1.27.3``) is *floating*: it moves as releases come.

Ranges (:func:`parse_range`) are npm's (node-semver's grammar, read as ``semver.satisfies``
reads it): ``^1.27``, ``~1.27.0``, ``1.27.x``, ``1.25 - 1.27``, ``>=1.25 <2``, ``>1.2`` (that
is ``>=1.3.0``), ``<=1.2`` (``<1.3.0``), ``>= 1.2.3``, ``||``. Ferry's extensions, on ranges
npm refuses: a fourth part (a version with fewer parts is a partial one: ``1.2.3`` is
``1.2.3.x``), commas between comparators (``>=1.25, <2``) and leading zeros (``>=22.04``).
A range Ferry cannot read as written is refused (:class:`ValueError` naming the part), never
read as something else; so is an empty one or an empty alternative (npm reads both as ``*``).
Tag versions have no prerelease, so a prerelease in a range (``>=1.2.3-rc1``) only places its
bound just below ``1.2.3``, as it does for npm on release versions.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

_TAG = re.compile(r"v?(?P<parts>\d+(?:\.\d+){0,3})(?:-(?P<suffix>[A-Za-z0-9][A-Za-z0-9._-]*))?")
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
        return _pad(self.parts)


def parse_tag(tag: str) -> DockerTag | None:
    """``tag`` as a version with a suffix, or None when it is not one."""
    match = _TAG.fullmatch(tag)
    if match is None:
        return None
    return DockerTag(tag, tuple(int(p) for p in match["parts"].split(".")), match["suffix"] or "")


def _pad(parts: tuple[int, ...]) -> Version:
    padded = (*parts, 0, 0, 0, 0)[:4]
    return (padded[0], padded[1], padded[2], padded[3])


def _bump(version: Version, at: int) -> Version:
    """The next version at part ``at`` (0-based), the parts after it zeroed."""
    return _pad((*version[:at], version[at] + 1))


#: node-semver's XRANGEPLAIN with a fourth part and leading zeros: ``v``/``=`` prefixes, up to
#: four numbers or wildcards, a prerelease after the third or fourth (build metadata is gone).
_XR = r"\d+|[xX*]"
_PARTIAL = rf"[v=\s]*(?:{_XR})(?:\.(?:{_XR})){{0,3}}(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
_BUILD = re.compile(r"\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*")
_HYPHEN = re.compile(rf"\s*(?P<low>{_PARTIAL})\s+-\s+(?P<high>{_PARTIAL})\s*")
#: npm's whitespace trims: ``>= 1.2`` is ``>=1.2`` (when a version follows), ``~ 1.2``, ``^ 1.2``.
_OP_SPACE = re.compile(r"([<>]=?|=)\s+(?=[v=]*[0-9xX*])")
_LONE_SPACE = re.compile(r"(~>?|\^)\s+")
_TERM = re.compile(rf"(?P<op>\^|~>?|[<>]=?|=)?(?P<version>{_PARTIAL})")
_NOTHING: Comparator = ("<", (0, 0, 0, 0))  # what npm writes <0.0.0-0: no version is below it
_MAX = 2**53 - 1  # node-semver refuses parts above Number.MAX_SAFE_INTEGER


@dataclass(frozen=True, slots=True)
class _Partial:
    """A version as a range writes it: the numbers before the first wildcard (``1.2.x`` → 1, 2),
    whether a number follows a wildcard (``1.x.3``), and whether it has a prerelease."""

    parts: tuple[int, ...]
    disordered: bool
    pre: bool

    @property
    def low(self) -> Version:
        return _pad(self.parts)

    def next(self, at: int) -> Version:
        return _bump(self.low, at)


def _partial(text: str) -> _Partial:
    core, _, pre = text.lstrip("v= \t").partition("-")
    parts: list[int] = []
    pieces = core.split(".")
    wild = next((i for i, p in enumerate(pieces) if p in ("x", "X", "*")), len(pieces))
    for piece in pieces[:wild]:
        if int(piece) > _MAX:
            raise ValueError(f"{text.strip()!r}: {piece} is too large a number")
        parts.append(int(piece))
    if pre and len(pieces) < 3:
        raise ValueError(f"{text.strip()!r} is not a version: a prerelease follows three parts (1.2.3-rc1)")
    disordered = any(p not in ("x", "X", "*") for p in pieces[wild:])
    return _Partial(tuple(parts), disordered, bool(pre) and wild == len(pieces))


def _primitive(op: str, p: _Partial) -> list[Comparator]:
    """``>=1.2``, ``<1.2.x``, ``1.2``, ``=1.2.3``: npm's ``replaceXRange``, where a missing part
    is a wildcard (``>1.2`` is ``>=1.3.0``, ``<=1.2`` is ``<1.3.0``)."""
    op = op or "="
    if p.pre:  # 1.2.3-rc1 sits just below 1.2.3, and no tag version is a prerelease
        return {"=": [_NOTHING], ">=": [(">=", p.low)], ">": [(">=", p.low)]}.get(op, [("<", p.low)])
    if not p.parts:  # *, x: every version, or none for > and <
        return [_NOTHING] if op in (">", "<") else []
    if len(p.parts) == 4:
        return [(op, p.low)]
    high = p.next(len(p.parts) - 1)
    return {
        ">=": [(">=", p.low)], "<": [("<", p.low)], ">": [(">=", high)], "<=": [("<", high)],
        "=": [(">=", p.low), ("<", high)],
    }[op]  # fmt: skip


def _caret(p: _Partial) -> list[Comparator]:
    """``^1.2.3``: up to the next version of the first non-zero part given (``^0.2`` < 0.3)."""
    if not p.parts:
        return []
    first = next((i for i, v in enumerate(p.parts) if v), len(p.parts) - 1)
    return [(">=", p.low), ("<", p.next(first))]


def _tilde(p: _Partial) -> list[Comparator]:
    """``~1.2.3``: up to the next minor version (the next major for ``~1``)."""
    if not p.parts:
        return []
    return [(">=", p.low), ("<", p.next(0 if len(p.parts) == 1 else 1))]


def _hyphen(low: _Partial, high: _Partial) -> list[Comparator]:
    """``1.25 - 1.27``: inclusive at both ends, the upper one a partial (all of 1.27.x)."""
    comparators = [(">=", low.low)] if low.parts else []
    if high.pre:
        comparators.append(("<", high.low))
    elif len(high.parts) == 4:
        comparators.append(("<=", high.low))
    elif high.parts:
        comparators.append(("<", high.next(len(high.parts) - 1)))
    return comparators


def _term(term: str) -> list[Comparator]:
    """One space-separated comparator of a range."""
    match = _TERM.fullmatch(term)
    if match is None:
        if re.fullmatch(r"\^|~>?|[<>]=?|=", term):
            raise ValueError(f"{term!r} has no version after it")
        if re.fullmatch(r"v?\d+(\.\d+){4,}", term):
            raise ValueError(f"{term!r} has more than four parts")
        raise ValueError(f"{term!r} is not a version or a comparator")
    op, version = match["op"] or "", _partial(match["version"])
    if op == "^":
        return _caret(version)
    if op.startswith("~"):
        return _tilde(version)
    if version.disordered:
        raise ValueError(f"{term!r} is not a version: a number follows a wildcard")
    return _primitive(op, version)


def _alternative(text: str) -> list[Comparator]:
    """Comparators that must all hold: a hyphen range, or space-separated terms."""
    text = _BUILD.sub("", text).strip()
    if not text:
        raise ValueError("an alternative between '||' is empty (npm reads it as *: write * for every version)")
    hyphen = _HYPHEN.fullmatch(text)
    if hyphen is not None:
        return _hyphen(_partial(hyphen["low"]), _partial(hyphen["high"]))
    text = _LONE_SPACE.sub(r"\1", _OP_SPACE.sub(r"\1", text))
    return [comparator for term in text.split() for comparator in _term(term)]


def parse_range(text: str) -> list[list[Comparator]]:
    """A range as alternatives of comparator lists; :class:`ValueError` naming what cannot be
    read."""
    if not text.strip():
        raise ValueError("the range is empty (write * for every version)")
    spaced = " ".join(text.replace(",", " ").split())
    try:
        return [_alternative(alternative) for alternative in spaced.split("||")]
    except ValueError as exc:
        raise ValueError(f"cannot read the range {text.strip()!r}: {exc}") from None


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
