"""The web dashboard, served by the API's own app under ``/``: pages (``pages``), the JSON they draw
from (``data``, under ``/api/v1``), the figures in words (``words``), and static files shipped in the
package (``static/``: our own CSS and JavaScript, no CDN, no external font), and the API's documentation
pages with their assets served from the package (``apidocs``).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from . import apidocs, atlas_page, compare, data, pages

__all__ = ["install"]


def install(app: FastAPI, api_prefix: str) -> None:
    """Add the dashboard's pages, its JSON endpoints and its static files to ``app``."""
    app.include_router(data.router, prefix=api_prefix)
    app.include_router(data.specs_router, prefix=api_prefix)
    app.include_router(compare.router, prefix=api_prefix)
    app.include_router(pages.router)
    app.include_router(atlas_page.router)
    apidocs.install(app)  # before /static: its assets live under /static/apidocs
    app.mount("/static", StaticFiles(directory=pages.HERE / "static"), name="dashboard-static")
