"""Rendering the console's pages: templates, headers, static files, the HTML error page."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

import jinja2
from fastapi import Request, Response
from fastapi.routing import APIRoute

from metadisk.bridge import errors
from metadisk.bridge.console.guard import PREFIX
from metadisk.runtime.logs import event
from metadisk.runtime.web import SECURITY_HEADERS, environment, static

log = logging.getLogger(__name__)
STATIC_URL = f"{PREFIX}/static/"


@functools.cache
def _templates() -> jinja2.Environment:
    env = environment("metadisk.bridge.console")
    env.filters["when"] = when
    env.globals["static_url"] = STATIC_URL
    env.globals["prefix"] = PREFIX
    return env


def when(moment: int | None) -> str:
    """A unix time as UTC text, minutes precision."""
    if moment is None:
        return "never"
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")


def page(
    name: str,
    context: Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """`name` rendered, with the security headers every page carries."""
    body = _templates().get_template(name).render(**context)
    response = Response(body, status, media_type="text/html")
    response.headers.update(SECURITY_HEADERS)
    if headers:
        response.headers.update(headers)
    return response


def redirect(to: str) -> Response:
    """303 See Other: after a POST, the browser GETs `to`."""
    response = Response(status_code=303, headers={"Location": to})
    response.headers.update(SECURITY_HEADERS)
    return response


def error_page(status: int, message: str, retry_after: int = 0) -> Response:
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return page("error.html", {"status": status, "message": message}, status, headers)


def static_file(name: str) -> Response:
    """The console's own static file `name`, else the shared one; 404 for any other name."""
    try:
        content, kind = static(name, "metadisk.bridge.console")
    except KeyError:
        return error_page(404, "no such file")
    response = Response(content, media_type=kind)
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


class PageRoute(APIRoute):
    """A console route: a refusal is an HTML page with its status, not the API's JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except errors.BridgeError as exc:
                level = logging.WARNING if exc.status >= 500 else logging.INFO
                event(log, level, "refused", method=request.method, route=self.path,
                      status=exc.status, code=exc.code)  # fmt: skip
                return error_page(exc.status, exc.message)

        return handle
