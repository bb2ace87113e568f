"""The API's documentation as a person opens it: ``/api/docs`` (Swagger UI) with its scripts and
styles served by the app itself from a pinned package (``fastapi-offline``'s copy of Swagger UI
5), so the page works offline and behind a proxy; ``/`` leads to it."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response

ASSETS = "/api/docs/assets"
#: The files the page needs, and their types: nothing else is served from the package.
_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}


def add_docs_routes(app: FastAPI, openapi_url: str) -> None:
    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/api/docs", status_code=307)

    @app.get("/api/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )

    @app.get(ASSETS + "/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in _FILES:
            raise HTTPException(status_code=404, detail=f"no asset {name!r}")
        data = (resources.files("fastapi_offline") / "static" / name).read_bytes()
        return Response(data, media_type=_FILES[name], headers={"Cache-Control": "public, max-age=86400"})
