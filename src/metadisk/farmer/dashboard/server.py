"""The dashboard's listener: an aiohttp application of its own on a loopback port.

Every request must come from the loopback interface and name this listener in its Host header
(and in its Origin header, if it has one): a page of another site that rebinds its DNS name to
127.0.0.1 sends its own name as Host, and is refused, so it cannot read the node's figures.
Every answer carries the shared security headers (strict CSP: no inline script or style).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from urllib.parse import urlsplit

import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler

from metadisk.core.identity import Identity, NodeId
from metadisk.farmer.config import DashboardConfig, TrustedBridge
from metadisk.farmer.dashboard.bridges import StandingCache
from metadisk.farmer.dashboard.recent import RecentProblems
from metadisk.farmer.dashboard.view import bridge_rows, page_context
from metadisk.runtime import web as shared
from metadisk.runtime.net import is_loopback
from metadisk.runtime.server import AppServer
from metadisk.wire.dataplane.contract import NodeReport

log = logging.getLogger("metadisk.farmer.dashboard")

PAGE = "/"
STATIC = "/static/{name}"
STATIC_URL = "/static/"
FAVICON = "/favicon.ico"  # browsers ask for it whatever the page says: no icon, and no 404
# Whose warnings and errors the page lists: the farmer's, and the runtime under it.
WATCHED = ("metadisk.farmer", "metadisk.runtime")


class Dashboard:
    """The operator's page for one node; `start` binds its port, `url` is where it is."""

    def __init__(
        self,
        *,
        config: DashboardConfig,
        identity: Identity,
        bridges: Sequence[TrustedBridge],
        report: Callable[[], Awaitable[NodeReport]],
        last_checkin: Mapping[NodeId, int],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._bridges = tuple(bridges)
        self._report = report
        self._last_checkin = last_checkin
        self._clock = clock
        self.standings = StandingCache(identity, bridges, clock=clock)
        self.problems = RecentProblems()
        self._templates: jinja2.Environment = shared.environment("metadisk.farmer.dashboard")
        app = web.Application(middlewares=[self._guard])
        app.on_response_prepare.append(_secure)
        app.add_routes(
            [
                web.get(PAGE, self.page),
                web.get(STATIC, self.static),
                web.get(FAVICON, _no_content),
            ]
        )
        self.server = AppServer(app, config.host, config.port)

    @property
    def port(self) -> int:
        assert self.server.port is not None, "start() first"
        return self.server.port

    @property
    def url(self) -> str:
        """The page's URL, once started."""
        host = f"[{self._config.host}]" if ":" in self._config.host else self._config.host
        return f"http://{host}:{self.port}/"

    async def start(self) -> None:
        self.problems.attach(*WATCHED)
        await self.server.start()

    async def close(self) -> None:
        self.problems.detach()
        await self.server.close()
        await self.standings.close()

    # -- requests

    def _ours(self, netloc: str) -> bool:
        """Whether a Host (``host:port``) or Origin netloc names this listener."""
        try:
            parts = urlsplit("//" + netloc)
            hostname, port = parts.hostname, parts.port
        except ValueError:
            return False
        if hostname is None or port != self.port:
            return False
        if hostname == "localhost":
            return True
        try:
            return ipaddress.ip_address(hostname).is_loopback
        except ValueError:
            return False

    def refusal(self, request: web.Request) -> str | None:
        """Why `request` is refused, or None if it may be answered."""
        if not is_loopback(request.remote):
            return "only answered on the loopback interface"
        if not self._ours(request.headers.get("Host", "")):
            return "the Host header does not name this loopback listener"
        origin = request.headers.get("Origin")
        if origin is not None:
            parts = urlsplit(origin)
            if parts.scheme != "http" or not self._ours(parts.netloc) or parts.path:
                return "the request comes from another origin"
        return None

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        reason = self.refusal(request)
        if reason is not None:
            log.debug("refused a dashboard request: %s", reason)
            return web.Response(status=403, text=f"Forbidden: {reason}\n")
        return await handler(request)

    async def page(self, request: web.Request) -> web.Response:
        report = await self._report()
        answers = await self.standings.get()
        asked_at = self.standings.asked_at
        context = page_context(
            report=report,
            rows=bridge_rows(self._bridges, report, answers, self._last_checkin),
            problems=self.problems.latest(),
            standings_age=None if asked_at is None else time.monotonic() - asked_at,
            dashboard_url=self.url,
            now=self._clock(),
        )
        html = self._templates.get_template("dashboard.html").render(
            static_url=STATIC_URL, **context
        )
        return web.Response(text=html, content_type="text/html")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            body, kind = shared.static(name, "metadisk.farmer.dashboard")
        except KeyError:
            raise web.HTTPNotFound() from None
        return web.Response(body=body, content_type=kind)


async def _no_content(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def _secure(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(shared.SECURITY_HEADERS)
