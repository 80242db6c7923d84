"""The farmer process: services as attributes, built in order, run together, closed in reverse.

Usage::

    peer = Peer(config, identity)
    try:
        await peer.start()  # opens the database, repairs after a crash, binds the port
        await peer.run()  # chores and server until cancelled
    finally:
        await peer.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

import metadisk
from metadisk.core.identity import Identity
from metadisk.farmer.config import DISK_RESERVE, LISTEN_FILE, FarmerConfig, format_size
from metadisk.farmer.contact.endpoint import NodeEndpoint
from metadisk.farmer.contact.service import ContactService, Space
from metadisk.farmer.dashboard import Dashboard
from metadisk.farmer.db import FarmerDB
from metadisk.farmer.errors import SetupError
from metadisk.farmer.exit.endpoint import ExitEndpoint
from metadisk.farmer.exit.service import ExitService
from metadisk.farmer.http import (
    Deadlines,
    chore_routes,
    error_middleware,
    from_loopback,
    malformed_page,
)
from metadisk.farmer.metrics import FarmerMetrics
from metadisk.farmer.pieces.endpoint import PieceEndpoint
from metadisk.farmer.pieces.service import PieceService
from metadisk.farmer.pieces.store import PieceStore
from metadisk.farmer.retain.endpoint import RetainEndpoint
from metadisk.farmer.retain.service import RETRY_INTERVAL, RetainService
from metadisk.farmer.setup import remove_quietly, write_atomic
from metadisk.farmer.tls import server_context
from metadisk.farmer.usage.endpoint import StatusEndpoint
from metadisk.farmer.usage.service import UsageService
from metadisk.runtime.chore import Chore
from metadisk.runtime.lifecycle import Group
from metadisk.runtime.metrics import (
    ChoreMetrics,
    HttpMetrics,
    aiohttp_metrics_route,
    aiohttp_middleware,
    gauge_callback,
)
from metadisk.runtime.net import WILDCARDS, BindError, announce_listening
from metadisk.runtime.server import AppServer

log = logging.getLogger("metadisk.farmer")

DB_FILE = "farmer.db"


class Peer:
    """A storage node."""

    def __init__(
        self,
        config: FarmerConfig,
        identity: Identity,
        *,
        clock: Callable[[], float] = time.time,
        access_log: bool = False,
    ) -> None:
        self.config = config
        self.identity = identity
        self._clock = clock
        self._started_at = time.monotonic()

        self.registry = CollectorRegistry(auto_describe=True)
        self.metrics = FarmerMetrics(self.registry)
        self.http_metrics = HttpMetrics(self.registry, "farmer", access_log=access_log)
        chore_metrics = ChoreMetrics(self.registry)

        self.db = FarmerDB(config.data_dir / DB_FILE)
        self.usage = UsageService(self.db, clock=clock)
        self.store = PieceStore(config.data_dir)
        self.pieces = PieceService(
            identity=identity,
            store=self.store,
            db=self.db,
            usage=self.usage,
            trusted_bridges=config.trusted_bridges(),
            allocated=config.allocated,
            trash_grace=config.trash_grace,
            direct_io=config.direct_io,
            clock=clock,
            metrics=self.metrics,
        )
        self.contact = ContactService(
            identity=identity,
            bridges=config.bridges,
            address=lambda: self.address,
            space=lambda: Space(config.allocated, self.pieces.free),
            clock=clock,
            interval=config.checkin_interval,
            timeout=config.checkin_timeout,
        )
        self._space_gauges()

        def chore(name: str, interval: float, cycle: Callable[[], Awaitable[object]]) -> Chore:
            return Chore(name, interval, cycle, observer=chore_metrics)

        self.checkin_chore = chore("checkin", config.checkin_interval, self.contact.checkin)
        self.expiry_chore = chore("expiry", config.expiry_interval, self.pieces.collect_expired)
        self.trash_chore = chore("trash", config.trash_interval, self.pieces.empty_trash)
        self.usage_chore = Chore(
            "usage",
            config.usage_flush_interval,
            self.usage.flush,
            run_at_start=False,
            observer=chore_metrics,
        )
        self.chores: tuple[Chore, ...] = (
            self.checkin_chore, self.expiry_chore, self.trash_chore, self.usage_chore,
        )  # fmt: skip

        deadlines = Deadlines(total=config.request_timeout, idle=config.body_idle_timeout)
        app = web.Application(
            middlewares=[
                aiohttp_middleware(self.http_metrics),
                error_middleware(self.metrics, deadlines),
            ]
        )
        pieces = PieceEndpoint(self.pieces, max_puts_per_address=config.max_puts_per_address)
        app.add_routes(pieces.routes())
        app.add_routes(NodeEndpoint(identity, self.contact).routes())
        status = StatusEndpoint(
            identity=identity,
            pieces=self.pieces,
            usage=self.usage,
            address=lambda: self.address,
            uptime=lambda: time.monotonic() - self._started_at,
        )
        app.add_routes(status.routes())
        # The operator's page, on a loopback listener of its own (farmer/dashboard).
        self.dashboard = (
            Dashboard(
                config=config.dashboard,
                identity=identity,
                bridges=config.bridges,
                report=status.report,
                last_checkin=self.contact.last_checkin,
                clock=clock,
            )
            if config.dashboard.enabled
            else None
        )
        # Garbage collection: the bridges' retain requests, run by a chore triggered on arrival.
        self.retain = RetainService(
            node_id=identity.node_id,
            pieces=self.pieces,
            usage=self.usage,
            trusted_bridges=config.trusted_bridges(),
            clock=clock,
        )
        self.retain_chore = Chore(
            "retain", RETRY_INTERVAL, self.retain.collect, run_at_start=False,
            observer=chore_metrics,
        )  # fmt: skip
        self.retain.attach(self.retain_chore)
        self.chores = (*self.chores, self.retain_chore)
        app.add_routes(RetainEndpoint(self.retain).routes())
        app.add_routes(chore_routes({chore.name: chore for chore in self.chores}))
        app.add_routes([aiohttp_metrics_route(self.registry, allow=from_loopback)])
        tls = server_context(identity, int(clock())) if config.tls else None
        self.server = AppServer(
            app,
            config.host,
            config.port,
            ssl_context=tls,
            handler_args={
                # aiohttp closes a connection idle in (or before) a request's headers this long
                "keepalive_timeout": config.header_timeout,
                "max_line_size": config.max_header_size,
                "max_field_size": config.max_header_size,
                "max_headers": config.max_headers,
            },
            error_page=malformed_page(self.metrics),
        )

        self.group = Group()
        self.group.add("data dir", start=lambda: asyncio.to_thread(check_data_dir, config.data_dir))
        self.group.add("database", start=self.db.open, close=self.db.close)
        self.group.add("pieces", start=self.pieces.start, close=self.pieces.close)
        # After the server stopped (closed before it), so the last requests' bandwidth counts.
        self.group.add("usage", start=_nothing, close=self.usage.flush)
        self.group.add(
            "space", start=lambda: asyncio.to_thread(check_space, config, self.usage.on_disk)
        )
        self.group.add("contact", start=self.contact.start, close=self.contact.close)
        self.group.add("server", start=self._serve, close=self.server.close)
        if self.dashboard is not None:
            self.group.add("dashboard", start=self._serve_dashboard, close=self.dashboard.close)
        for each in self.chores:
            self.group.add(f"chore {each.name}", run=each.run)

        # Graceful exit (farmer/exit): last to start, so its rounds find the server up, and
        # first to close. Check-ins skip the bridges whose exit ended.
        self.exits = ExitService(
            identity=identity,
            bridges=config.bridges,
            pieces=self.pieces,
            data_dir=config.data_dir,
            clock=clock,
        )
        self.contact.skip = self.exits.ended
        app.add_routes(ExitEndpoint(self.exits).routes())
        self.group.add("exit", start=self.exits.start, close=self.exits.close)

    def _space_gauges(self) -> None:
        gauge_callback(
            self.registry,
            "metadisk_farmer_space_bytes",
            "The allocation, and how much of it is used (pieces), in the trash and free (the "
            "trash counts as free: it is emptied first when room is needed).",
            ["kind"],
            lambda: {
                ("allocated",): float(self.pieces.allocated),
                ("used",): float(self.usage.used),
                ("trash",): float(self.usage.trash),
                ("free",): float(self.pieces.free),
            },
        )
        gauge_callback(
            self.registry,
            "metadisk_farmer_pieces",
            "Pieces stored.",
            [],
            lambda: float(self.usage.pieces),
        )

    @property
    def address(self) -> str:
        """The data plane's base URL as bridges and clients should use it."""
        if self.config.public_address:
            return self.config.public_address
        host = self.config.host
        if host in WILDCARDS:
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.server.port}"

    @property
    def scheme(self) -> str:
        return "https" if self.config.tls else "http"

    async def _serve(self) -> None:
        try:
            await self.server.start()
        except BindError as exc:
            raise SetupError(exc.message, code=exc.code) from exc
        if self.config.host in WILDCARDS and not self.config.public_address:
            log.warning(
                "listening on all interfaces but announcing %s: set public_address", self.address
            )

    async def _serve_dashboard(self) -> None:
        assert self.dashboard is not None
        try:
            await self.dashboard.start()
        except BindError as exc:
            raise SetupError(f"dashboard: {exc.message}", code=exc.code) from exc

    async def start(self) -> None:
        """Check the data dir, open and repair the store, then bind the port."""
        await self.group.start()

    async def run(self) -> None:
        """Run every chore until cancelled (the server runs in its own tasks)."""
        await self.group.run()

    async def aclose(self) -> None:
        """Close what `start` opened, in reverse; the first error is raised after all ran."""
        await self.group.aclose()


async def _nothing() -> None:
    return None


async def serve(config: FarmerConfig, identity: Identity, *, access_log: bool = False) -> None:
    """A whole farmer process: start, announce, run until SIGINT or SIGTERM, close.

    Once listening it writes ``listen.json`` in the data dir (for `metadisk farmer status`) and
    prints the same fields as one line on stdout, which launchers read.
    """
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    peer = Peer(config, identity, access_log=access_log)
    listen_path = config.data_dir / LISTEN_FILE
    try:
        await peer.start()
        # What startup built stays out of later full collections, which would otherwise walk
        # it every time (the bridge's measure: 72 ms a collection, 3.6 ms frozen).
        gc.collect()
        gc.freeze()
        local_host = "127.0.0.1" if config.host in WILDCARDS else config.host
        listening = {
            "url": peer.address,
            "local_url": f"{peer.scheme}://{local_host}:{peer.server.port}",
            "port": peer.server.port,
            "node_id": identity.node_id.hex(),
            "pid": os.getpid(),
            "version": metadisk.__version__,
        }
        if peer.dashboard is not None:
            listening["dashboard_url"] = peer.dashboard.url
        write_atomic(listen_path, json.dumps({"event": "listening", **listening}) + "\n")
        announce_listening(**listening)
        log.info("listening on %s", peer.address)
        if peer.dashboard is not None:
            log.info("dashboard on %s", peer.dashboard.url)
        with contextlib.suppress(asyncio.CancelledError):
            await peer.run()
    finally:
        remove_quietly(listen_path)
        await peer.aclose()


@contextlib.asynccontextmanager
async def running(
    config: FarmerConfig, identity: Identity, *, clock: Callable[[], float] = time.time
) -> AsyncIterator[Peer]:
    """A started peer running in the background of the current loop (tests, embedding)."""
    peer = Peer(config, identity, clock=clock)
    try:
        await peer.start()
        task = asyncio.create_task(peer.run())
        try:
            yield peer
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await peer.aclose()


def check_data_dir(path: Path) -> None:
    """SetupError unless `path` is a directory this process can use."""
    if not path.exists():
        raise SetupError(
            f"data dir {path} does not exist (run `metadisk farmer setup`)", code="data-dir"
        )
    if not path.is_dir():
        raise SetupError(f"data dir {path} is not a directory", code="data-dir")
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise SetupError(f"data dir {path} is not readable and writable", code="data-dir")


def check_space(config: FarmerConfig, used: int) -> None:
    """SetupError if the disk is full or cannot hold what is left of the allocation (`used`:
    bytes the node has on disk, pieces and trash)."""
    stat = os.statvfs(config.data_dir)
    free = stat.f_bavail * stat.f_frsize
    if free < DISK_RESERVE:
        raise SetupError(
            f"the disk of {config.data_dir} is full ({format_size(free)} free)", code="disk-full"
        )
    if config.allocated - used > free - DISK_RESERVE:
        raise SetupError(
            f"allocation of {format_size(config.allocated)} is more than the disk can hold "
            f"({format_size(used)} used, {format_size(free)} free)",
            code="over-allocated",
        )
