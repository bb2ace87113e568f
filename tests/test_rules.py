"""The rules file: validation naming the rule and field, templates, tag selection with semver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.automation.rules import Mirror, parse_rules
from shared.automation.tags import in_range, parse_range, parse_tag
from shared.errors import ConfigurationError
from tests.harness.registry import free_port

ROOT = Path(__file__).resolve().parent.parent

GOOD = """
promotions:
  - name: web-to-prod
    sourceRegistry: devacr.azurecr.io
    repository: "team/*"
    tag: 'v\\d+\\.\\d+\\.\\d+'
    targetRegistry: prodacr
    targetRepository: "prod/{repository}"
    targetTags: ["{tag}", "stable"]
    mode: Force
mirrors:
  - name: nginx
    source: docker.io/library/nginx
    semver: ">=1.25 <2"
    newest: 2
    targetRegistry: prodacr
    targetRepository: "mirror/{repository}"
    mode: Force
"""


def test_good_rules_yaml_and_json() -> None:
    rules = parse_rules(GOOD)
    assert rules.promotions[0].matches("devacr.azurecr.io", "team/web", "v1.2.3")
    assert not rules.promotions[0].matches("devacr.azurecr.io", "team/web", "latest")
    assert not rules.promotions[0].matches("other.azurecr.io", "team/web", "v1.2.3")
    assert not rules.promotions[0].matches("devacr.azurecr.io", "other/web", "v1.2.3")
    assert (
        rules.mirrors[0].source == "docker.io/library/nginx" and rules.mirrors[0].targetRegistry == "prodacr.azurecr.io"
    )
    assert parse_rules(json.dumps(rules.model_dump())) == rules


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("promotions: [{name: a, sourceRegistry: x.io, targetRegistry: y.io, tag: '('}]", "promotions[0] (a).tag"),
        (
            "promotions: [{name: a, sourceRegistry: x.io, targetRegistry: abc}]",
            "promotions[0] (a).targetRegistry: invalid",
        ),
        (
            "promotions: [{name: a, sourceRegistry: x.io, targetRegistry: y.io, targetTags: ['{nope}']}]",
            "promotions[0] (a).targetTags: unknown template field",
        ),
        (
            "promotions: [{name: a, sourceRegistry: x.io, targetRegistry: y.io, targetRepository: 'Up/{repository}'}]",
            "promotions[0] (a).targetRepository",
        ),
        (
            "mirrors: [{name: m, source: 'docker.io/library/nginx:1', targetRegistry: y.io, tags: ['1']}]",
            "mirrors[0] (m).source: a mirror's source is a repository",
        ),
        (
            "mirrors: [{name: m, source: docker.io/library/nginx, targetRegistry: y.io}]",
            "mirrors[0] (m): say which tags",
        ),
        ("mirrors: [{name: m, source: nginx, targetRegistry: y.io, semver: 'soon'}]", "mirrors[0] (m).semver"),
        (
            "mirrors: [{name: m, source: nginx, targetRegistry: y.io, tags: [x], colour: red}]",
            "mirrors[0] (m).colour: unknown field; known fields here: name,",
        ),
        (
            "mirrors: [{name: m, source: nginx, targetRegistry: y.io, tags: [x]}, {name: m, source: n, targetRegistry: y.io, tags: [x]}]",
            "rule names must be unique",
        ),
        ("promotions: {}", "promotions: Input should be a valid list"),
        ("promotions: [ {", "not valid YAML: line 1, column 16:"),
        ('{"promotions": [],}', "not valid JSON: line 1, column 19:"),
        (
            "promotions: [{name: a, sourceRegistry: x.io, targetRegistry: y.io, targetTag: ['{tag}']}]",
            "promotions[0] (a).targetTag: unknown field; did you mean 'targetTags'?",
        ),
        (
            "mirrors: [{name: m, source: nginx, targetRegistry: y.io, tags: [x], Semver: '^1'}]",
            "mirrors[0] (m).Semver: unknown field; did you mean 'semver'?",
        ),
    ],
)
def test_bad_rules_name_rule_and_field(text: str, where: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_rules(text, "rules.yaml")
    assert where in str(caught.value) and str(caught.value).startswith("rules.yaml: ")


def test_docker_tags_as_versions() -> None:
    for tag, parts, suffix in [("1.27.3", (1, 27, 3), ""), ("v2", (2,), ""), ("1.27-bookworm", (1, 27), "bookworm"),
                               ("3.13.1-alpine3.21", (3, 13, 1), "alpine3.21"), ("1.28.0-rc1", (1, 28, 0), "rc1")]:  # fmt: skip
        parsed = parse_tag(tag)
        assert parsed is not None and (parsed.parts, parsed.suffix) == (parts, suffix), tag
    for tag in ("latest", "mainline", "stable-alpine-slim", "3.14.0a3", "1.2.3.4.5", "1.2.3-"):
        assert parse_tag(tag) is None, tag
    rng = parse_range(">=1.25 <2 || 3.1")
    assert in_range((1, 25, 0, 0), rng) and in_range((1, 99, 9, 0), rng) and in_range((3, 1, 5, 0), rng)
    assert not in_range((2, 0, 0, 0), rng) and not in_range((1, 24, 9, 0), rng) and not in_range((3, 2, 0, 0), rng)
    with pytest.raises(ValueError, match="not a version"):
        parse_range(">=banana")


NGINX = [
    "1.25.4", "1.25.5", "1.26", "1.26.2", "1.26.2-alpine", "1.27", "1.27.3", "1.27.3-alpine", "1.27.3-perl",
    "1.27-bookworm", "1.27.10", "v1.27.4", "1.28.0-rc1", "mainline", "stable", "stable-alpine-slim", "latest", "2.0.0",
]  # fmt: skip
PYTHON = [
    "3.12", "3.12.7", "3.12.8", "3.12.7-slim-bookworm", "3.12.8-slim-bookworm", "3.12-slim-bookworm", "3.13.1",
    "3.13.1-alpine3.21", "3.14.0a3",
]  # fmt: skip


@pytest.mark.parametrize(
    ("tags", "selection", "expected"),
    [
        (NGINX, {"versions": ">=1.25 <2"}, "1.25.4 1.25.5 1.26.2 1.27.3 v1.27.4 1.27.10"),
        (NGINX, {"versions": ">=1.25 <2", "floating": True}, "1.25.4 1.25.5 1.26 1.26.2 1.27 1.27.3 v1.27.4 1.27.10"),
        (NGINX, {"versions": "^1.27", "suffix": "alpine"}, "1.27.3-alpine"),
        (NGINX, {"versions": "~1.26", "suffix": "alpine"}, "1.26.2-alpine"),
        (NGINX, {"versions": ">=1.25 <2", "newest": 2}, "v1.27.4 1.27.10"),
        (NGINX, {"semver": ">=1.25, <2", "newest": 2}, "v1.27.4 1.27.10"),  # semver: is an alias
        (NGINX, {"versions": "1.25 - 1.26"}, "1.25.4 1.25.5 1.26.2"),
        # Each suffix on its own: 1.27-bookworm is the most precise tag of its suffix.
        (NGINX, {"versions": "1.27.x", "suffix": "*"}, "1.27-bookworm 1.27.3 1.27.3-alpine 1.27.3-perl v1.27.4 1.27.10"),
        (NGINX, {"tagRegex": ".*-alpine", "newest": 1}, "1.27.3-alpine"),
        (PYTHON, {"versions": ">=3.12 <3.14", "suffix": "slim-bookworm", "newest": 2},
         "3.12.7-slim-bookworm 3.12.8-slim-bookworm"),
        (PYTHON, {"versions": "^3.13", "suffix": "alpine*"}, "3.13.1-alpine3.21"),
        (["20240115", "20240220", "latest"], {"extract": r"^(?P<version>\d{8})$", "order": "numerical", "newest": 1},
         "20240220"),
    ],
)  # fmt: skip
def test_the_tags_people_use(tags: list[str], selection: dict[str, object], expected: str) -> None:
    mirror = Mirror.model_validate({"name": "m", "source": "nginx", "targetRegistry": "y.io", **selection})
    assert mirror.select(tags) == expected.split()


TAGS = ["1.24.0", "1.25.3", "1.26.0", "1.27.1", "1.27.2", "2.0.0", "latest", "1.27.2-alpine", "mainline"]


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ({"tags": ["latest", "missing"]}, ["latest"]),
        ({"tagRegex": "1\\.27\\..*"}, ["1.27.1", "1.27.2", "1.27.2-alpine"]),
        ({"semver": ">=1.25 <2"}, ["1.25.3", "1.26.0", "1.27.1", "1.27.2"]),
        ({"semver": ">=1.25 <2", "newest": 2}, ["1.27.1", "1.27.2"]),
        ({"newest": 1}, ["2.0.0"]),
        ({"tags": ["latest"], "newest": 1}, ["latest", "2.0.0"]),
    ],
)
def test_tag_selection(selection: dict[str, object], expected: list[str]) -> None:
    mirror = Mirror.model_validate({"name": "m", "source": "nginx", "targetRegistry": "y.io", **selection})
    assert mirror.select(TAGS) == expected


@pytest.mark.process
def test_rules_check_cli(tmp_path: object) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    ok = subprocess.run(
        [sys.executable, "-m", "shared.cli", "rules", "check", str(root / "rules.example.yaml")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert (
        "promotion team-to-prod" in ok.stdout
        and "mirror nginx" in ok.stdout
        and "1 promotions, 1 mirrors: valid" in ok.stdout
    )
    bad = Path(str(tmp_path)) / "bad.yaml"
    bad.write_text("mirrors: [{name: m, source: nginx, targetRegistry: abc, tags: [x]}]")
    failed = subprocess.run(
        [sys.executable, "-m", "shared.cli", "rules", "check", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert failed.returncode == 2 and "mirrors[0] (m).targetRegistry" in failed.stderr


def _ferry(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FERRY_RULES_FILE", None)
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args], capture_output=True, text=True, env=env, check=False
    )


@pytest.mark.process
def test_rules_check_prints_each_problem_on_its_own_line(tmp_path: Path) -> None:
    """Every problem on a line of its own, YAML errors with their line and column, exit 2."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("promotions:\n  - name: a\n    sourceRegistry: x.io\n    targetRegistry: abc\n    mode: force\n")
    failed = _ferry("rules", "check", str(bad))
    assert failed.returncode == 2, failed.stderr
    lines = failed.stderr.splitlines()
    assert lines[0] == f"ferry rules: {bad}:" and len(lines) == 3, failed.stderr
    assert lines[1].startswith("  promotions[0] (a).targetRegistry: ")
    assert lines[2] == "  promotions[0] (a).mode: Input should be 'NoForce' or 'Force'"
    broken = tmp_path / "broken.yaml"
    broken.write_text("promotions:\n  - name: a\n    tag: [\n  b: c\n")
    failed = _ferry("rules", "check", str(broken))
    assert failed.returncode == 2 and "\\x0a" not in failed.stderr
    assert "  not valid YAML: line 5, column 1: expected ',' or ']'" in failed.stderr


@pytest.mark.process
def test_rules_plan_fails_when_a_source_cannot_be_listed(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there: the mirror's tags cannot be listed
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"mirrors: [{{name: m, source: '127.0.0.1:{closed}/team/web', targetRegistry: y.io, tags: [x]}}]")
    planned = _ferry("rules", "plan", str(rules))
    assert planned.returncode == 1, planned.stderr
    assert json.loads(planned.stdout)["mirrors"][0]["error"]["code"]
    assert "ferry rules plan: mirror m: could not list the tags of" in planned.stderr


@pytest.mark.process
def test_rules_match_says_why_each_promotion_matches_or_not(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "promotions:\n"
        "  - {name: releases, sourceRegistry: '127.0.0.1:5101', repository: 'team/*', tag: 'v.*', targetRegistry: y.io}\n"
        "  - {name: other-registry, sourceRegistry: dev.example.com, targetRegistry: y.io}\n"
        "  - {name: apps, sourceRegistry: '127.0.0.1:5101', repository: 'apps/*', targetRegistry: y.io}\n"
        "  - {name: all, sourceRegistry: '127.0.0.1:5101', targetRegistry: y.io}\n"
    )
    found = _ferry("rules", "match", "--rules", str(rules), "127.0.0.1:5101/team/web:1.0")
    assert found.returncode == 0, found.stderr
    assert found.stdout.splitlines()[1:] == [
        "  no    rule releases: tag 1.0 does not match /v.*/",
        "  no    rule other-registry: registry 127.0.0.1:5101 is not sourceRegistry dev.example.com",
        "  no    rule apps: repository team/web does not match 'apps/*'",
        "  MATCH rule all: matches registry 127.0.0.1:5101, repository '*', tag /.*/",
        "1 of 4 promotions match",
    ]
    rules.write_text(
        "promotions: [{name: releases, sourceRegistry: '127.0.0.1:5101', tag: 'v.*', targetRegistry: y.io}]"
    )
    none = _ferry("rules", "match", "--rules", str(rules), "127.0.0.1:5101/team/web:1.0")
    assert none.returncode == 1 and "0 of 1 promotions match" in none.stdout
    assert _ferry("rules", "match", "--rules", str(rules), "127.0.0.1:5101/team/web").returncode == 2


def test_promotion_explains_the_version_range_and_suffix() -> None:
    rule = parse_rules(
        "promotions: [{name: p, sourceRegistry: dev.io, targetRegistry: prod.io, versions: '^1.27', suffix: alpine}]"
    ).promotions[0]
    assert rule.explain("dev.io", "web", "latest").why == "tag latest is not a version (versions/suffix need one)"
    assert rule.explain("dev.io", "web", "1.27.3").why == "tag 1.27.3's suffix '' does not match suffix 'alpine'"
    assert rule.explain("dev.io", "web", "2.0.0-alpine").why == "tag 2.0.0-alpine's version is not in versions ^1.27"
    matched = rule.explain("dev.io", "web", "1.27.3-alpine")
    assert matched.matched and "versions ^1.27" in matched.why and "suffix 'alpine'" in matched.why


def test_promotions_may_use_the_tag_model() -> None:
    rules = parse_rules(
        "promotions: [{name: p, sourceRegistry: dev.io, targetRegistry: prod.io, versions: '^1.27', suffix: alpine}]",
        "rules.yaml",
    )
    rule = rules.promotions[0]
    assert rule.matches("dev.io", "web", "1.27.3-alpine") and rule.matches("dev.io", "web", "1.28.0-alpine")
    assert not rule.matches("dev.io", "web", "1.27.3") and not rule.matches("dev.io", "web", "2.0.0-alpine")
    assert not rule.matches("dev.io", "web", "latest")


def test_a_rules_edit_is_read_live_and_a_bad_one_keeps_the_last_good_rules(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from shared.automation.live import LiveRules

    path = tmp_path / "rules.yaml"
    path.write_text("promotions: [{name: a, sourceRegistry: dev.io, targetRegistry: prod.io}]")
    live = LiveRules.load(path)
    assert live.describe()["promotions"] == 1 and "error" not in live.describe()
    path.write_text(
        "promotions: [{name: a, sourceRegistry: dev.io, targetRegistry: prod.io},"
        " {name: b, sourceRegistry: dev.io, targetRegistry: prod.io}]"
    )
    assert [r.name for r in live.current().promotions] == ["a", "b"]  # a good edit: read at once
    path.write_text("promotions: [{name: a, sourceRegistry: dev.io, targetRegistry: prod.io, mode: force}]")
    with caplog.at_level("ERROR", logger="shared.automation.live"):
        for _ in range(3):
            assert [r.name for r in live.current().promotions] == ["a", "b"]  # the last good rules
        state = live.describe()
    assert len(caplog.records) == 1, caplog.text  # logged once, not per event
    assert "promotions[0] (a).mode: Input should be 'NoForce' or 'Force'" in caplog.text
    assert state["promotions"] == 2 and str(path) in state["error"] and "still in force" in state["error"]
    path.write_text("mirrors: [{name: m, source: nginx, targetRegistry: prod.io, tags: ['1']}]")
    assert live.current().mirrors[0].name == "m" and "error" not in live.describe()


def test_a_bad_rules_file_stops_the_start(tmp_path: Path) -> None:
    from shared.automation.live import LiveRules

    path = tmp_path / "rules.yaml"
    path.write_text("promotions: [{name: a, sourceRegistry: dev.io, targetRegistry: prod.io, mode: force}]")
    with pytest.raises(ConfigurationError, match=r"rules.yaml: promotions\[0\] \(a\).mode: Input should be"):
        LiveRules.load(path)
    with pytest.raises(ConfigurationError, match="No such file"):
        LiveRules.load(tmp_path / "missing.yaml")
