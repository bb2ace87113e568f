"""Tags and ranges as npm and Renovate read them, case by case (tests/test_ranges_npm.py and
tests/test_tags_renovate.py compare with the two implementations over grids and tag sets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.automation.rules import parse_rules
from shared.automation.tags import Selection, in_range, parse_range, parse_tag
from shared.errors import ConfigurationError

UBUNTU = [
    line
    for line in (Path(__file__).parent / "fixtures" / "tags" / "ubuntu.txt").read_text().splitlines()
    if line and not line.startswith("#")
]


def selects(text: str, versions: str) -> list[str]:
    alternatives = parse_range(text)
    return [v for v in versions.split() if in_range(parse_tag(v).version, alternatives)]  # type: ignore[union-attr]


def test_leading_zeros_are_read_as_renovate_reads_them() -> None:
    for tag, parts, suffix in [("24.04", (24, 4), ""), ("v22.04-minimal", (22, 4), "minimal"),
                               ("2024.01.15", (2024, 1, 15), ""), ("01.2", (1, 2), "")]:  # fmt: skip
        parsed = parse_tag(tag)
        assert parsed is not None and (parsed.parts, parsed.suffix) == (parts, suffix), tag
    lts_on = ["22.04", "22.10", "23.04", "23.10", "24.04", "24.10", "25.04", "25.10", "26.04", "26.10"]
    assert Selection(versions=">=22.04").select(UBUNTU) == lts_on
    assert Selection(versions="~24.04", floating=True).select(UBUNTU) == ["24.04"]
    # The day 24.04 came out, it was the newest ubuntu.
    assert Selection(newest=1).select(UBUNTU[: UBUNTU.index("24.04") + 1]) == ["24.04"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (">1.2", "1.3.0 1.10.0 2.0.0 2.1.0"),  # >=1.3.0
        ("<=1.2", "1.1.9 1.2.0 1.2.5"),  # <1.3.0
        (">1", "2.0.0 2.1.0"),
        ("<=1", "1.1.9 1.2.0 1.2.5 1.3.0 1.10.0"),
        ("<=2.x", "1.1.9 1.2.0 1.2.5 1.3.0 1.10.0 2.0.0 2.1.0"),
        ("> 1.2", "1.3.0 1.10.0 2.0.0 2.1.0"),
        (">= 1.2.5", "1.2.5 1.3.0 1.10.0 2.0.0 2.1.0"),
        ("<= 1.2.0 || >= 2", "1.1.9 1.2.0 2.0.0 2.1.0"),
        ("~ 1.2", "1.2.0 1.2.5"),
        ("^ 1.2", "1.2.0 1.2.5 1.3.0 1.10.0"),
        (">=1.2.5-rc1 <1.3.0-0", "1.2.5"),
        ("=1.2", "1.2.0 1.2.5"),
        (">=1.2.0+build.5", "1.2.0 1.2.5 1.3.0 1.10.0 2.0.0 2.1.0"),
    ],
)
def test_partial_versions_and_spaces_as_npm_reads_them(text: str, expected: str) -> None:
    assert selects(text, "1.1.9 1.2.0 1.2.5 1.3.0 1.10.0 2.0.0 2.1.0") == expected.split()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (">= ", "'>=' has no version after it"),
        (">= banana", "'>=' has no version after it"),
        (">=banana", "'>=banana' is not a version"),
        ("1.2 - 1.4 >=1", "'-' is not a version or a comparator"),
        ("1.x.3", "a number follows a wildcard"),
        ("1.2.3 ||", "an alternative between '||' is empty"),
        ("*1.2.3", "'*1.2.3' is not a version"),
        ("1.2-rc1", "a prerelease follows three parts"),
        ("1.2.3.4.5", "more than four parts"),
    ],
)
def test_a_range_read_otherwise_is_refused(text: str, error: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_range(text)
    assert error in str(caught.value) and str(caught.value).startswith("cannot read the range")


def test_four_parts_extend_the_partials() -> None:
    assert selects("1.2.3", "1.2.3 1.2.3.4 1.2.4") == ["1.2.3", "1.2.3.4"]  # 1.2.3 is 1.2.3.x
    assert selects(">1.2.3", "1.2.3 1.2.3.4 1.2.4") == ["1.2.4"]
    assert selects("<=1.2.3", "1.2.3 1.2.3.4 1.2.4") == ["1.2.3", "1.2.3.4"]
    assert selects("1.2.3.4", "1.2.3 1.2.3.4 1.2.3.5") == ["1.2.3.4"]
    assert selects(">=1.25, <2", "1.24.9 1.25.0 2.0.0") == ["1.25.0"]


def test_a_rule_with_a_range_it_cannot_read_names_the_field() -> None:
    text = "mirrors: [{name: m, source: nginx, targetRegistry: y.io, versions: '>= 1.2 - 2'}]"
    with pytest.raises(ConfigurationError, match=r"mirrors\[0\] \(m\)\.versions.*'-' is not a version"):
        parse_rules(text, "rules.yaml")
    ok = parse_rules("mirrors: [{name: m, source: nginx, targetRegistry: y.io, versions: '>= 1.2.3'}]", "r.yaml")
    assert ok.mirrors[0].select(["1.2.2", "1.2.3", "1.3.0"]) == ["1.2.3", "1.3.0"]
