"""A bridge API process: every service the JSON API needs, as attributes, and the HTTP app.

API processes are stateless: everything is in the database, so any number of them can serve one
network behind a load balancer. They run no background work; that is the worker's
(`metadisk.bridge.worker`), and `metadisk bridge run` runs both in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator

import uvicorn
from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry
from starlette.routing import BaseRoute, Route

from metadisk import __version__
from metadisk.bridge.accounts import endpoint as accounts_endpoint
from metadisk.bridge.accounts.hashing import Busy, HashingPool
from metadisk.bridge.accounts.service import AccountsService
from metadisk.bridge.auth import endpoint as auth_endpoint
from metadisk.bridge.auth.kek import KeyWrap, load_kek
from metadisk.bridge.auth.service import KeyAuthority
from metadisk.bridge.buckets import endpoint as buckets_endpoint
from metadisk.bridge.buckets.service import BucketsService
from metadisk.bridge.common import wall_clock
from metadisk.bridge.config import BridgeConfig
from metadisk.bridge.connections import ConnectionLimits, protocol_for
from metadisk.bridge.console import ConsoleDeps
from metadisk.bridge.console import router as console_router
from metadisk.bridge.console.history import UsageHistory
from metadisk.bridge.db.accounts import AccountsStore
from metadisk.bridge.db.auth import AuthStore
from metadisk.bridge.db.buckets import BucketsStore
from metadisk.bridge.db.engine import Database
from metadisk.bridge.db.exit import ExitStore
from metadisk.bridge.db.health import HealthStore
from metadisk.bridge.db.metainfo import MetainfoStore
from metadisk.bridge.db.overlay import OverlayStore
from metadisk.bridge.db.repair import RepairStore
from metadisk.bridge.edge import Edge
from metadisk.bridge.exit import endpoint as exit_endpoint
from metadisk.bridge.exit.service import ExitService
from metadisk.bridge.health import endpoint as health_endpoint
from metadisk.bridge.health.reports import TransferReports
from metadisk.bridge.health.service import HealthService
from metadisk.bridge.http import create_app, error_response, route_of, run_in_thread, run_inline
from metadisk.bridge.info import router as info_router
from metadisk.bridge.metainfo import endpoint as metainfo_endpoint
from metadisk.bridge.metainfo.objects import ObjectsService
from metadisk.bridge.metainfo.uploads import UploadsService
from metadisk.bridge.metrics import BridgeMetrics, pool_gauges
from metadisk.bridge.orders.service import OrderSigner
from metadisk.bridge.overlay import endpoint as overlay_endpoint
from metadisk.bridge.overlay.pinger import HTTPPinger
from metadisk.bridge.overlay.service import OverlayService
from metadisk.bridge.ratelimit import RateLimiter
from metadisk.bridge.repair import endpoint as repair_endpoint
from metadisk.bridge.repair.status import RepairStatus
from metadisk.core.identity import Identity
from metadisk.runtime.logs import event
from metadisk.runtime.metrics import (
    METRICS_PATH,
    UNMATCHED,
    AsgiMiddleware,
    HttpMetrics,
    exposition,
    scrape_allowed,
)
from metadisk.wire.dataplane import PieceClient

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the process's main loop owns the signals (from
    its first moment, so a SIGTERM that arrives while the server is still starting is not lost)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiPeer:
    """One bridge API process: services as attributes, `serve()` to answer HTTP, `aclose()`."""

    def __init__(
        self,
        config: BridgeConfig,
        identity: Identity,
        *,
        db: Database | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], int] = wall_clock,
        kek: KeyWrap | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.clock = clock
        self.kek = kek or load_kek(config)
        self._owns_db = db is None
        self.db = db or Database(config.database)
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.metrics = BridgeMetrics(self.registry)
        self.http_metrics = HttpMetrics(
            self.registry, "bridge", access_log=config.server.access_log
        )
        if self._owns_db:  # a shared database is counted, and closed, by whoever made it
            pool_gauges(self.registry, self.db.pool_use)

        self.authority = KeyAuthority(AuthStore(self.db, self.kek), config.accounts.key_cache_ttl)
        self.hashing = HashingPool(config.accounts.hash_threads, config.accounts.hash_queue)
        self.accounts = AccountsService(
            AccountsStore(self.db, self.kek), config.accounts, on_key_change=self.authority.forget
        )
        self.pieces = PieceClient(user_agent=f"metadisk-bridge/{__version__}")
        self.overlay = OverlayService(
            OverlayStore(self.db), config.nodes, HTTPPinger(self.pieces), config.health
        )
        self.signer = OrderSigner(
            identity,
            config.objects.order_ttl,
            signed=lambda action: self.metrics.order_limits.labels(action.name.lower()).inc(),
        )
        self.buckets = BucketsService(BucketsStore(self.db), config.objects)
        metainfo = MetainfoStore(self.db)
        self.health_store = HealthStore(self.db)
        self.reports = TransferReports(self.health_store, config.health)
        self.health = HealthService(
            self.health_store,
            config.nodes,
            identity.node_id,
            config.server.admin_token,
        )
        # Why a ping-back failed is for operators and the node itself (overlay/service.py).
        self.overlay.admit_readers(identity.node_id, self.health.check_admin)
        self.uploads = UploadsService(
            metainfo,
            self.overlay,
            self.signer,
            config.objects,
            metrics=self.metrics,
            reports=self.reports,
        )
        self.objects = ObjectsService(
            metainfo, self.overlay, self.signer, config.objects, reports=self.reports
        )
        self.exits = ExitService(
            ExitStore(self.db), self.overlay, self.signer, config.nodes, config.repair
        )

        # Measured (docs/bridge.md): SQLite queries are cheaper than a thread hop; PostgreSQL
        # queries wait on the network, so they go to the threadpool.
        run = run_inline if self.db.is_sqlite else run_in_thread
        self.limiter = RateLimiter()  # the edge's, shared with the console's login forms
        self.history = UsageHistory(self.db, clock)
        console = ConsoleDeps(
            accounts=self.accounts,
            hashing=self.hashing,
            usage=metainfo.project_usage,
            history=self.history,
            health=self.health,
            repair=RepairStore(self.db),
            limiter=self.limiter,
            server=config.server,
            clock=clock,
            run=run,
        )
        self.app: FastAPI = create_app(
            routers := [
                # The object routes first: FastAPI tries routes in order on every request.
                metainfo_endpoint.router(self.uploads, self.objects, self.authority, clock, run),
                buckets_endpoint.router(self.buckets, self.authority, clock, run),
                auth_endpoint.router(self.authority, clock, run),
                accounts_endpoint.key_router(self.accounts, self.authority, run),
                info_router(identity, config.nodes.difficulty, __version__),
                accounts_endpoint.router(self.accounts, clock, self.hashing),
                overlay_endpoint.router(self.overlay, clock),
                health_endpoint.router(self.health, clock, run),
                repair_endpoint.router(
                    RepairStatus(RepairStore(self.db), self.health.check_admin), run
                ),
                # A batch of node selections and signatures: tens of ms, kept off the loop.
                exit_endpoint.router(self.exits, clock, run_in_thread),
                console_router(console),  # the web console's pages (/console/)
            ],
            __version__,
            self.metrics,
        )
        self.app.add_api_route(METRICS_PATH, self._scrape, methods=["GET"], include_in_schema=False)
        self.app.add_exception_handler(Busy, self._busy)
        # What `serve` answers with: the app behind the edge's limits (bridge/edge.py).
        # Every route of each path, for the Allow of a 405 (FastAPI names only the first).
        routes = [route for router in routers for route in router.routes]
        self.edge = Edge(
            self.app, config.server, self.metrics, _plain(routes), limiter=self.limiter
        )

    async def _busy(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Busy)
        route = route_of(request.scope) or UNMATCHED
        self.metrics.refusals.labels(route, exc.code).inc()
        event(log, logging.WARNING, "refused", method=request.method, route=route, status=503,
              code=exc.code)  # fmt: skip
        response = error_response(exc.status, exc.code, exc.message)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    async def _scrape(self, request: Request) -> Response:
        remote = request.client.host if request.client is not None else None
        authorization = request.headers.get("authorization", "")
        if not scrape_allowed(remote, authorization, self.config.server.metrics_token):
            return error_response(403, "not-local", "metrics answer loopback or a metrics token")
        body, content_type = exposition(self.registry)
        return Response(body, media_type=content_type)

    async def serve(self, sockets: list[socket.socket], stop: asyncio.Event) -> None:
        """Answer HTTP on `sockets` until `stop` is set; requests in flight get a few seconds."""
        limits = self.config.server
        connections = ConnectionLimits(
            limits.max_connections,
            limits.max_header_bytes,
            limits.header_timeout,
            refused=lambda code: self.metrics.refusals.labels(UNMATCHED, code).inc(),
        )
        server = _Server(
            uvicorn.Config(
                AsgiMiddleware(self.edge, self.http_metrics, route_of),
                http=protocol_for(connections),
                log_config=None,  # metadisk.runtime.logs configures logging
                access_log=False,  # the metrics middleware writes the access log
                lifespan="off",
                timeout_graceful_shutdown=5,
                ssl_certfile=self.config.server.tls_cert or None,
                ssl_keyfile=self.config.server.tls_key or None,
            )
        )

        async def stop_when_told() -> None:
            await stop.wait()
            server.should_exit = True

        watcher = asyncio.create_task(stop_when_told())
        try:
            await server.serve(sockets=sockets)
        finally:
            watcher.cancel()

    async def aclose(self) -> None:
        """Close in reverse order of construction."""
        try:
            await asyncio.to_thread(self.reports.flush, self.clock())
        except Exception as exc:  # closing goes on: what is lost only steered selection
            log.warning("transfer reports not written at close: %s", type(exc).__name__)
        await self.pieces.aclose()
        self.hashing.close()
        if self._owns_db:
            await asyncio.to_thread(self.db.close)


def _plain(routes: list[BaseRoute]) -> list[Route]:
    return [route for route in routes if isinstance(route, Route)]
