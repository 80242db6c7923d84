"""The bridge console: web pages for accounts (sign up, log in, projects, usage over time, API
keys) and for operators (nodes, network health, usage totals), served by the API process under
``/console/``.

Server-rendered HTML (`metadisk.runtime.web`), one small script, no other origin. Sessions,
CSRF and the operator's login are described in `metadisk.bridge.console.guard`; usage history in
`metadisk.bridge.console.history`.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from metadisk.bridge.console import accounts, operator
from metadisk.bridge.console.deps import ConsoleDeps
from metadisk.bridge.console.guard import PREFIX
from metadisk.bridge.console.render import PageRoute, static_file

__all__ = ["PREFIX", "ConsoleDeps", "router"]


def router(deps: ConsoleDeps) -> APIRouter:
    """Every console route: account pages, operator pages, static files."""
    api = APIRouter(include_in_schema=False, route_class=PageRoute)
    api.include_router(accounts.router(deps))
    api.include_router(operator.router(deps))

    @api.get(f"{PREFIX}/static/{{name}}")
    async def static(name: str) -> Response:
        return static_file(name)

    return api
