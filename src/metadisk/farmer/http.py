"""The farmer's HTTP edge: one JSON error shape, every refusal logged with its code, and the
loopback-only routes.

Every error leaves as ``{"error": {"code": ..., "message": ...}}``: `FarmerError`s with their own
code and status, aiohttp's routing errors with a code for their status, anything unexpected as a
logged 500 ``internal``, and requests aiohttp could not parse (`malformed_page`) with a code and
never a byte of the request. Refusals are logged (info for a client's mistake, warning for what
the node could not do, such as 507 ``insufficient-storage``, error for a corrupt piece on its
disk) and counted per route and code; neither carries a header or a body.

Every request runs under a total deadline, and a body under a silence one (`RequestClock`); a
request that passes either is answered 408 ``request-timeout`` and its connection closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import StreamReader, web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.typedefs import Middleware

from metadisk.farmer.errors import (
    CorruptPiece,
    FarmerError,
    Forbidden,
    NotFound,
    RangeNotSatisfiable,
)
from metadisk.farmer.metrics import FarmerMetrics
from metadisk.runtime.chore import Chore
from metadisk.runtime.logs import event
from metadisk.runtime.metrics import UNMATCHED
from metadisk.runtime.net import is_loopback
from metadisk.runtime.server import ErrorPage
from metadisk.wire.dataplane.contract import CHORE, ChoreRun
from metadisk.wire.errors import error_body

log = logging.getLogger("metadisk.farmer.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_STATUS_CODES = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "too-large",
}


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Seconds a whole request may take (`total`), and a body may stay silent (`idle`)."""

    total: float
    idle: float


class RequestClock:
    """One request's deadlines: the whole request's, and the silence of its body.

    Body readers call `read`. The silence check costs one timer per `idle` seconds, not one per
    chunk: the timer fires, finds the reader waiting for less than `idle` (or not waiting), and
    is set again from when that wait began. Only waits on the client count, so a slow disk that
    keeps the handler from reading never cuts an upload.
    """

    __slots__ = ("_deadline", "_idle", "_loop", "_since", "_timer", "silent")

    def __init__(self, deadline: asyncio.Timeout, idle: float) -> None:
        self._deadline = deadline
        self._idle = idle
        self._loop = asyncio.get_running_loop()
        self._since: float | None = None  # when the wait under way began
        self._timer: asyncio.TimerHandle | None = None
        self.silent = False  # the body was cut for silence (not the total deadline)

    async def read(self, content: StreamReader) -> tuple[bytes, bool]:
        """`content.readchunk()`, cut once the client stays silent for `idle` seconds."""
        self._since = since = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_at(since + self._idle, self._check)
        try:
            return await content.readchunk()
        finally:
            self._since = None

    def _check(self) -> None:
        self._timer = None
        since = self._since
        if since is None:
            return  # not waiting: the next read sets the timer again
        now = self._loop.time()
        if now - since >= self._idle:
            if not self._deadline.expired():  # (the total deadline may have just passed)
                self.silent = True
                self._deadline.reschedule(now)  # its own cancellation: a TimeoutError
        else:
            self._timer = self._loop.call_at(since + self._idle, self._check)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


REQUEST_CLOCK = web.RequestKey("request_clock", RequestClock)


def malformed_page(metrics: FarmerMetrics) -> ErrorPage:
    """The answer to a request aiohttp could not parse (`AppServer`'s ``error_page``), counted
    as a refusal of no route.

    The parse error's own text quotes the request's bytes; none of it is answered or logged.
    """

    def page(status: int, exc: BaseException | None) -> web.Response:
        if status >= 500:
            status, code, message = 500, "internal", "internal error"
        elif isinstance(exc, LineTooLong) or "Too many headers" in str(exc):
            status, code, message = 431, "headers-too-large", "request line or headers too large"
        else:
            status, code, message = 400, "malformed-http", "not a well-formed HTTP/1.1 request"
        metrics.refusals.labels(UNMATCHED, code).inc()
        return error_response(status, code, message)

    return page


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=error_body(code, message),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def error_middleware(metrics: FarmerMetrics, deadlines: Deadlines) -> Middleware:
    """Turn every failure into the error envelope; log and count each refusal; hold every
    request to `deadlines`."""

    def refused(request: web.Request, status: int, code: str, level: int) -> None:
        route = _route(request)
        metrics.refusals.labels(route, code).inc()
        event(log, level, "refused", method=request.method, route=route, status=status, code=code)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        deadline = asyncio.timeout(deadlines.total)
        clock = request[REQUEST_CLOCK] = RequestClock(deadline, deadlines.idle)
        try:
            async with deadline:
                return await handler(request)
        except TimeoutError:
            if deadline.expired():
                return await cut(request, clock)
            return internal(request)  # a timeout of the handler's own
        except FarmerError as exc:
            headers = {}
            if isinstance(exc, RangeNotSatisfiable):
                headers["Content-Range"] = f"bytes */{exc.size}"
            if isinstance(exc, CorruptPiece):
                level = logging.ERROR  # this node's disk is damaged
            elif exc.status >= 500 or exc.status == 507:
                level = logging.WARNING
            else:
                level = logging.INFO
            refused(request, exc.status, exc.code, level)
            return error_response(exc.status, exc.code, exc.message, headers)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = _STATUS_CODES.get(exc.status, "http-error")
            refused(request, exc.status, code, logging.INFO)
            return error_response(exc.status, code, exc.reason)
        except ConnectionError as exc:
            # the client went away mid-request (its upload was discarded): routine, not an error
            log.debug("%s %s: connection lost: %s", request.method, request.path, exc)
            return error_response(400, "connection-lost", "connection lost")
        except Exception:
            return internal(request)
        finally:
            clock.close()

    def internal(request: web.Request) -> web.Response:
        log.exception("internal error on %s %s", request.method, _route(request))
        metrics.refusals.labels(_route(request), "internal").inc()
        return error_response(500, "internal", "internal error")

    async def cut(request: web.Request, clock: RequestClock) -> web.StreamResponse:
        """Answer 408 and close at once: the client went silent or took too long, and aiohttp
        would otherwise linger on the connection reading the rest of the body."""
        if clock.silent:
            message = f"no body bytes for {deadlines.idle:g} s"
        else:
            message = f"request took longer than {deadlines.total:g} s"
        refused(request, 408, "request-timeout", logging.INFO)
        response = error_response(408, "request-timeout", message)
        response.force_close()
        if request.writer.output_size == 0:  # (an answer under way cannot be replaced)
            try:
                await response.prepare(request)
                await response.write_eof()
            except ConnectionError:
                pass
        request.protocol.force_close()
        return response

    return middleware


def _route(request: web.Request) -> str:
    route = request.match_info.route
    template = route.resource.canonical if route.resource is not None else None
    return template or UNMATCHED


def from_loopback(request: web.Request) -> bool:
    return is_loopback(request.remote)


def require_loopback(request: web.Request) -> None:
    """Local-only routes answer peers on the loopback interface, nobody else."""
    if not from_loopback(request):
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
