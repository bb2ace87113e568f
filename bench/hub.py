"""Import jobs from a fake Docker Hub with a pull limit, run by worker processes that share one
pull budget (#26): pulls used, requests the limit refused (target 0), jobs that waited, and the
time taken against the ideal (the windows the pulls need at the budget's rate). Default: 500 jobs,
4 workers, 50 pulls per 20 s window, 5 kept in reserve (the window is short so that the run
takes minutes, and long enough that the budget, not the workers, sets the pace).
Prints a JSON document.

    PYTHONPATH=. .venv/bin/python -m bench.hub [--jobs 500] [--workers 4] [--limit 50] [--window 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tests.harness.azurite import Azurite
from tests.harness.hubload import HubLoad, run
from tests.harness.registry import open_registry


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--reserve", type=int, default=5)
    args = parser.parse_args()
    load = HubLoad(args.jobs, args.workers, args.limit, args.window, args.reserve)
    with tempfile.TemporaryDirectory(prefix="ferry-hub-") as tmp:
        work = Path(tmp)
        azurite = Azurite(work / "azurite").start()
        source, target = open_registry(work, "source"), open_registry(work, "target")
        try:
            figures = run(load, azurite, source, target, work)
        finally:
            source.stop()
            target.stop()
            azurite.stop()
    figures.pop("example", None)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
