"""The documents match the code: every setting the code reads is in the README's settings table
and local.settings.example.json (and nothing else is), and every repository path the README and
docs/ name exists."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Read by the CLI only (a terminal's own credentials and options), not app settings.
CLI_ONLY = {
    "FERRY_SOURCE_USERNAME", "FERRY_SOURCE_PASSWORD", "FERRY_TARGET_USERNAME", "FERRY_TARGET_PASSWORD",
    "FERRY_SERVICE_URL", "FERRY_FUNCTION_KEY", "FERRY_SERVICE_SCOPE",
}  # fmt: skip
#: The named credentials' pattern: FERRY_CREDENTIAL_<NAME>_USERNAME / _PASSWORD.
NAMED = re.compile(r"FERRY_CREDENTIAL_[A-Z0-9]+_(USERNAME|PASSWORD)")


#: Strings that look like settings and are not (an error code).
NOT_SETTINGS = {"FERRY_ERROR", "FERRY_CREDENTIAL"}


def _code_settings() -> set[str]:
    """Every FERRY_ name the code reads: string literals, and the Functions bindings' ``%NAME%``."""
    text = "\n".join(p.read_text() for d in ("shared", "functions") for p in (ROOT / d).rglob("*.py"))
    found = set(re.findall(r"[\"'](FERRY_[A-Z0-9_]+)[\"']", text)) | set(re.findall(r"%(FERRY_[A-Z0-9_]+)%", text))
    return {name for name in found if not name.endswith("_") and name not in NOT_SETTINGS}


def _readme_settings() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Settings") :]
    table = table[: table.index("\n## ", 5)]
    names = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`(FERRY_[A-Z0-9_<>]+)`", line.split("|")[1]))
    return {n for n in names if "<" not in n}


def test_every_setting_the_code_reads_is_documented_and_nothing_else() -> None:
    code, readme = _code_settings(), _readme_settings()
    assert code - readme == set(), "read by the code, missing from the README's settings table"
    assert readme - code == set(), "in the README's settings table, read by nothing"
    example = {
        k for k in json.loads((ROOT / "local.settings.example.json").read_text())["Values"] if k.startswith("FERRY_")
    }
    example = {k for k in example if not NAMED.fullmatch(k)}
    assert code - CLI_ONLY - example == set(), "read by the code, missing from local.settings.example.json"
    assert example - code == set(), "in local.settings.example.json, read by nothing"


#: Files the documents tell a user to make (git-ignored): they need not exist in a clone.
MADE_BY_THE_USER = {"local.settings.json", "infra/main.parameters.json", "rules.yaml"}
_PATH = re.compile(
    r"`((?:shared|functions|tests|bench|infra|scripts|docs)/[A-Za-z0-9_./-]+|[A-Za-z0-9_.-]+\.(?:json|toml|txt|yaml|bicep|md))`"
)
_LINK = re.compile(r"\]\(([^)#:]+)(?:#[^)]*)?\)")


def test_every_path_the_documents_name_exists() -> None:
    missing = []
    for doc in DOCS:
        text = doc.read_text()
        for path in {*_PATH.findall(text), *_LINK.findall(text)}:
            if "<" in path or "*" in path or path in MADE_BY_THE_USER:
                continue
            base = doc.parent if path.startswith(".") else ROOT
            if not (base / path.rstrip("/")).exists():
                missing.append(f"{doc.relative_to(ROOT)}: {path}")
    assert missing == []


def test_every_setting_is_declared_once_and_the_documents_follow_the_declarations() -> None:
    from shared.environment import SETTINGS

    declared = [s.name for s in SETTINGS]
    assert len(declared) == len(set(declared)), "a setting declared twice"
    ferry = {n for n in declared if n.startswith("FERRY_")}
    assert ferry == _code_settings(), (
        "the code reads a setting shared/environment.py does not declare, or none reads one"
    )
    assert ferry == _readme_settings(), "the README's settings table and the declarations differ"
    example = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    assert {s.name for s in SETTINGS if s.reader == "app" and s.name.startswith("FERRY_")} <= set(example)
    for s in SETTINGS:
        if isinstance(s.default, int | float) and s.name in example:
            assert float(example[s.name]) == float(s.default), f"{s.name}: the example's value is not the default"


def _outside(setting: Any) -> list[str]:
    """Values just outside a number setting's declared bounds (0 means "no limit" for the blob cap)."""
    values = []
    if setting.high is not None:
        values.append(str(int(setting.high) + 1 if isinstance(setting.default, int) else setting.high * 2))
    if setting.low is not None and setting.name != "FERRY_MAX_PUBLIC_BLOB_BYTES":
        step = 1 if isinstance(setting.default, int) or setting.low == 0 else setting.low / 2
        below = setting.low if setting.above else setting.low - step
        values.append(str(int(below) if isinstance(setting.default, int) else below))
    return values


def test_a_value_outside_a_declared_bound_is_refused_naming_the_setting() -> None:
    from shared.environment import SETTINGS
    from shared.errors import ConfigurationError
    from shared.settings import Settings

    checked = 0
    for setting in SETTINGS:
        if setting.reader != "app" or not isinstance(setting.default, int | float):
            continue
        for value in _outside(setting):
            with pytest.raises(ConfigurationError, match=setting.name):
                Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true", setting.name: value})
            checked += 1
    assert checked >= 20
