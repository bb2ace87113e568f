"""Dependencies point down (docs/architecture.md "Layers"): import-linter's contracts from pyproject.toml,
and an AST check for the two rules that matter most, which also sees imports inside functions."""

from __future__ import annotations

import ast
import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PURE = ("shared/oci", "shared/content", "shared/engine")


@functools.cache
def parsed(path: Path) -> ast.Module:
    """A module's tree, parsed once for the tests that read them all (parsing is most of their time)."""
    return ast.parse(path.read_text())


def imported_modules(source: str | ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source) if isinstance(source, str) else source):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def violations(path: str, source: str | ast.Module) -> list[str]:
    found = []
    for name in sorted(imported_modules(source)):
        top = name.split(".")[0]
        if name == "azure.functions" or name.startswith("azure.functions."):
            found.append(f"{path} imports {name}: nothing under shared/ may know the Functions host")
        elif path.startswith(PURE) and top in ("azure", "httpx"):
            found.append(f"{path} imports {name}: values, storage protocols and the engine do no I/O of their own")
    return found


def test_ast_rules_hold() -> None:
    problems = []
    for file in sorted((ROOT / "shared").rglob("*.py")):
        rel = file.relative_to(ROOT).as_posix()
        problems += violations(rel, parsed(file))
    assert problems == []


@pytest.mark.parametrize(
    ("path", "source", "bad"),
    [
        ("shared/service/x.py", "import azure.functions as func", True),
        ("shared/service/x.py", "from azure.functions import HttpRequest", True),
        ("shared/service/x.py", "from azure import functions", True),
        ("shared/engine/x.py", "def f():\n    import httpx", True),
        ("shared/oci/x.py", "from azure.core import credentials", True),
        ("shared/registry/x.py", "import httpx", False),
        ("shared/engine/x.py", "from shared.oci import Digest", False),
    ],
)
def test_ast_rules_catch_violations(path: str, source: str, bad: bool) -> None:
    assert bool(violations(path, source)) is bad


@pytest.mark.process
def test_import_linter_contracts() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and " 0 broken" in result.stdout


def test_no_function_over_40_lines_and_no_module_over_400() -> None:
    """The size habit of docs/architecture.md, kept by a test: split by phase when longer."""
    too_long = []
    for path in [*(ROOT / "shared").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]:
        source = path.read_text()
        if len(source.splitlines()) > 400:
            too_long.append(f"{path.relative_to(ROOT)}: {len(source.splitlines())} lines")
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > 40:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines} lines")
    assert too_long == []


def test_the_modules_make_check_skips_start_a_process_in_every_test() -> None:
    """make check does not import these modules at all; that is only right while every test in
    them is marked ``process``."""
    line = next(x for x in (ROOT / "Makefile").read_text().splitlines() if x.startswith("WHOLLY_PROCESS"))
    for name in line.split(":=", 1)[1].split():
        source = (ROOT / "tests" / f"{name}.py").read_text()
        assert "pytestmark = pytest.mark.process" in source, name
