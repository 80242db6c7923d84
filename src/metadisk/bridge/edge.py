"""The bridge API's edge: what a request may cost before any route reads it.

A pure ASGI middleware in front of the FastAPI app (behind the metrics one), in this order:

- **Body size**: a body over the route's cap gets 413 ``too-large`` from its Content-Length,
  before a byte of it is read, or as soon as a chunked body counts past the cap. FastAPI parsed
  any body before checking credentials: 100 MB of JSON took 4 s and a GiB of memory.
- **Body time**: the whole body is read here, with at most `body_idle_timeout` between reads and
  `body_timeout` in all, else 408 ``timeout``; the app then gets it in one piece.
- **Rates**: logins, account creation, node check-ins and begin object / begin segment take a
  token from their buckets (`metadisk.bridge.ratelimit`), else 429 ``rate-limited`` with
  ``Retry-After``. A failed login spends the tokens of its email and address; a successful one
  gets them back. Begin calls count per API key id (the macaroon's, so that caveats added
  offline make no new bucket); one the bridge finds invalid (401) gets its token back.
- **405**: an answer 405 gets ``Allow`` with every method of the path.

Refusals use the JSON envelope, are counted in ``metadisk_bridge_refusals`` and logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.routing import Route, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metadisk.bridge.config import ServerConfig
from metadisk.bridge.metrics import BridgeMetrics
from metadisk.bridge.ratelimit import Limit, RateLimiter
from metadisk.core.encoding import b64decode
from metadisk.core.errors import CoreError
from metadisk.core.macaroon import APIKey
from metadisk.core.messages import NodeContact
from metadisk.runtime.logs import event
from metadisk.runtime.metrics import UNMATCHED
from metadisk.wire.api import routes
from metadisk.wire.errors import error_body

log = logging.getLogger(__name__)

_UNAUTHENTICATED = 401
_MAX_EMAIL = 320  # longer is no email (the service refuses it); not worth a bucket


@dataclass(frozen=True, slots=True)
class _Matched:
    """Stands in for a starlette route in the scope, so the metrics label an edge refusal."""

    path: str


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


_ALLOW = routes.ALLOW.lower().encode()


class _Gone(Exception):
    """The client hung up while sending its body: there is no one to answer."""


class Edge:
    """The ASGI middleware; `routes_of_app` are the app's, for the ``Allow`` of a 405."""

    def __init__(
        self,
        app: ASGIApp,
        config: ServerConfig,
        metrics: BridgeMetrics,
        routes_of_app: Sequence[Route],
        *,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._app = app
        self._config = config
        self._metrics = metrics
        self._routes = routes_of_app
        self._limiter = limiter or RateLimiter()
        c = config
        self._login = Limit("login", c.login_rate, c.login_burst)
        self._login_failure = Limit("login-failure", c.login_failure_rate, c.login_failure_burst)
        self._account = Limit("account", c.account_rate, c.account_burst)
        self._checkin = Limit("checkin", c.checkin_rate, c.checkin_burst)
        self._checkin_address = Limit(
            "checkin-address", c.checkin_address_rate, c.checkin_address_burst
        )
        self._begins = {
            routes.BUCKET_UPLOADS: Limit("begin-object", c.begin_rate, c.begin_burst),
            routes.SEGMENTS: Limit("begin-segment", c.begin_rate, c.begin_burst),
        }
        exact = (routes.ACCOUNTS, routes.SESSIONS, routes.CHECKIN)
        templated = (*self._begins, routes.OBJECT_MOVE, routes.OBJECT_COPY, routes.UPLOAD_COMMIT)
        self._exact_posts = frozenset(exact)
        self._templated_posts = [(compile_path(t)[0], t) for t in templated]
        # Bodies that list an object's segments: the larger cap, and no begin rate.
        self._relocations = frozenset(
            (routes.OBJECT_MOVE, routes.OBJECT_COPY, routes.UPLOAD_COMMIT)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        template = self._template(scope["method"], scope["path"])
        if template is not None:
            scope["route"] = _Matched(template)  # replaced by the router's own match
        try:
            body = await self._body(scope, receive, template)
            taken = self._take(scope, template, body)
        except _Refusal as refusal:
            await self._refuse(scope, send, refusal, template)
            return
        except _Gone:
            return
        if body is not None:
            receive = _replay(body, receive)
        status = 0

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if status == 405:  # the app's Allow may name one route's methods, or none
                    allow = ", ".join(self._allowed(scope)).encode()
                    kept = [h for h in message.get("headers", []) if h[0].lower() != _ALLOW]
                    message = {**message, "headers": [*kept, (_ALLOW, allow)]}
            await send(message)

        try:
            await self._app(scope, receive, watching_send)
        finally:
            for limit, key in taken:
                if _counts(limit.what, status):
                    continue
                self._limiter.give_back(limit, key)

    def _template(self, method: str, path: str) -> str | None:
        if method != "POST":
            return None
        if path in self._exact_posts:
            return path
        for regex, template in self._templated_posts:
            if regex.match(path):
                return template
        return None

    # -- body ------------------------------------------------------------------------------

    async def _body(self, scope: Scope, receive: Receive, template: str | None) -> bytes | None:
        """The whole body, or None when the request has none (nothing was read)."""
        cap = self._config.max_body_bytes
        if template in self._relocations:
            cap = self._config.max_relocation_body_bytes
        length, chunked = _framing(scope["headers"])
        too_large = _Refusal(413, "too-large", f"request body over {cap} bytes")
        if length is not None and length > cap:
            raise too_large
        if not chunked and not length:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.body_timeout
        chunks: list[bytes] = []
        size = 0
        while True:
            wait = min(self._config.body_idle_timeout, deadline - loop.time())
            try:
                async with asyncio.timeout(wait):
                    message = await receive()
            except TimeoutError:
                raise _Refusal(408, "timeout", "request body too slow") from None
            if message["type"] != "http.request":
                raise _Gone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    # -- rates -----------------------------------------------------------------------------

    def _take(
        self, scope: Scope, template: str | None, body: bytes | None
    ) -> list[tuple[Limit, str]]:
        """Tokens for this request (what to give back is decided on its status), or 429."""
        if template is None or template in self._relocations:
            return []
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        wanted: list[tuple[Limit, str]] = []
        if template == routes.SESSIONS:
            wanted = [(self._login, address), (self._login_failure, address)]
            email = _json_field(body, "email")
            if email is not None and len(email) <= _MAX_EMAIL:
                wanted.append((self._login_failure, email.strip().lower()))
        elif template == routes.ACCOUNTS:
            wanted = [(self._account, address)]
        elif template == routes.CHECKIN:
            wanted = [(self._checkin_address, address)]
            node_id = _signed_node_id(_json_field(body, "contact"))
            if node_id is not None:
                wanted.append((self._checkin, node_id))
        else:
            key_id = _api_key_id(scope["headers"])
            if key_id is not None:
                wanted = [(self._begins[template], key_id)]
        retry_after = self._limiter.take_all(wanted)
        if retry_after:
            message = f"too many requests; retry in {retry_after} s"
            raise _Refusal(429, "rate-limited", message, retry_after)
        return wanted

    # -- answers ---------------------------------------------------------------------------

    async def _refuse(
        self, scope: Scope, send: Send, refusal: _Refusal, template: str | None
    ) -> None:
        route = template or UNMATCHED
        self._metrics.refusals.labels(route, refusal.code).inc()
        status = refusal.status
        event(log, logging.INFO, "refused", method=scope["method"], route=route, status=status,
              code=refusal.code)  # fmt: skip
        body = error_body(refusal.code, refusal.message)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        if refusal.retry_after:
            headers.append((b"retry-after", b"%d" % refusal.retry_after))
        else:
            # The rest of the body is not read: the connection cannot carry another request.
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _allowed(self, scope: Scope) -> list[str]:
        methods: set[str] = set()
        for route in self._routes:
            if route.methods and route.path_regex.match(scope["path"]):
                methods |= route.methods
        return sorted(methods)


def _counts(what: str, status: int) -> bool:
    """Whether a request that got `status` keeps the token it took from `what`."""
    if what == "login-failure":
        return status == _UNAUTHENTICATED  # only failed logins count against email and address
    if what.startswith("begin-"):
        return status != _UNAUTHENTICATED  # a forged key must not spend its key id's tokens
    return True


def _framing(headers: Sequence[tuple[bytes, bytes]]) -> tuple[int | None, bool]:
    """(Content-Length if given, whether the body is chunked); the server has checked both."""
    length: int | None = None
    chunked = False
    for name, value in headers:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the app `body` in one message, then the server's (disconnects)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _json_field(body: bytes | None, name: str) -> str | None:
    """A string field of a JSON object body; None if the body is not one (the route says so)."""
    if not body:
        return None
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        return None
    value = parsed.get(name) if isinstance(parsed, dict) else None
    return value if isinstance(value, str) else None


def _signed_node_id(contact: str | None) -> str | None:
    """The node id of a contact signed by its own key; anyone can name someone else's node id,
    so an unsigned one spends only the address's tokens."""
    if contact is None:
        return None
    try:
        decoded = NodeContact.decode(b64decode(contact))
        decoded.verify_signature()
    except (CoreError, ValueError):
        return None
    return decoded.node_id.raw.hex()


def _api_key_id(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            try:
                return APIKey.parse(token.strip()).key_id.hex()
            except (CoreError, ValueError):
                return None
    return None
