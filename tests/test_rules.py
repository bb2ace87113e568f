"""The rules file: validation naming the rule and field, templates, tag selection with semver."""

from __future__ import annotations

import json

import pytest

from shared.automation.rules import Mirror, parse_rules
from shared.automation.tags import in_range, parse_range, parse_tag
from shared.errors import ConfigurationError

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
            "mirrors[0] (m).colour: Extra",
        ),
        (
            "mirrors: [{name: m, source: nginx, targetRegistry: y.io, tags: [x]}, {name: m, source: n, targetRegistry: y.io, tags: [x]}]",
            "rule names must be unique",
        ),
        ("promotions: {}", "promotions: Input should be a valid list"),
        ("promotions: [ {", "not valid YAML or JSON"),
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


def test_promotions_may_use_the_tag_model() -> None:
    rules = parse_rules(
        "promotions: [{name: p, sourceRegistry: dev.io, targetRegistry: prod.io, versions: '^1.27', suffix: alpine}]",
        "rules.yaml",
    )
    rule = rules.promotions[0]
    assert rule.matches("dev.io", "web", "1.27.3-alpine") and rule.matches("dev.io", "web", "1.28.0-alpine")
    assert not rule.matches("dev.io", "web", "1.27.3") and not rule.matches("dev.io", "web", "2.0.0-alpine")
    assert not rule.matches("dev.io", "web", "latest")
