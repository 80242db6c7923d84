"""A bridge worker process: the network's background work, shared with other workers through
the database.

Its chores: reclaiming uploads left uncommitted past their deadline, sending queued piece
deletes to farmers, checking nodes' uptime and auditing them (`metadisk.bridge.health`), and
finding and rebuilding piece sets with too few healthy pieces (`metadisk.bridge.repair`), and
sending every node a filter of the pieces it keeps (`metadisk.bridge.gc`).
Each unit of work is claimed in the database (``SKIP LOCKED`` rows, leases on deletes, schedules
moved forward for checks and audits), so any number of workers, on any number of machines, share
one database without doing an item twice. A worker serves only ``/metrics`` (loopback, or with
the metrics token).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection

from aiohttp import web
from prometheus_client import CollectorRegistry

from metadisk import __version__
from metadisk.bridge.common import wall_clock
from metadisk.bridge.config import BridgeConfig
from metadisk.bridge.console.history import HISTORY_INTERVAL, UsageHistory
from metadisk.bridge.db.deletion import DeletionStore
from metadisk.bridge.db.engine import Database
from metadisk.bridge.db.exit import ExitStore
from metadisk.bridge.db.gc import GcStore
from metadisk.bridge.db.health import HealthStore
from metadisk.bridge.db.metainfo import MetainfoStore
from metadisk.bridge.db.overlay import OverlayStore
from metadisk.bridge.db.repair import RepairStore
from metadisk.bridge.deletion.chore import PieceDeleter
from metadisk.bridge.exit.service import ExitService
from metadisk.bridge.gc.chore import GarbageCollector
from metadisk.bridge.health.auditor import Auditor
from metadisk.bridge.health.uptime import UptimeChecker
from metadisk.bridge.metrics import WorkerMetrics, pool_gauges
from metadisk.bridge.orders.service import OrderSigner
from metadisk.bridge.overlay.pinger import HTTPPinger
from metadisk.bridge.overlay.service import OverlayService
from metadisk.bridge.reclaim.chore import UploadReclaimer
from metadisk.bridge.repair.checker import Checker, CheckReport
from metadisk.bridge.repair.repairer import Repairer, Target
from metadisk.core.identity import Identity
from metadisk.runtime.chore import Chore
from metadisk.runtime.lifecycle import Group
from metadisk.runtime.metrics import ChoreMetrics, aiohttp_metrics_route, scrape_allowed
from metadisk.runtime.server import AppServer
from metadisk.wire.dataplane import PieceClient


class WorkerPeer:
    """The bridge's chores as one peer: `start()`, `run()` until cancelled, `aclose()`."""

    def __init__(
        self,
        config: BridgeConfig,
        identity: Identity,
        *,
        db: Database | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], int] = wall_clock,
        serve_metrics: bool = True,
    ) -> None:
        self.config = config
        self.identity = identity
        self.clock = clock
        owns_db = db is None
        self.db = db or Database(config.database)
        self.registry = registry or CollectorRegistry(auto_describe=True)
        if owns_db:
            pool_gauges(self.registry, self.db.pool_use)
        self.metrics = WorkerMetrics(self.registry)
        chore_metrics = ChoreMetrics(self.registry)

        self.pieces = PieceClient(user_agent=f"metadisk-bridge-worker/{__version__}")
        self.signer = OrderSigner(identity, config.objects.order_ttl)
        self.metainfo_store = MetainfoStore(self.db)
        self.deletion_store = DeletionStore(self.db)
        self.reclaimer = UploadReclaimer(
            self.metainfo_store, clock, reclaimed=self.metrics.uploads_reclaimed.inc
        )
        self.deleter = PieceDeleter(
            self.deletion_store,
            self.signer,
            self.pieces,
            config.chores,
            clock,
            observe=lambda outcome, count=1: self.metrics.piece_deletes.labels(outcome).inc(count),
        )

        self.health_store = HealthStore(self.db)
        self.auditor = Auditor(
            self.health_store,
            self.signer,
            self.pieces,
            config.health,
            clock,
            observe=lambda outcome: self.metrics.audits.labels(outcome).inc(),
        )
        self.uptime = UptimeChecker(
            self.health_store,
            self.pieces,
            config.health,
            clock,
            observe=lambda outcome: self.metrics.uptime_checks.labels(outcome).inc(),
        )

        self.overlay = OverlayService(
            OverlayStore(self.db), config.nodes, HTTPPinger(self.pieces), config.health
        )
        self.repair_store = RepairStore(self.db)
        online_window = config.nodes.online_window
        self.exits = ExitService(
            ExitStore(self.db), self.overlay, self.signer, config.nodes, config.repair
        )
        self.checker = Checker(
            self.repair_store,
            clock,
            online_window,
            before_pass=self.exits.fail_stalled,  # their pieces then count as lost: repair
            observe=self._checked,
        )
        self.repairer = Repairer(
            self.repair_store,
            self.signer,
            self.pieces,
            self._select,
            config.repair,
            clock,
            online_window,
            observe=self._repaired,
        )
        self.gc_store = GcStore(self.db)
        self.collector = GarbageCollector(
            self.gc_store,
            identity,
            self.pieces,
            config.repair,
            clock,
            observe=lambda outcome: self.metrics.retain_requests.labels(outcome).inc(),
        )

        chores = config.chores
        self.reclaim_chore = Chore(
            "reclaim",
            chores.reclaim_interval,
            self._counted("uploads-expired", self.reclaimer.cycle, self._expired),
            observer=chore_metrics,
        )
        self.deletion_chore = Chore(
            "piece-deletion",
            chores.delete_interval,
            self._counted("piece-deletes", self.deleter.cycle, self.deletion_store.pending),
            observer=chore_metrics,
        )
        self.audit_chore = Chore(
            "audit", config.health.audit_interval, self.auditor.cycle, observer=chore_metrics
        )
        self.uptime_chore = Chore(
            "uptime", config.health.check_interval, self.uptime.cycle, observer=chore_metrics
        )
        self.checker_chore = Chore(
            "repair-checker", config.repair.check_interval, self.checker.cycle,
            observer=chore_metrics,
        )  # fmt: skip
        self.repair_chore = Chore(
            "repair", config.repair.repair_interval, self.repairer.cycle, observer=chore_metrics
        )
        self.gc_chore = Chore(
            "garbage-collection", config.repair.gc_interval, self.collector.cycle,
            observer=chore_metrics,
        )  # fmt: skip
        self.history = UsageHistory(self.db, clock)
        self.history_chore = Chore(
            "usage-history", HISTORY_INTERVAL, self.history.cycle, observer=chore_metrics
        )
        self.chores = (
            self.reclaim_chore,
            self.deletion_chore,
            self.uptime_chore,
            self.audit_chore,
            self.checker_chore,
            self.repair_chore,
            self.gc_chore,
            self.history_chore,
        )

        self.server: AppServer | None = None
        if serve_metrics:
            app = web.Application()
            app.add_routes([aiohttp_metrics_route(self.registry, allow=self._may_scrape)])
            self.server = AppServer(app, config.worker.host, config.worker.port)

        self.group = Group()
        if self.server is not None:
            self.group.add("metrics", start=self.server.start, close=self.server.close)
        for chore in self.chores:
            self.group.add(f"chore {chore.name}", run=chore.run)
        self.group.add("farmers", close=self.pieces.aclose)
        if owns_db:
            self.group.add("database", close=lambda: asyncio.to_thread(self.db.close))

    def _select(
        self,
        count: int,
        piece_size: int,
        now: int,
        exclude: Collection[bytes],
        exclude_nets: Collection[str],
    ) -> list[Target]:
        chosen = self.overlay.select(count, 1, piece_size, now, exclude, exclude_nets)
        return [Target(c.node_id, c.public_key, c.address, c.last_net) for c in chosen]

    def _checked(self, report: CheckReport) -> None:
        gauge = self.metrics.piece_sets
        gauge.labels("all").set(report.piece_sets)
        gauge.labels("injured").set(report.injured)
        gauge.labels("lost").set(report.lost)

    def _repaired(self, outcome: str, count: int) -> None:
        if outcome in ("downloaded", "uploaded"):
            self.metrics.repair_bytes.labels(outcome).inc(count)
        else:
            self.metrics.repairs.labels(outcome).inc(count)

    def _expired(self) -> int:
        return self.metainfo_store.expired_uploads(self.clock())

    def _counted(
        self, queue: str, cycle: Callable[[], Awaitable[object]], depth: Callable[[], int]
    ) -> Callable[[], Awaitable[object]]:
        """`cycle`, then the queue's depth counted for ``/metrics``."""
        gauge = self.metrics.queue_depth.labels(queue)

        async def run() -> object:
            result = await cycle()
            gauge.set(await asyncio.to_thread(depth))
            return result

        return run

    def _may_scrape(self, request: web.Request) -> bool:
        authorization = request.headers.get("Authorization", "")
        return scrape_allowed(request.remote, authorization, self.config.server.metrics_token)

    @property
    def metrics_url(self) -> str | None:
        if self.server is None or self.server.port is None:
            return None
        host = self.config.worker.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.server.port}"

    async def start(self) -> None:
        await self.group.start()

    async def run(self) -> None:
        await self.group.run()

    async def aclose(self) -> None:
        await self.group.aclose()
