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
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web

from metadisk.core.identity import Identity
from metadisk.farmer.chore import Chore, Cycle
from metadisk.farmer.config import FarmerConfig, format_size
from metadisk.farmer.contact.endpoint import NodeEndpoint
from metadisk.farmer.contact.service import ContactService, Space
from metadisk.farmer.db import FarmerDB
from metadisk.farmer.errors import SetupError
from metadisk.farmer.http import Server, chore_routes, error_middleware
from metadisk.farmer.pieces.endpoint import PieceEndpoint
from metadisk.farmer.pieces.service import DISK_RESERVE, PieceService
from metadisk.farmer.pieces.store import PieceStore
from metadisk.farmer.usage.endpoint import StatusEndpoint
from metadisk.farmer.usage.service import UsageService

log = logging.getLogger("metadisk.farmer")

DB_FILE = "farmer.db"
_WILDCARDS = ("0.0.0.0", "::", "")  # noqa: S104 - naming the wildcard addresses, not binding


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
        self._closers: list[tuple[str, Callable[[], Awaitable[object]]]] = []

        self.db = FarmerDB(config.data_dir / DB_FILE)
        self.usage = UsageService(self.db)
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

        self.checkin_chore = Chore("checkin", config.checkin_interval, self.contact.checkin)
        self.expiry_chore = Chore(
            "expiry", config.expiry_interval, _quiet(self.pieces.collect_expired)
        )
        self.trash_chore = Chore("trash", config.trash_interval, _quiet(self.pieces.empty_trash))
        self.usage_chore = Chore(
            "usage", config.usage_flush_interval, _quiet(self.usage.flush), run_at_start=False
        )
        self.chores = (self.checkin_chore, self.expiry_chore, self.trash_chore, self.usage_chore)

        app = web.Application(middlewares=[error_middleware])
        app.add_routes(PieceEndpoint(self.pieces).routes())
        app.add_routes(NodeEndpoint(identity, self.contact).routes())
        app.add_routes(
            StatusEndpoint(
                identity=identity,
                pieces=self.pieces,
                usage=self.usage,
                address=lambda: self.address,
                uptime=lambda: time.monotonic() - self._started_at,
            ).routes()
        )
        app.add_routes(chore_routes({chore.name: chore for chore in self.chores}))
        self.server = Server(app, config.host, config.port, access_log=access_log)

    @property
    def address(self) -> str:
        """The data plane's base URL as bridges and clients should use it."""
        if self.config.public_address:
            return self.config.public_address
        host = self.config.host
        if host in _WILDCARDS:
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.server.port}"

    async def start(self) -> None:
        """Check the data dir, open and repair the store, then bind the port."""
        await asyncio.to_thread(check_data_dir, self.config.data_dir)
        await self.db.open()
        self._closers.append(("db", self.db.close))
        self._closers.append(("pieces", self.pieces.close))
        await self.pieces.start()
        # after the server stopped (closed before it), so the last requests' bandwidth counts
        self._closers.append(("usage", self.usage.flush))
        await asyncio.to_thread(check_space, self.config, self.usage.used)
        await self.contact.start()
        self._closers.append(("contact", self.contact.close))
        await self.server.start()
        self._closers.append(("server", self.server.close))
        if self.config.host in _WILDCARDS and not self.config.public_address:
            log.warning(
                "listening on all interfaces but announcing %s: set public_address", self.address
            )

    async def run(self) -> None:
        """Run every chore until cancelled (the server runs in its own tasks)."""
        async with asyncio.TaskGroup() as group:
            for chore in self.chores:
                group.create_task(chore.run(), name=f"chore-{chore.name}")

    async def aclose(self) -> None:
        """Close what `start` opened, in reverse; the first error is raised after all ran."""
        first: BaseException | None = None
        while self._closers:
            name, close = self._closers.pop()
            try:
                await close()
            except Exception as exc:
                log.warning("closing %s failed: %s", name, exc)
                first = first or exc
        if first is not None:
            raise first


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
    """SetupError if the disk is full or cannot hold what is left of the allocation."""
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


def _quiet(cycle: Callable[[], Awaitable[object]]) -> Cycle:
    """A chore cycle from a coroutine whose result is not a delay."""

    async def run() -> None:
        await cycle()

    return run
