"""`make openapi`: write the HTTP API's OpenAPI document to openapi.json (checked in; a test
fails when the API and the file differ)."""

from __future__ import annotations

import json
from pathlib import Path

from functions.http import create_app


def main() -> None:
    path = Path(__file__).resolve().parent.parent / "openapi.json"
    path.write_text(json.dumps(create_app().openapi(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
