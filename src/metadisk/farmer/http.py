"""The farmer's HTTP edge: one JSON error shape, loopback-only routes, and the listening server.

Every error leaves as ``{"error": {"code": ..., "message": ...}}``: `FarmerError`s with their own
code and status, aiohttp's routing errors with a code for their status, anything unexpected as a
logged 500 ``internal``.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from metadisk.farmer.chore import Chore
from metadisk.farmer.errors import FarmerError, Forbidden, NotFound, RangeNotSatisfiable, SetupError
from metadisk.wire.dataplane.contract import CHORE, ChoreRun
from metadisk.wire.errors import error_body

log = logging.getLogger("metadisk.farmer.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SHUTDOWN_GRACE = 5.0

_STATUS_CODES = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "too-large",
}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=error_body(code, message),
        status=status,
        headers=headers,
        content_type="application/json",
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except FarmerError as exc:
        headers = {}
        if isinstance(exc, RangeNotSatisfiable):
            headers["Content-Range"] = f"bytes */{exc.size}"
        return error_response(exc.status, exc.code, exc.message, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(exc.status, "http-error")
        return error_response(exc.status, code, exc.reason)
    except ConnectionError as exc:
        # the client went away mid-request (its upload was discarded): routine, not an error
        log.debug("%s %s: connection lost: %s", request.method, request.path, exc)
        return error_response(400, "connection-lost", "connection lost")
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error")


def require_loopback(request: web.Request) -> None:
    """Local-only routes answer peers on the loopback interface, nobody else."""
    try:
        local = request.remote is not None and ipaddress.ip_address(request.remote).is_loopback
    except ValueError:
        local = False
    if not local:
        raise Forbidden("only answered on the loopback interface", code="not-local")


def chore_routes(chores: Mapping[str, Chore]) -> list[web.RouteDef]:
    """``POST /v1/chores/{name}``: run a chore now and wait for it (loopback only)."""

    async def trigger(request: web.Request) -> web.Response:
        require_loopback(request)
        chore = chores.get(request.match_info["name"])
        if chore is None:
            raise NotFound(f"no chore named {request.match_info['name']!r}")
        await chore.trigger_and_wait()
        return web.json_response(ChoreRun(chore=chore.name, done=True).model_dump(mode="json"))

    return [web.post(CHORE, trigger)]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; SetupError (port-in-use, bad-address) if it cannot be bound."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise SetupError(f"cannot listen on {host}: {exc.strerror}", code="bad-address") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # lets a restarted node take its port back while old connections sit in TIME_WAIT
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise SetupError(f"port {port} on {host} is in use", code="port-in-use") from exc
        raise SetupError(
            f"cannot listen on {host}:{port}: {exc.strerror}", code="bad-address"
        ) from exc
    sock.setblocking(False)
    return sock


class Server:
    """An aiohttp application served on a socket this class binds."""

    def __init__(self, app: web.Application, host: str, port: int, *, access_log: bool) -> None:
        self._app = app
        self._host = host
        self._port = port
        # on shutdown, requests in flight get a few seconds, then their clients retry elsewhere
        self._runner = web.AppRunner(
            app,
            access_log=log if access_log else None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_GRACE,
        )
        self.port: int | None = None

    async def start(self) -> None:
        sock = bind(self._host, self._port)
        self.port = sock.getsockname()[1]
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def close(self) -> None:
        await self._runner.cleanup()
