"""The HTTP edge shared by every router: error shape, bearer credentials, the app factory.

Every error leaves as ``{"error": {"code": ..., "message": ...}}``: service errors with their own
code and status, FastAPI's validation errors as 400 ``invalid-request``, unknown routes as 404
``not-found``, anything unexpected as 500 ``internal`` (logged, never shown).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import APIRouter, FastAPI, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from pydantic.warnings import UnsupportedFieldAttributeWarning
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from metadisk.bridge import apidocs, errors
from metadisk.bridge.metrics import BridgeMetrics
from metadisk.runtime.logs import event
from metadisk.runtime.metrics import UNMATCHED
from metadisk.wire.api.routes import OPENAPI, RETRY_AFTER, SESSIONS
from metadisk.wire.errors import ErrorBody, describe_invalid, error_body

log = logging.getLogger(__name__)
T = TypeVar("T")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route may answer."""
    return {status: {"model": ErrorBody, "description": "error"} for status in statuses}


# Declared on every route: malformed input (400), credentials missing, wrong or short of a right
# (401, 403), what a request names missing or in conflict with the state (404, 409), a body over
# the size limit (413 ``too-large``), and the bridge unable to serve it now (503).
COMMON_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 503)

# Declared on the routes a rate limit guards (logins, account creation, check-ins, beginning an
# object or a segment): 429 ``rate-limited``, with how long to wait.
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorBody,
        "description": "rate-limited: try again after Retry-After seconds",
        "headers": {
            RETRY_AFTER: {
                "description": "seconds to wait before trying again",
                "required": True,
                "schema": {"type": "integer", "minimum": 0},
            }
        },
    }
}

# The credentials, as OpenAPI security schemes: FastAPI publishes a scheme for each route whose
# dependencies take it through `Security`, so the document says which credential a route needs.
SESSION_SCHEME = "session"
API_KEY_SCHEME = "apiKey"
ADMIN_SCHEME = "adminToken"
_session_scheme = HTTPBearer(
    scheme_name=SESSION_SCHEME,
    description=f"a session token from POST {SESSIONS}",
    auto_error=False,
)
_api_key_scheme = HTTPBearer(
    scheme_name=API_KEY_SCHEME,
    description="a serialized API key (mdk1...), root or restricted",
    auto_error=False,
)
_admin_scheme = HTTPBearer(
    scheme_name=ADMIN_SCHEME,
    description="the bridge's [server] admin_token (the admin routes are off without one)",
    auto_error=False,
)

SessionCredentials = Annotated[HTTPAuthorizationCredentials | None, Security(_session_scheme)]
ApiKeyCredentials = Annotated[HTTPAuthorizationCredentials | None, Security(_api_key_scheme)]
AdminCredentials = Annotated[HTTPAuthorizationCredentials | None, Security(_admin_scheme)]


async def session_token(credentials: SessionCredentials) -> str:
    """The bearer session token (async: no thread hop before the endpoint runs)."""
    return _token(credentials, f"a session token from POST {SESSIONS}")


async def api_key_token(credentials: ApiKeyCredentials) -> str:
    """The bearer API key."""
    return _token(credentials, "an API key")


async def admin_authorization(credentials: AdminCredentials) -> str:
    """The ``Authorization`` value for the admin services to check (empty if none was sent):
    they answer ``admin-disabled`` before looking at it when no admin token is configured."""
    if credentials is None:
        return ""
    return f"{credentials.scheme} {credentials.credentials}"


def _token(credentials: HTTPAuthorizationCredentials | None, what: str) -> str:
    if credentials is None or not credentials.credentials:
        raise errors.Unauthenticated(f"send 'Authorization: Bearer <{what}>'")
    return credentials.credentials


def public(signed: str | None = None) -> dict[str, Any]:
    """``openapi_extra`` of a route that takes no credential; `signed`: the signed message its
    body carries instead (the signature is the caller's proof, checked by the service)."""
    extra: dict[str, Any] = {"security": []}
    if signed is not None:
        extra["x-signed-message"] = signed
    return extra


def json_response(body: BaseModel, status: int = 200) -> Response:
    """`body` serialized by pydantic straight to JSON bytes.

    FastAPI's own path validates a returned model again and encodes it twice (to a dict, then to
    JSON); the routes that carry order limits and objects answer through this instead, and keep
    their model in ``response_model`` for the OpenAPI document.
    """
    return Response(body.model_dump_json().encode(), status, media_type="application/json")


def error_response(status: int, code: str, message: str) -> Response:
    return Response(error_body(code, message), status, media_type="application/json")


def route_of(scope: Mapping[str, Any]) -> str | None:
    """The route template a request matched (starlette leaves it in the scope), if any."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


class _Refusals:
    """The error handlers: each answers with the envelope, and logs and counts the refusal
    (info for a caller's mistake, warning for a 5xx such as 503 ``not-enough-nodes``)."""

    def __init__(self, metrics: BridgeMetrics) -> None:
        self._metrics = metrics

    def _refused(self, request: Request, status: int, code: str, message: str) -> Response:
        route = route_of(request.scope) or UNMATCHED
        self._metrics.refusals.labels(route, code).inc()
        level = logging.WARNING if status >= 500 else logging.INFO
        event(log, level, "refused", method=request.method, route=route, status=status, code=code)
        return error_response(status, code, message)

    async def bridge_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.BridgeError)
        return self._refused(request, exc.status, exc.code, exc.message)

    async def validation_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        message = describe_invalid(exc.errors(), most=5)
        return self._refused(request, 400, "invalid-request", message)

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        codes = {404: "not-found", 405: "method-not-allowed"}
        code = codes.get(exc.status_code, "http-error")
        # A 405's Allow (every method of the path, RFC 9110) is set by the edge in front of
        # the app (bridge/edge.py), which knows every router's routes.
        return self._refused(request, exc.status_code, code, str(exc.detail))

    async def unexpected(self, request: Request, exc: Exception) -> Response:
        route = route_of(request.scope) or UNMATCHED
        log.exception("unexpected error in %s %s", request.method, route)
        self._metrics.refusals.labels(route, "internal").inc()
        return error_response(500, "internal", "internal error")


def create_app(routers: Sequence[APIRouter], version: str, metrics: BridgeMetrics) -> FastAPI:
    app = FastAPI(
        title="metadisk bridge",
        version=version,
        description="The bridge's JSON API: accounts, projects, API keys, buckets, objects, "
        "segments, order limits and the node directory. Errors are "
        '{"error": {"code", "message"}}.',
        openapi_url=OPENAPI,
        docs_url=None,  # FastAPI's pages load from a CDN; ours are packaged (apidocs)
        redoc_url=None,
    )
    refusals = _Refusals(metrics)
    app.add_exception_handler(errors.BridgeError, refusals.bridge_error)
    app.add_exception_handler(RequestValidationError, refusals.validation_error)
    app.add_exception_handler(StarletteHTTPException, refusals.http_error)
    app.add_exception_handler(Exception, refusals.unexpected)
    for router in routers:
        app.include_router(router)
    app.include_router(apidocs.router(app.title))
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        # FastAPI declares 422 with its own body on every route with parameters; this app
        # answers every validation error with 400 invalid-request (the envelope) instead.
        if app.openapi_schema is not None:
            return app.openapi_schema
        with warnings.catch_warnings():
            # FastAPI names each route's body parameter with an alias on a field of its own
            # making; with the wire models' validators built on first use (defer_build),
            # pydantic warns that the alias does nothing there. The schema is unaffected.
            warnings.filterwarnings("ignore", category=UnsupportedFieldAttributeWarning)
            document = generate()  # cached by FastAPI: edited once, in place
        for operations in document["paths"].values():
            for operation in operations.values():
                operation["responses"].pop("422", None)
        schemas = document.get("components", {}).get("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        return document

    setattr(app, "openapi", openapi)  # noqa: B010 (mypy refuses assigning to a method)
    return app


class Runner(Protocol):
    """Runs an endpoint's blocking work (service and database calls) for an async endpoint."""

    def __call__(self, work: Callable[[], T]) -> Awaitable[T]: ...


async def run_inline(work: Callable[[], T]) -> T:
    """SQLite: run on the event loop. A query is ~0.1 ms of CPU with no network wait, so a
    thread hop (and GIL hand-offs between many threads) costs more than it could save."""
    return work()


async def run_in_thread(work: Callable[[], T]) -> T:
    """PostgreSQL: run in the threadpool, so that network round trips never block the loop."""
    return await run_in_threadpool(work)
