"""The API's docs pages, Swagger UI and ReDoc, served with their scripts from the package.

FastAPI's own pages load Swagger UI from a CDN (and ReDoc's fonts from Google), so they show
nothing on a machine without internet access, which is where a local bridge often runs. Here the
pages point only at this bridge: its OpenAPI document and the files in `assets/`, vendored from
the npm packages swagger-ui-dist and redoc with their licenses (see `ASSETS`).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from metadisk.bridge.errors import NotFound
from metadisk.wire.api.routes import DOCS, DOCS_ASSET, OPENAPI, REDOC

ASSET_DIR = Path(__file__).parent / "assets"
# Name served -> (file in ASSET_DIR, media type). Only these are served: no path from a request
# reaches the file system.
ASSETS = {
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", "text/javascript"),  # 5.35.0
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css"),
    "favicon.png": ("swagger-ui/favicon-32x32.png", "image/png"),
    "redoc.standalone.js": ("redoc/redoc.standalone.js", "text/javascript"),  # 2.5.4
}


def _asset(name: str) -> str:
    return DOCS_ASSET.format(name=name)


def router(title: str) -> APIRouter:
    """Routes for the docs pages and their assets; none is in the OpenAPI document."""
    docs = APIRouter(include_in_schema=False)

    @docs.get(DOCS)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI,
            title=f"{title} - API",
            swagger_js_url=_asset("swagger-ui-bundle.js"),
            swagger_css_url=_asset("swagger-ui.css"),
            swagger_favicon_url=_asset("favicon.png"),
            # No badge fetched from validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @docs.get(REDOC)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=OPENAPI,
            title=f"{title} - API",
            redoc_js_url=_asset("redoc.standalone.js"),
            redoc_favicon_url=_asset("favicon.png"),
            with_google_fonts=False,
        )

    @docs.get(DOCS_ASSET)
    async def asset(name: str) -> FileResponse:
        found = ASSETS.get(name)
        if found is None:
            raise NotFound(f"no docs asset {name!r}")
        path, media_type = found
        return FileResponse(ASSET_DIR / path, media_type=media_type)

    return docs
