"""An aiohttp application served on a socket it binds itself (the farmer's data plane, the
bridge worker's metrics)."""

from __future__ import annotations

import logging
import ssl

from aiohttp import web

from metadisk.runtime.net import bind

log = logging.getLogger("metadisk.runtime.server")

SHUTDOWN_GRACE = 5.0


class AppServer:
    """Binds on `start()` (port 0: an ephemeral one, then in `port`); `close()` stops serving.

    With `ssl_context` it serves HTTPS. On shutdown, requests in flight get `SHUTDOWN_GRACE`
    seconds, then their clients retry elsewhere. Per-request logging is the metrics
    middleware's access log, not aiohttp's.
    """

    def __init__(
        self,
        app: web.Application,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._ssl_context = ssl_context
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE
        )
        self.port: int | None = None

    async def start(self) -> None:
        sock = bind(self._host, self._port)
        self.port = sock.getsockname()[1]
        await self._runner.setup()
        await web.SockSite(self._runner, sock, ssl_context=self._ssl_context).start()

    async def close(self) -> None:
        await self._runner.cleanup()
