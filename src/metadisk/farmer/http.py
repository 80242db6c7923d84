"""The farmer's HTTP edge: one JSON error shape, every refusal logged with its code, and the
loopback-only routes.

Every error leaves as ``{"error": {"code": ..., "message": ...}}``: `FarmerError`s with their own
code and status, aiohttp's routing errors with a code for their status, anything unexpected as a
logged 500 ``internal``. Refusals are logged (info for a client's mistake, warning for what the
node could not do, such as 507 ``insufficient-storage``, error for a corrupt piece on its disk)
and counted per route and code; neither carries a header or a body.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
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


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=error_body(code, message),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def error_middleware(metrics: FarmerMetrics) -> Middleware:
    """Turn every failure into the error envelope; log and count each refusal."""

    def refused(request: web.Request, status: int, code: str, level: int) -> None:
        route = _route(request)
        metrics.refusals.labels(route, code).inc()
        event(log, level, "refused", method=request.method, route=route, status=status, code=code)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
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
            log.exception("internal error on %s %s", request.method, _route(request))
            metrics.refusals.labels(_route(request), "internal").inc()
            return error_response(500, "internal", "internal error")

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
