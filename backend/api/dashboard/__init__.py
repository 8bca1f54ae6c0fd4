"""The live status dashboard, served by crewql itself at `/dashboard`.

Its script and stylesheet are built from `web/dashboard/` with esbuild (`web/dashboard/build.sh`)
and committed under `static/`, like GraphiQL's assets, so a fresh clone serves the page with no
Node and no network. The page talks only GraphQL, to the same endpoint as every client: the
websocket (graphql-ws) first, Apollo's multipart HTTP streams when websockets do not get through.
It is a page without data: what it shows comes from the queries its key may run.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from backend.api.graphiql import render_page

_HERE = Path(__file__).resolve().parent
STATIC_DIR: Path = _HERE / "static"
PAGE_TEMPLATE: Path = _HERE / "page.html"
STATIC_PATH = "/dashboard/static"
GRAPHQL_PATH = "/graphql"


async def dashboard_page(request: Request) -> Response:
    return HTMLResponse(
        render_page(PAGE_TEMPLATE, GRAPHQL_PATH, STATIC_PATH),
        headers={"Cache-Control": "no-cache"},
    )


async def root_redirect(request: Request) -> Response:
    """`/` opens the dashboard (registered only while GraphiQL, the other page for people, is)."""
    return RedirectResponse("/dashboard", status_code=307)
