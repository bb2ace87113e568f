"""Figures a test measures for `make reliability` (bench/RELIABILITY.md): each scenario's line is
appended to the file named by FERRY_RELIABILITY_OUT; without it (plain `make test`), nothing."""

from __future__ import annotations

import json
import os


def record(scenario: str, figures: dict[str, object]) -> None:
    """Appends the scenario's figures and the test that reproduces it (pytest's node id)."""
    out = os.environ.get("FERRY_RELIABILITY_OUT")
    if out:
        test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
        with open(out, "a") as f:
            f.write(json.dumps({"scenario": scenario, **figures, "test": test}) + "\n")
