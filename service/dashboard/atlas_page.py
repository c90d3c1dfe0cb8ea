"""The atlas's page: the report's content inside the dashboard, refreshed while its studies run.

The content is ``studies.atlas.report.render_body``'s, the same as the offline file's, with figures
from the API's figure endpoints instead of inlined. The page's stylesheet is the report's own
(``/atlas.css``); ``static/atlas.js`` reloads the content (``/atlases/{key}/fragment``) every few
seconds until the atlas is done. Nothing inline runs (the dashboard's Content-Security-Policy).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from studies.atlas.report import render_body, stylesheet

from .. import atlas
from ..api.deps import EngineDep
from .pages import SECURITY_HEADERS, page

router = APIRouter(include_in_schema=False)
KeyPath = Annotated[str, Path(max_length=100, pattern=r"^[a-z]+-s[0-9]+(-w[0-9a-f]+)?$")]


def _body(engine: EngineDep, key: str) -> str:
    aid = atlas.parse_key(key)
    result = atlas.atlas_result(engine, aid)
    base = f"/api/v1/atlases/{aid.key()}/figures"
    return render_body(
        result,
        figure=lambda name, fmt: f"{base}/{name}.{fmt}",
        export=lambda name, fmt: f"{base}/{name}.{fmt}",
    )


@router.get("/atlases/{key}", response_class=HTMLResponse)
def atlas_page(request: Request, key: KeyPath, engine: EngineDep) -> Response:
    """The atlas's report as a page, live while its studies run."""
    body = _body(engine, key)
    return page(request, "atlas.html", {"key": key, "body": Markup(body)})


@router.get("/atlases/{key}/fragment", response_class=HTMLResponse)
def atlas_fragment(key: KeyPath, engine: EngineDep) -> Response:
    """The page's content alone (what ``atlas.js`` swaps in as results arrive)."""
    return HTMLResponse(_body(engine, key), headers=SECURITY_HEADERS)


@router.get("/atlas.css")
def atlas_css() -> Response:
    """The report's stylesheet, for the page (the offline file inlines it)."""
    return Response(stylesheet(), media_type="text/css", headers={"Cache-Control": "no-cache"})
