"""The bridge API process: builds every service in dependency order and runs them.

Bridge API processes are stateless: everything is in the database, so any number of them can
serve one network, and each also runs the background chores, which share their work through the
database.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from metadisk import __version__
from metadisk.bridge.accounts import endpoint as accounts_endpoint
from metadisk.bridge.accounts.service import AccountsService
from metadisk.bridge.auth import endpoint as auth_endpoint
from metadisk.bridge.auth.service import KeyAuthority
from metadisk.bridge.buckets import endpoint as buckets_endpoint
from metadisk.bridge.buckets.service import BucketsService
from metadisk.bridge.chore import Chore
from metadisk.bridge.common import wall_clock
from metadisk.bridge.config import BridgeConfig
from metadisk.bridge.db.accounts import AccountsStore
from metadisk.bridge.db.auth import AuthStore
from metadisk.bridge.db.buckets import BucketsStore
from metadisk.bridge.db.deletion import DeletionStore
from metadisk.bridge.db.engine import Database
from metadisk.bridge.db.metainfo import MetainfoStore
from metadisk.bridge.db.migrate import upgrade
from metadisk.bridge.db.overlay import OverlayStore
from metadisk.bridge.deletion.chore import PieceDeleter
from metadisk.bridge.http import create_app, run_in_thread, run_inline
from metadisk.bridge.info import router as info_router
from metadisk.bridge.metainfo import endpoint as metainfo_endpoint
from metadisk.bridge.metainfo.objects import ObjectsService
from metadisk.bridge.metainfo.uploads import UploadsService
from metadisk.bridge.orders.service import OrderSigner
from metadisk.bridge.overlay import endpoint as overlay_endpoint
from metadisk.bridge.overlay.pinger import HTTPPinger
from metadisk.bridge.overlay.service import OverlayService
from metadisk.core.identity import Identity
from metadisk.wire.dataplane import PieceClient

log = logging.getLogger(__name__)


class Bridge:
    """One bridge API process: services as attributes, `run()` to serve, `aclose()` to stop."""

    def __init__(
        self,
        config: BridgeConfig,
        identity: Identity,
        clock: Callable[[], int] = wall_clock,
    ) -> None:
        self.config = config
        self.identity = identity
        self.clock = clock
        self.db = Database(config.database)

        self.authority = KeyAuthority(AuthStore(self.db), config.accounts.key_cache_ttl)
        self.accounts = AccountsService(
            AccountsStore(self.db), config.accounts, on_key_change=self.authority.forget
        )
        self.pieces = PieceClient(user_agent=f"metadisk-bridge/{__version__}")
        self.pinger = HTTPPinger(self.pieces)
        self.overlay = OverlayService(OverlayStore(self.db), config.nodes, self.pinger)
        self.signer = OrderSigner(identity, config.objects.order_ttl)
        self.buckets = BucketsService(BucketsStore(self.db), config.objects)
        metainfo = MetainfoStore(self.db)
        self.uploads = UploadsService(metainfo, self.overlay, self.signer, config.objects)
        self.objects = ObjectsService(metainfo, self.overlay, self.signer, config.objects)
        self.deletion_store = DeletionStore(self.db)
        self.deleter = PieceDeleter(
            self.deletion_store, self.signer, self.pieces, config.chores, clock
        )

        self.reclaim_chore = Chore("reclaim", config.chores.reclaim_interval, self._reclaim)
        self.deletion_chore = Chore(
            "piece-deletion", config.chores.delete_interval, self.deleter.cycle
        )
        self.chores = (self.reclaim_chore, self.deletion_chore)

        # Measured (docs/bridge.md): SQLite queries are cheaper than a thread hop; PostgreSQL
        # queries wait on the network, so they go to the threadpool.
        run = run_inline if self.db.is_sqlite else run_in_thread
        self.app: FastAPI = create_app(
            [
                # The object routes first: FastAPI tries routes in order on every request.
                metainfo_endpoint.router(self.uploads, self.objects, self.authority, clock, run),
                buckets_endpoint.router(self.buckets, self.authority, clock, run),
                auth_endpoint.router(self.authority, clock, run),
                info_router(identity, config.nodes.difficulty, __version__),
                accounts_endpoint.router(self.accounts, clock),
                overlay_endpoint.router(self.overlay, clock),
            ],
            __version__,
        )

    def migrate(self) -> None:
        upgrade(self.db)

    async def _reclaim(self) -> int:
        total = 0
        while True:
            count = await asyncio.to_thread(self.uploads.reclaim, self.clock())
            total += count
            if count == 0:
                return total

    async def run(self, sockets: list[socket.socket]) -> None:
        """Serve HTTP on `sockets` and run the chores until the server is told to stop."""
        server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                log_level=self.config.log_level,
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=5,
            )
        )
        try:
            async with asyncio.TaskGroup() as group:
                serving = group.create_task(server.serve(sockets=sockets))
                running = [group.create_task(chore.run()) for chore in self.chores]
                # The server ends on SIGINT/SIGTERM; then the chores stop with it.
                serving.add_done_callback(lambda _: [task.cancel() for task in running])
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close in reverse order of construction."""
        await self.pieces.aclose()
        self.db.close()
