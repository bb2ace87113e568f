"""The documents match the code: every setting the code reads is in the README's settings table
and local.settings.example.json (and nothing else is), and every repository path the README and
docs/ name exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

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
