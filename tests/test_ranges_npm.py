"""Ranges read as npm reads them: every range of a generated grid that npm's ``semver`` (the
pinned devDependency) accepts selects exactly the versions ``semver.satisfies`` selects, on
three-part versions, and every range it refuses Ferry refuses too, but for Ferry's documented
extensions (leading zeros, commas), which select what npm selects for the range written without
them. One ``node`` call answers the whole grid."""

from __future__ import annotations

import itertools
import random

import pytest

from shared.automation.tags import in_range, parse_range, parse_tag
from tests.harness.node import run_node

pytestmark = pytest.mark.process

VERSIONS = [f"{a}.{b}.{c}" for a, b, c in itertools.product(range(4), repeat=3)] + [
    "0.0.10", "1.2.10", "1.10.0", "3.0.1", "10.0.0", "22.4.0", "22.10.0", "24.4.0", "26.10.0",
]  # fmt: skip
PARTIALS = [
    "0", "1", "2", "3", "0.0", "0.1", "1.0", "1.2", "0.0.0", "0.0.1", "0.1.0", "0.1.2", "1.0.0", "1.2.3", "2.0.0",
    "1.x", "2.x", "1.2.x", "0.x", "0.0.x", "x", "*", "X.X.X", "1.*", "v1.2", "=1.2", "v1.2.3", "1.2.3-rc1", "0.0.1-0",
    "1.2.3-beta.2", "1.2.x-rc1", "1.x.3", "x.1", "22.4", "1.2+build",
]  # fmt: skip
OPERATORS = ["", "=", ">", ">=", "<", "<=", "^", "~", "~>"]
ODD = [
    "", " ", "1.2.3 ||", "|| 1", "*1.2.3", "~ >1.2", "> =1.2", "==1.2", "==1.2.3", ">=1.2.3+build.1 <2",
    "1.2 - 1.4 >=1", "1.2 -1.4", "1.2- 1.4", ">=", ">= ", "^", ">=banana", "latest", "1.2.3.4.5", "1.2-rc1",
    "^1.2.3 ^2", "< 1.2 || > 2", ">=1 <1", "^0.0.3-beta", "1 - 2.x-rc1", ">=1.2.3-0", "<1.2.3-0", " >= 1.2.3 ",
    ">=\t1.2.3", ">= v1.2.3", ">=v 1.2.3", "^ 1.2", "~> 1.2", "~ 1.2.3", "1.2.3 - 2.3.4", "* - 2", "1 - *",
    "1.2.3-rc1 - 2.0.0-rc1", "v1.2 - =2", "1.2 - 1.4 || >=3", "x || 1", "<0.0.0-0 || 1", "<x", ">*", ">=*",
    "1.2.3 1.2.4", ">=1.2.3 <=1.2.3", "~1.2.3 || ^0.1", "1.x.x", "1.X", "1.2.x.x", "a.b.c", "1.2.3 -", "- 1.2.3",
    ">=1.2.3 - 2", "1.2.3 - 2 - 3", "~=1.2", "=v1.2.3", "v=1.2", ">=1.2 <1.1", "^v1.2", "~v1.2.3",
]  # fmt: skip
#: Ranges npm reads that Ferry refuses on purpose, each with a clear error: an empty range or an
#: empty alternative (npm reads both as *, which would mirror every tag), and a star stuck to a
#: version (npm drops the star: *1.2.3 is 1.2.3).
REFUSED = {"", " ", "1.2.3 ||", "|| 1", "*1.2.3"}
#: Ferry's extensions npm refuses (leading zeros, commas, a fourth part, ``==``), each with the
#: range npm reads as Ferry reads it.
EXTENDED = {
    ">=22.04": ">=22.4", "^01.2": "^1.2", "~22.04.1": "~22.4.1", "<=024.04": "<=24.4", ">=1.25, <2": ">=1.25 <2",
    "1.2,1.3": "1.2 1.3", "1.2.x.x": "1.2.x", ">1.2.3.x": ">1.2.3", "==1.2.3": "=1.2.3",
}  # fmt: skip

SEMVER = """
const semver = require("semver");
let input = "";
process.stdin.on("data", (c) => (input += c)).on("end", () => {
  const { ranges, versions } = JSON.parse(input);
  const answer = ranges.map((r) => semver.validRange(r) === null ? null
    : versions.map((v) => semver.satisfies(v, r)));
  process.stdout.write(JSON.stringify(answer));
});
"""


def grid() -> list[str]:
    """Every operator on every partial, with and without a space after it; ands, ors and hyphen
    ranges of them; random mixes; the odd ones."""
    singles = [op + space + partial for op in OPERATORS for space in ("", " ") for partial in PARTIALS]
    pick = random.Random(20)
    ands = [
        f"{a} {b}"
        for a in (">=1", ">1.2", ">=1.2.3", ">0.1", "^1.1", ">0")
        for b in ("<2", "<=1.2", "<1.3.0", "<=2.x", "<=1", "<=0.1")
    ]
    ors = [f"{pick.choice(singles)} || {pick.choice(singles)}" for _ in range(150)]
    ends = ["1", "1.2", "1.2.3", "0.1.x", "x", "1.2.3-rc1", "v1.2", "0", "2.x"]
    hyphens = [f"{a} - {b}" for a in ends for b in ends]
    return singles + ands + ors + hyphens + mixed(pick) + ODD + list(EXTENDED) + list(EXTENDED.values())


def mixed(pick: random.Random) -> list[str]:
    """Random ranges: one or two alternatives of one to three terms, operators spaced or not."""

    def term() -> str:
        return pick.choice(OPERATORS) + pick.choice(("", "", " ")) + pick.choice(PARTIALS)

    def alternative() -> str:
        return pick.choice((" ", "  ", "\t")).join(term() for _ in range(pick.randint(1, 3)))

    return [pick.choice(("||", " || ")).join(alternative() for _ in range(pick.randint(1, 2))) for _ in range(400)]


def ferry(text: str) -> list[bool] | None:
    try:
        alternatives = parse_range(text)
    except ValueError:
        return None
    return [in_range(parse_tag(v).version, alternatives) for v in VERSIONS]  # type: ignore[union-attr]


def expected(text: str, answers: dict[str, list[bool] | None]) -> list[bool] | None:
    """What Ferry must select: what npm selects (for an extension, from the range written as npm
    reads it), or None (refused) where npm refuses and for the ranges refused on purpose."""
    if text in EXTENDED:
        assert answers[EXTENDED[text]] is not None, text
        return answers[EXTENDED[text]]
    return None if text in REFUSED else answers[text]


def shown(answer: list[bool] | None) -> object:
    return "refused" if answer is None else [v for v, ok in zip(VERSIONS, answer, strict=True) if ok]


def test_every_range_npm_reads_selects_what_semver_satisfies_selects() -> None:
    ranges = grid()
    npm = run_node(SEMVER, {"ranges": ranges, "versions": VERSIONS})
    assert isinstance(npm, list) and len(npm) == len(ranges) > 900
    answers = dict(zip(ranges, npm, strict=True))
    assert sum(answer is None for answer in answers.values()) > 50  # the grid has refused ones too
    wrong = [
        f"{text!r}: Ferry {shown(found)}, npm {shown(wanted)}"
        for text in answers
        if (found := ferry(text)) != (wanted := expected(text, answers))
    ]
    assert not wrong, f"{len(wrong)} of {len(answers)} ranges differ:\n" + "\n".join(wrong[:40])


def test_the_grid_has_the_cases_the_issue_names() -> None:
    ranges = set(grid())
    named = {">=22.04", ">1.2", "<=1.2", ">1", "<=1", "<=2.x", ">= 1.2.3", "> 1.2", "<= 1.2"}
    assert named <= ranges, named - ranges
