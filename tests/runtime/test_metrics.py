"""Prometheus metrics: real aiohttp servers on loopback, a hand-written ASGI app, scrapes parsed
back with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from metadisk.runtime.logs import ACCESS_LOGGER, FIELDS_ATTR
from metadisk.runtime.metrics import (
    METRICS_PATH,
    UNMATCHED,
    AsgiMiddleware,
    ChoreMetrics,
    HttpMetrics,
    aiohttp_metrics_route,
    aiohttp_middleware,
    exposition,
    gauge_callback,
    scrape_allowed,
)

PIECE_ROUTE = "/v1/pieces/{piece_id}"
FILE_ROUTE = "/v1/files/{name}"


def scrape(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the registry's exposition, read back by prometheus_client's parser."""
    body, _ = exposition(registry)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return scrape(registry).get((name, frozenset(labels.items())))


def requests(registry: CollectorRegistry, route: str, method: str, status: int) -> float | None:
    return sample(
        registry,
        "metadisk_http_requests_total",
        role="farmer",
        route=route,
        method=method,
        status=str(status),
    )


# -- aiohttp ---------------------------------------------------------------------------------


class Boom(Exception):
    pass


@dataclass
class Farmer:
    """An aiohttp app shaped like the farmer's, with metrics, served on an ephemeral port."""

    client: TestClient[web.Request, web.Application]
    registry: CollectorRegistry
    escaped: list[BaseException]  # exceptions that left the metrics middleware
    allowed: list[bool]  # what the scrape route's `allow` answers


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, *, access_log: bool) -> AsyncIterator[Farmer]:
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry, "farmer", access_log=access_log)
    escaped: list[BaseException] = []
    allowed = [True]
    blob = tmp_path / "blob"
    blob.write_bytes(bytes(range(256)) * 1024)

    @web.middleware
    async def witness(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # outside the metrics middleware: what it lets through
        try:
            return await handler(request)
        except Exception as exc:
            escaped.append(exc)
            raise

    async def put_piece(request: web.Request) -> web.Response:
        size = 0
        async for chunk in request.content.iter_chunked(65536):
            size += len(chunk)
        return web.json_response({"size": size})

    async def get_piece(request: web.Request) -> web.Response:
        return web.Response(body=b"p" * 1000)

    async def send_file(request: web.Request) -> web.StreamResponse:
        size = blob.stat().st_size
        response = web.StreamResponse()
        response.content_length = size
        await response.prepare(request)
        assert request.transport is not None
        with blob.open("rb") as file:
            await asyncio.get_running_loop().sendfile(request.transport, file, 0, size)
        await response.write_eof()
        return response

    async def forbidden(request: web.Request) -> web.Response:
        raise web.HTTPForbidden(text="not yours")

    async def boom(request: web.Request) -> web.Response:
        raise Boom("handler failed")

    app = web.Application(middlewares=[witness, aiohttp_middleware(metrics)])
    app.add_routes(
        [
            web.put(PIECE_ROUTE, put_piece),
            web.get(PIECE_ROUTE, get_piece),
            web.get(FILE_ROUTE, send_file),
            web.get("/v1/forbidden", forbidden),
            web.get("/v1/boom", boom),
            aiohttp_metrics_route(registry, allow=lambda request: allowed[0]),
        ]
    )
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield Farmer(client, registry, escaped, allowed)


@pytest.fixture
async def farmer(tmp_path: Path) -> AsyncIterator[Farmer]:
    async with serving(tmp_path, access_log=False) as served:
        yield served


@pytest.fixture
async def logged_farmer(tmp_path: Path) -> AsyncIterator[Farmer]:
    async with serving(tmp_path, access_log=True) as served:
        yield served


async def test_put_counts_the_body_bytes_received(farmer: Farmer) -> None:
    body = b"x" * 300_000
    async with farmer.client.put("/v1/pieces/ab12", data=body) as response:
        assert response.status == 200
        answer = await response.read()
    registry = farmer.registry
    assert requests(registry, PIECE_ROUTE, "PUT", 200) == 1
    received = sample(
        registry, "metadisk_http_received_bytes_total", role="farmer", route=PIECE_ROUTE
    )
    assert received == len(body)
    sent = sample(registry, "metadisk_http_sent_bytes_total", role="farmer", route=PIECE_ROUTE)
    assert sent == len(answer)
    count = sample(
        registry,
        "metadisk_http_request_duration_seconds_count",
        role="farmer",
        route=PIECE_ROUTE,
        method="PUT",
    )
    assert count == 1


async def test_get_counts_the_bytes_sent_and_head_sends_none(farmer: Farmer) -> None:
    async with farmer.client.get("/v1/pieces/ab12") as response:
        assert len(await response.read()) == 1000
    async with farmer.client.head("/v1/pieces/ab12") as response:
        assert response.status == 200
    registry = farmer.registry
    assert requests(registry, PIECE_ROUTE, "GET", 200) == 1
    assert requests(registry, PIECE_ROUTE, "HEAD", 200) == 1
    sent = sample(registry, "metadisk_http_sent_bytes_total", role="farmer", route=PIECE_ROUTE)
    assert sent == 1000
    received = sample(
        registry, "metadisk_http_received_bytes_total", role="farmer", route=PIECE_ROUTE
    )
    assert received == 0


async def test_sendfile_response_is_counted_by_its_content_length(farmer: Farmer) -> None:
    async with farmer.client.get("/v1/files/blob") as response:
        assert response.status == 200
        body = await response.read()
    assert len(body) == 256 * 1024
    sent = sample(
        farmer.registry, "metadisk_http_sent_bytes_total", role="farmer", route=FILE_ROUTE
    )
    assert sent == len(body)


async def test_unmatched_requests_share_one_label(farmer: Farmer) -> None:
    for path in ("/v1/nope/photos", "/v1/secret-bucket-name/key"):
        async with farmer.client.get(path) as response:
            assert response.status == 404
    assert requests(farmer.registry, UNMATCHED, "GET", 404) == 2
    routes = {
        dict(labels).get("route") for name, labels in scrape(farmer.registry) if "http" in name
    }
    assert not any(route and "bucket" in route for route in routes)


async def test_raised_http_exception_is_counted_with_its_status(farmer: Farmer) -> None:
    async with farmer.client.get("/v1/forbidden") as response:
        assert response.status == 403
        body = await response.read()
    assert requests(farmer.registry, "/v1/forbidden", "GET", 403) == 1
    sent = sample(
        farmer.registry, "metadisk_http_sent_bytes_total", role="farmer", route="/v1/forbidden"
    )
    assert sent == len(body)
    assert len(farmer.escaped) == 1 and isinstance(farmer.escaped[0], web.HTTPForbidden)


async def test_plain_exception_is_counted_as_500_and_propagates(farmer: Farmer) -> None:
    async with farmer.client.get("/v1/boom") as response:
        assert response.status == 500
    assert requests(farmer.registry, "/v1/boom", "GET", 500) == 1
    assert len(farmer.escaped) == 1
    assert type(farmer.escaped[0]) is Boom and str(farmer.escaped[0]) == "handler failed"


async def test_scrape_route_serves_the_exposition_when_allowed(farmer: Farmer) -> None:
    async with farmer.client.get("/v1/pieces/ab12") as response:
        await response.read()
    async with farmer.client.get(METRICS_PATH) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
        text = await response.text()
    families = {family.name for family in text_string_to_metric_families(text)}
    assert {"metadisk_http_requests", "metadisk_http_request_duration_seconds"} <= families


async def test_scrape_refused_by_allow_gets_403_json(farmer: Farmer) -> None:
    farmer.allowed[0] = False
    async with farmer.client.get(METRICS_PATH) as response:
        assert response.status == 403
        answer = await response.json()
    assert answer["error"]["code"] == "not-local"
    assert answer["error"]["message"]
    assert requests(farmer.registry, METRICS_PATH, "GET", 403) == 1


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == ACCESS_LOGGER]


async def test_access_log_line_per_request_when_switched_on(
    logged_farmer: Farmer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    async with logged_farmer.client.put("/v1/pieces/ab12", data=b"y" * 10) as response:
        answer = await response.read()
    [record] = access_records(caplog)
    fields = getattr(record, FIELDS_ATTR)
    assert record.levelno == logging.INFO
    assert {key: value for key, value in fields.items() if key != "seconds"} == {
        "method": "PUT",
        "route": PIECE_ROUTE,  # the template, never /v1/pieces/ab12
        "status": 200,
        "bytes_in": 10,
        "bytes_out": len(answer),
        "role": "farmer",
    }
    assert fields["seconds"] >= 0


async def test_no_access_log_when_switched_off(
    farmer: Farmer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with farmer.client.get("/v1/pieces/ab12") as response:
        await response.read()
    assert access_records(caplog) == []
    assert requests(farmer.registry, PIECE_ROUTE, "GET", 200) == 1


# -- ASGI ------------------------------------------------------------------------------------

Message = dict[str, Any]


def http_scope(method: str = "PUT", path: str = "/v1/buckets/photos") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "headers": []}


def route_of(scope: dict[str, Any]) -> str | None:
    route = scope.get("route_template")
    return route if isinstance(route, str) else None


@dataclass
class Peer:
    """The server's side of one ASGI call: the request messages it hands out, what it got sent."""

    incoming: list[Message]
    sent: list[Message] = field(default_factory=list)

    async def receive(self) -> Message:
        return self.incoming.pop(0) if self.incoming else {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)


async def bucket_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body, records its route as routers do, answers in two body messages."""
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    scope["route_template"] = "/v1/buckets/{bucket}"
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"created:", "more_body": True})
    await send({"type": "http.response.body", "body": body[:4]})


def bridge_sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return sample(registry, name, role="bridge", **labels)


async def test_asgi_counts_bytes_status_and_route() -> None:
    registry = CollectorRegistry()
    app = AsgiMiddleware(bucket_app, HttpMetrics(registry, "bridge"), route_of)
    peer = Peer(
        [
            {"type": "http.request", "body": b"abc", "more_body": True},
            {"type": "http.request", "body": b"defgh", "more_body": False},
        ]
    )
    await app(http_scope(), peer.receive, peer.send)

    assert [message.get("body") for message in peer.sent] == [None, b"created:", b"abcd"]
    route = "/v1/buckets/{bucket}"
    total = "metadisk_http_requests_total"
    assert bridge_sample(registry, total, route=route, method="PUT", status="201") == 1
    received = bridge_sample(registry, "metadisk_http_received_bytes_total", route=route)
    assert received == 8
    assert bridge_sample(registry, "metadisk_http_sent_bytes_total", route=route) == 12
    count = "metadisk_http_request_duration_seconds_count"
    assert bridge_sample(registry, count, route=route, method="PUT") == 1


async def test_asgi_request_no_route_matched_is_unmatched() -> None:
    async def not_found(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    registry = CollectorRegistry()
    app = AsgiMiddleware(not_found, HttpMetrics(registry, "bridge"), route_of)
    peer = Peer([{"type": "http.request", "body": b""}])
    await app(http_scope("GET", "/v1/secret-bucket"), peer.receive, peer.send)
    total = "metadisk_http_requests_total"
    assert bridge_sample(registry, total, route=UNMATCHED, method="GET", status="404") == 1


async def test_asgi_app_raising_is_counted_and_reraised() -> None:
    failure = Boom("app failed")

    async def fails_before_answering(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["route_template"] = "/v1/fails"
        raise failure

    async def fails_while_streaming(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["route_template"] = "/v1/streams"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise failure

    registry = CollectorRegistry()
    metrics = HttpMetrics(registry, "bridge")
    for inner in (fails_before_answering, fails_while_streaming):
        peer = Peer([{"type": "http.request", "body": b""}])
        with pytest.raises(Boom) as raised:
            await AsgiMiddleware(inner, metrics, route_of)(
                http_scope("GET"), peer.receive, peer.send
            )
        assert raised.value is failure
    total = "metadisk_http_requests_total"
    assert bridge_sample(registry, total, route="/v1/fails", method="GET", status="500") == 1
    assert bridge_sample(registry, total, route="/v1/streams", method="GET", status="200") == 1
    assert bridge_sample(registry, "metadisk_http_sent_bytes_total", route="/v1/streams") == 4


async def test_asgi_non_http_scopes_pass_through_untouched() -> None:
    calls: list[tuple[object, object, object]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        calls.append((scope, receive, send))

    registry = CollectorRegistry()
    middleware = AsgiMiddleware(app, HttpMetrics(registry, "bridge"), route_of)
    peer = Peer([])
    for kind in ("lifespan", "websocket"):
        scope = {"type": kind}
        await middleware(scope, peer.receive, peer.send)
        assert calls[-1][0] is scope
        assert calls[-1][1] == peer.receive and calls[-1][2] == peer.send
    assert not [name for name, _ in scrape(registry) if name == "metadisk_http_requests_total"]


# -- the rest --------------------------------------------------------------------------------


def test_methods_outside_the_standard_set_share_one_label() -> None:
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry, "farmer")
    metrics.observe(UNMATCHED, "BREW", 405, 0.001, 0, 0)
    metrics.observe(UNMATCHED, "X-ANYTHING", 405, 0.001, 0, 0)
    assert requests(registry, UNMATCHED, "other", 405) == 2


def test_two_registries_in_one_process_do_not_clash() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    one, two = HttpMetrics(first, "farmer"), HttpMetrics(second, "farmer")
    ChoreMetrics(first)
    ChoreMetrics(second)
    one.observe(PIECE_ROUTE, "GET", 200, 0.01, 0, 100)
    two.observe(PIECE_ROUTE, "GET", 200, 0.01, 0, 7)
    two.observe(PIECE_ROUTE, "GET", 200, 0.01, 0, 7)
    assert requests(first, PIECE_ROUTE, "GET", 200) == 1
    assert requests(second, PIECE_ROUTE, "GET", 200) == 2
    assert sample(first, "metadisk_http_sent_bytes_total", role="farmer", route=PIECE_ROUTE) == 100
    assert sample(second, "metadisk_http_sent_bytes_total", role="farmer", route=PIECE_ROUTE) == 14
    with pytest.raises(ValueError, match="Duplicated"):
        HttpMetrics(first, "farmer")  # one set of HTTP metrics per registry


def test_chore_metrics_count_runs_by_outcome_and_time_cycles() -> None:
    registry = CollectorRegistry()
    chores = ChoreMetrics(registry)
    chores.cycle_done("piece-deletion", "ok", 0.25)
    chores.cycle_done("piece-deletion", "ok", 0.5)
    chores.cycle_done("piece-deletion", "error", 2.0)
    runs = "metadisk_chore_runs_total"
    assert sample(registry, runs, chore="piece-deletion", outcome="ok") == 2
    assert sample(registry, runs, chore="piece-deletion", outcome="error") == 1
    duration = "metadisk_chore_duration_seconds"
    assert sample(registry, f"{duration}_count", chore="piece-deletion") == 3
    assert sample(registry, f"{duration}_sum", chore="piece-deletion") == 2.75
    assert sample(registry, f"{duration}_bucket", chore="piece-deletion", le="0.5") == 2


def test_callback_gauges_are_read_at_scrape_time() -> None:
    registry = CollectorRegistry()
    depth = {("deletes",): 3.0, ("reclaim",): 0.0}
    reads = 0

    def free() -> float:
        nonlocal reads
        reads += 1
        return 1e9

    gauge_callback(registry, "metadisk_queue_depth", "Rows queued.", ("queue",), lambda: depth)
    gauge_callback(registry, "metadisk_disk_free_bytes", "Free disk.", (), free)
    assert reads == 0  # registering does not read
    assert sample(registry, "metadisk_queue_depth", queue="deletes") == 3
    assert sample(registry, "metadisk_disk_free_bytes") == 1e9
    depth[("deletes",)] = 5.0
    assert sample(registry, "metadisk_queue_depth", queue="deletes") == 5
    assert reads == 3  # once per scrape


def test_a_failing_gauge_read_leaves_the_scrape_working_and_logs_once_per_streak(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    broken = True

    def pool_in_use() -> float:
        if broken:
            raise ConnectionError("database is down")
        return 4.0

    chores = ChoreMetrics(registry)
    chores.cycle_done("reclaim", "ok", 0.1)
    gauge_callback(registry, "metadisk_db_pool_in_use", "Connections in use.", (), pool_in_use)
    failures = "reading gauge metadisk_db_pool_in_use failed"

    with caplog.at_level(logging.WARNING, logger="metadisk.runtime.metrics"):
        for _ in range(3):
            samples = scrape(registry)
            assert ("metadisk_db_pool_in_use", frozenset()) not in samples
            key = (
                "metadisk_chore_runs_total",
                frozenset({("chore", "reclaim"), ("outcome", "ok")}),
            )
            assert samples[key] == 1
        assert sum(failures in record.getMessage() for record in caplog.records) == 1

        broken = False
        assert sample(registry, "metadisk_db_pool_in_use") == 4
        broken = True
        assert sample(registry, "metadisk_db_pool_in_use") is None
        assert sum(failures in record.getMessage() for record in caplog.records) == 2


def test_gauge_returning_values_for_the_wrong_labels_is_a_failed_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    gauge_callback(registry, "metadisk_wrong", "Two labels.", ("a", "b"), lambda: {("x",): 1.0})
    gauge_callback(registry, "metadisk_single", "Labelled.", ("a",), lambda: 1.0)
    with caplog.at_level(logging.WARNING, logger="metadisk.runtime.metrics"):
        samples = scrape(registry)
    assert not [name for name, _ in samples if name in ("metadisk_wrong", "metadisk_single")]
    assert len(caplog.records) == 2


def test_exposition_is_the_text_format_and_its_content_type() -> None:
    registry = CollectorRegistry()
    HttpMetrics(registry, "farmer").observe(PIECE_ROUTE, "GET", 200, 0.002, 0, 1)
    body, content_type = exposition(registry)
    assert content_type == CONTENT_TYPE_LATEST
    [family] = [
        family
        for family in text_string_to_metric_families(body.decode())
        if family.name == "metadisk_http_requests"
    ]
    assert [(s.labels["route"], s.value) for s in family.samples if s.name.endswith("_total")] == [
        (PIECE_ROUTE, 1.0)
    ]


@pytest.mark.parametrize(
    ("remote", "authorization", "token", "allowed"),
    [
        ("127.0.0.1", "", "", True),
        ("::1", "", "", True),
        ("127.8.9.10", "", "secret", True),
        ("203.0.113.9", "", "", False),  # no token set: loopback only
        ("203.0.113.9", "Bearer secret", "", False),
        ("203.0.113.9", "Bearer secret", "secret", True),
        ("203.0.113.9", "Bearer wrong", "secret", False),
        ("203.0.113.9", "secret", "secret", False),
        (None, "", "", False),
        ("not an address", "", "", False),
    ],
)
def test_scrape_allowed(remote: str | None, authorization: str, token: str, allowed: bool) -> None:
    assert scrape_allowed(remote, authorization, token) is allowed
