"""The API's documentation page (``/docs``: Swagger UI) served offline.

FastAPI's own page loads Swagger UI from a CDN and starts it with an inline script, so offline it is
blank and under the dashboard's Content-Security-Policy it could not run. Here the assets come from
the ``fastapi-offline`` package (Swagger UI's bundle, installed with the service) and the page is a
template whose only script of ours is a file that reads the schema's URL from a ``data-*``
attribute: the same CSP as every dashboard page. (ReDoc is not offered: it needs inline styles, blob
workers and a logo from its CDN, which that CSP refuses.)
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/static/apidocs"
router = APIRouter(include_in_schema=False)


def assets_dir() -> Path:
    """Where the installed ``fastapi-offline`` package keeps Swagger UI's files."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> Response:
    """Swagger UI over the app's OpenAPI schema ("try it out" included)."""
    from .pages import page

    app = request.app
    context = {
        "openapi_url": app.openapi_url,
        "assets": ASSETS_URL,
        "version": app.version,
        "description": app.description,
    }
    return page(request, "apidocs.html", context)


def install(app: FastAPI) -> None:
    """Add ``/docs`` and its assets (the app is built with ``docs_url=None``)."""
    app.include_router(router)
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="apidocs-static")
