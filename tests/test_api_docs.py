"""/api/docs works offline: Swagger UI's files come from the app (a pinned package), not a CDN;
``/`` leads to the docs."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from functions.http import create_app


def test_the_docs_page_needs_nothing_from_outside() -> None:
    client = TestClient(create_app())
    home = client.get("/", follow_redirects=False)
    assert home.status_code == 307 and home.headers["location"] == "/api/docs"
    page = client.get("/api/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    urls = set(re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", page.text))
    assert urls and all(u.startswith("/api/") for u in urls), urls  # no CDN: every file is the app's own
    for url in urls - {"/api/openapi.json"}:
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000, url
    assert "SwaggerUIBundle" in client.get("/api/docs/assets/swagger-ui-bundle.js").text
    assert client.get("/api/docs/assets/..%2Fcore.py").status_code == 404
    assert client.get("/api/openapi.json").json()["info"]["title"] == "Ferry"
