"""Prometheus metrics per peer: HTTP requests, chore cycles, gauges read at scrape time.

Each peer owns one `CollectorRegistry` and builds its metrics into it, never into
prometheus_client's global registry: tests run several peers in one process, and a metric name
may be registered only once per registry.

HTTP metrics are labelled by route template (``/v1/pieces/{piece_id}``), never by raw path:
paths carry bucket names and ids, which would leak into the scrape and grow it without bound.
Requests no route matched are labelled `UNMATCHED`, and methods outside the standard set
``other``. The middlewares for aiohttp (`aiohttp_middleware`) and for ASGI (`AsgiMiddleware`)
feed `HttpMetrics.observe`, which also writes the access log line when that is switched on.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from metadisk.runtime.logs import ACCESS_LOGGER, event
from metadisk.runtime.net import is_loopback

__all__ = [
    "METRICS_PATH",
    "UNMATCHED",
    "AsgiMiddleware",
    "CallbackGauge",
    "ChoreMetrics",
    "HttpMetrics",
    "aiohttp_metrics_route",
    "aiohttp_middleware",
    "exposition",
    "gauge_callback",
    "scrape_allowed",
]

log = logging.getLogger("metadisk.runtime.metrics")
_access = logging.getLogger(ACCESS_LOGGER)

METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"

# 1 ms (a status call) to 60 s (a large piece over a slow link).
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# 1 ms (an empty queue) to 15 min (a deletion backlog worked off in one cycle).
CHORE_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900)

# Clients choose the method string: any other shares the label "other", keeping cardinality bounded.
_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"})


class HttpMetrics:
    """Request counts, durations and bytes of one peer's HTTP server, labelled by route.

    With `access_log`, each request is also one INFO line on `ACCESS_LOGGER` (method, route,
    status, seconds, bytes_in, bytes_out, role), shown when the log level is info or lower.
    """

    def __init__(self, registry: CollectorRegistry, role: str, *, access_log: bool = False) -> None:
        self.role = role
        self.access_log = access_log
        self._requests = Counter(
            "metadisk_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ("role", "route", "method", "status"),
            registry=registry,
        )
        self._duration = Histogram(
            "metadisk_http_request_duration_seconds",
            "Seconds from the request reaching the middleware to the handler returning.",
            ("role", "route", "method"),
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self._received = Counter(
            "metadisk_http_received_bytes",
            "Request body bytes received.",
            ("role", "route"),
            registry=registry,
        )
        self._sent = Counter(
            "metadisk_http_sent_bytes",
            "Response body bytes sent.",
            ("role", "route"),
            registry=registry,
        )
        # Looking up labelled children takes a lock and builds a key; the hot path pays one dict
        # lookup instead. Bounded: routes x methods x statuses.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram, Counter, Counter]] = {}

    def observe(
        self, route: str, method: str, status: int, seconds: float, received: int, sent: int
    ) -> None:
        """Count one answered request; `route` is its template, or `UNMATCHED`."""
        if method not in _METHODS:
            method = "other"
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self._requests.labels(self.role, route, method, str(status)),
                self._duration.labels(self.role, route, method),
                self._received.labels(self.role, route),
                self._sent.labels(self.role, route),
            )
        requests, duration, received_bytes, sent_bytes = children
        requests.inc()
        duration.observe(seconds)
        if received:
            received_bytes.inc(received)
        if sent:
            sent_bytes.inc(sent)
        if self.access_log:
            event(
                _access,
                logging.INFO,
                "request",
                method=method,
                route=route,
                status=status,
                seconds=round(seconds, 6),
                bytes_in=received,
                bytes_out=sent,
                role=self.role,
            )


def aiohttp_middleware(metrics: HttpMetrics) -> Middleware:
    """An aiohttp middleware timing and counting every request.

    Put it first in the application's list, so it sees what the error middleware made of
    failures. Exceptions propagate unchanged, counted with the status of a raised
    `web.HTTPException` or as 500. Bytes received are what the server read of the body; bytes
    sent are the response's content length (a handler that writes with ``loop.sendfile`` must set
    it), or for chunked responses what the writer put on the wire, headers included.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _observe_aiohttp(metrics, request, exc.status, start, _sent(request, exc))
            raise
        except Exception:
            _observe_aiohttp(metrics, request, 500, start, 0)
            raise
        _observe_aiohttp(metrics, request, response.status, start, _sent(request, response))
        return response

    return middleware


def _observe_aiohttp(
    metrics: HttpMetrics, request: web.Request, status: int, start: float, sent: int
) -> None:
    resource = request.match_info.route.resource
    route = UNMATCHED if resource is None else resource.canonical
    received = request.content.total_bytes
    metrics.observe(route, request.method, status, time.perf_counter() - start, received, sent)


def _sent(request: web.Request, response: web.StreamResponse) -> int:
    if request.method == "HEAD":
        return 0
    length = response.content_length
    return response.body_length if length is None else length


# ASGI, typed structurally (as starlette.types does) so that nothing here imports starlette.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class AsgiMiddleware:
    """A pure ASGI middleware timing and counting every HTTP request of the app it wraps.

    `route_of(scope)` is called after the app returned or raised, with the scope dict this
    middleware passed to the app (routers record their match in it); it returns the matched
    route's template, such as ``"/v1/buckets/{bucket}"``, or None when no route matched. For
    FastAPI: ``lambda scope: getattr(scope.get("route"), "path", None)``.

    Bytes received are the bodies of ``http.request`` messages the app read; bytes sent the
    bodies of ``http.response.body`` messages; the status is that of ``http.response.start``,
    or 500 if the app raised or returned before starting a response (the server answers 500
    then). Exceptions propagate unchanged. Lifespan and websocket scopes pass through untouched.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: HttpMetrics,
        route_of: Callable[[Scope], str | None],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.route_of = route_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        received = 0
        sent = 0
        status = 500

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal sent, status
            kind = message["type"]
            if kind == "http.response.body":
                sent += len(message.get("body", b""))
            elif kind == "http.response.start":
                status = message["status"]
            await send(message)

        # Not on cancellation (server shutdown): that request got no answer to count.
        try:
            await self.app(scope, counting_receive, counting_send)
        except Exception:
            self._observe(scope, status, start, received, sent)
            raise
        self._observe(scope, status, start, received, sent)

    def _observe(self, scope: Scope, status: int, start: float, received: int, sent: int) -> None:
        method = scope["method"]
        self.metrics.observe(
            self.route_of(scope) or UNMATCHED,
            method,
            status,
            time.perf_counter() - start,
            received,
            0 if method == "HEAD" else sent,
        )


class ChoreMetrics:
    """The chore observer: runs by outcome and cycle durations of a peer's background chores."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._runs = Counter(
            "metadisk_chore_runs",
            "Chore cycles run, by chore and outcome.",
            ("chore", "outcome"),
            registry=registry,
        )
        self._duration = Histogram(
            "metadisk_chore_duration_seconds",
            "Time one chore cycle took.",
            ("chore",),
            buckets=CHORE_BUCKETS,
            registry=registry,
        )

    def cycle_done(self, chore: str, outcome: str, seconds: float) -> None:
        self._runs.labels(chore, outcome).inc()
        self._duration.labels(chore).observe(seconds)


GaugeRead = Callable[[], Mapping[tuple[str, ...], float] | float]


class CallbackGauge:
    """A gauge whose values `read` returns at scrape time, from wherever they live.

    `read` returns one value (no labels) or a mapping from label values, in the order of
    `labelnames`, to values. It runs on the scraping thread, so it must be quick: a cached value,
    an in-memory count, a statvfs. If it raises, the failure is logged once per streak of
    failures and the gauge has no samples in that scrape; the rest of the scrape is unaffected.
    """

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], read: GaugeRead
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._read = read
        self._failing = False

    def describe(self) -> Iterable[Metric]:
        # what the registry checks names with, so registering does not call `read`
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        try:
            values = self._read()
            if isinstance(values, Mapping):
                for labels, value in values.items():
                    if len(labels) != len(self.labelnames):
                        raise ValueError(f"labels {labels!r} do not match {self.labelnames!r}")
                    family.add_metric(labels, value)
            elif self.labelnames:
                raise ValueError(f"a single value for a gauge labelled {self.labelnames!r}")
            else:
                family.add_metric((), values)
        except Exception:
            if not self._failing:
                log.exception("reading gauge %s failed; no samples until it works", self.name)
            self._failing = True
            return [self._family()]
        self._failing = False
        return [family]

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)


def gauge_callback(
    registry: CollectorRegistry,
    name: str,
    documentation: str,
    labelnames: Sequence[str],
    read: GaugeRead,
) -> CallbackGauge:
    """Register a `CallbackGauge` in `registry` and return it."""
    gauge = CallbackGauge(name, documentation, labelnames, read)
    registry.register(gauge)
    return gauge


def scrape_allowed(remote: str | None, authorization: str, token: str) -> bool:
    """Whether a scrape may be answered: from loopback always, from elsewhere only with
    ``Authorization: Bearer <token>`` when a token is set."""
    if is_loopback(remote):
        return True
    return bool(token) and hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode())


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The registry's metrics in the Prometheus text format, and that format's content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


def aiohttp_metrics_route(
    registry: CollectorRegistry,
    path: str = METRICS_PATH,
    *,
    allow: Callable[[web.Request], bool],
) -> web.RouteDef:
    """``GET path``: the exposition, to scrapers `allow` accepts; 403 ``not-local`` to others."""

    async def scrape(request: web.Request) -> web.Response:
        if not allow(request):
            return web.json_response(
                {"error": {"code": "not-local", "message": "metrics are not served to you"}},
                status=403,
            )
        body, content_type = exposition(registry)
        return web.Response(body=body, headers={"Content-Type": content_type})

    return web.get(path, scrape)
