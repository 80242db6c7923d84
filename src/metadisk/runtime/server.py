"""An aiohttp application served on a socket it binds itself (the farmer's data plane, the
bridge worker's metrics)."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from metadisk.runtime.net import bind

log = logging.getLogger("metadisk.runtime.server")

SHUTDOWN_GRACE = 5.0

# What to answer a request aiohttp could not parse: (status aiohttp chose, its parse error).
ErrorPage = Callable[[int, BaseException | None], web.Response]


class AppServer:
    """Binds on `start()` (port 0: an ephemeral one, then in `port`); `close()` stops serving.

    With `ssl_context` it serves HTTPS. On shutdown, requests in flight get `SHUTDOWN_GRACE`
    seconds, then their clients retry elsewhere. Per-request logging is the metrics
    middleware's access log, not aiohttp's.

    `handler_args` go to aiohttp's connection handler (``keepalive_timeout``,
    ``max_line_size``, ``max_field_size``, ``max_headers``, ...). `error_page`, if given,
    answers what never reaches the application (malformed HTTP), in place of aiohttp's text
    page, which quotes the request's bytes back.
    """

    def __init__(
        self,
        app: web.Application,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        handler_args: Mapping[str, Any] | None = None,
        error_page: ErrorPage | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._ssl_context = ssl_context
        runner_class = web.AppRunner if error_page is None else _runner_class(error_page)
        self._runner = runner_class(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_GRACE,
            **(handler_args or {}),
        )
        self.port: int | None = None

    async def start(self) -> None:
        sock = bind(self._host, self._port)
        self.port = sock.getsockname()[1]
        await self._runner.setup()
        await web.SockSite(self._runner, sock, ssl_context=self._ssl_context).start()

    async def close(self) -> None:
        await self._runner.cleanup()


def _runner_class(error_page: ErrorPage) -> type[web.AppRunner]:
    """An `AppRunner` whose connections answer parse errors with `error_page`.

    aiohttp builds its `Server` and each connection's `RequestHandler` itself, with no hook
    for the error page; both subclasses add no slots, so the instances aiohttp made can take
    them on (`__class__`), keeping every argument aiohttp passed.
    """

    class Handler(RequestHandler):
        __slots__ = ()

        def handle_error(
            self,
            request: web.BaseRequest,
            status: int = 500,
            exc: BaseException | None = None,
            message: str | None = None,
        ) -> web.StreamResponse:
            if request.writer.output_size > 0:  # an answer is under way: only closing is left
                raise ConnectionError("an answer was sent already")
            # aiohttp's own handler logs the parse error, whose text quotes the request
            log.debug("unparsable request answered %d", status)
            response = error_page(status, exc)
            response.force_close()
            return response

    class Server(web.Server):
        def __call__(self) -> RequestHandler:
            handler = super().__call__()
            handler.__class__ = Handler
            return handler

    class Runner(web.AppRunner):
        __slots__ = ()

        async def _make_server(self) -> web.Server:
            server = await super()._make_server()
            server.__class__ = Server
            return server

    return Runner
