"""Sends queued piece deletes to farmers through the data plane's `PieceClient`.

Each request carries a DELETE order limit signed by the bridge. A deleted piece, or one the farmer
does not have (it never had it, or already deleted it), settles the delete; anything else, or an
unreachable farmer, is retried with backoff until `delete_max_attempts`, after which the piece is
left to garbage collection by filters. Rows are claimed with a lease (and ``SKIP LOCKED`` on
PostgreSQL), so any number of workers can run this chore on one database without sending a
delete twice while its lease holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from metadisk.bridge.config import ChoresConfig
from metadisk.bridge.deletion.db import DeletionDB, PieceDelete
from metadisk.bridge.orders.service import OrderSigner
from metadisk.core.identity import NodeId
from metadisk.core.messages import Action
from metadisk.wire.dataplane import PieceClient, PieceTransferError

log = logging.getLogger(__name__)

PARALLEL = 16


@dataclass(frozen=True, slots=True)
class DeletionReport:
    deleted: int  # settled: deleted, or the farmer did not have the piece
    failed: int
    dropped: int


class DeletionObserver(Protocol):
    """Told each delete's outcome: ``deleted``, ``missing``, ``failed`` or ``dropped``."""

    def __call__(self, outcome: str, count: int = 1) -> None: ...


class PieceDeleter:
    """One cycle of the piece deletion chore: claim, send, settle."""

    def __init__(
        self,
        db: DeletionDB,
        signer: OrderSigner,
        pieces: PieceClient,
        config: ChoresConfig,
        clock: Callable[[], int],
        observe: DeletionObserver = lambda outcome, count=1: None,
    ) -> None:
        self._clock = clock
        self._observe = observe
        self._db = db
        self._signer = signer
        self._pieces = pieces
        self._config = config

    async def cycle(self) -> DeletionReport:
        total = DeletionReport(0, 0, 0)
        while True:
            now = self._clock()
            until = now + int(self._config.delete_timeout * 3) + 30
            batch = await asyncio.to_thread(self._db.claim, now, until, self._config.delete_batch)
            if not batch:
                return total
            report = await self._send_all(batch, now)
            total = DeletionReport(
                total.deleted + report.deleted,
                total.failed + report.failed,
                total.dropped + report.dropped,
            )
            if report.failed:
                return total  # back off: retry the failures at their next attempt time

    async def _send_all(self, batch: list[PieceDelete], now: int) -> DeletionReport:
        gate = asyncio.Semaphore(PARALLEL)

        async def one(item: PieceDelete) -> bool:
            async with gate:
                return await self._send(item, now)

        results = await asyncio.gather(*(one(item) for item in batch))
        done = [item.id for item, ok in zip(batch, results, strict=True) if ok]
        failed = [item.id for item, ok in zip(batch, results, strict=True) if not ok]
        if done:
            await asyncio.to_thread(self._db.done, done)
        dropped = 0
        if failed:
            dropped = await asyncio.to_thread(
                self._db.retry_later, failed, now, self._config.delete_max_attempts
            )
            self._observe("failed", len(failed) - dropped)
            self._observe("dropped", dropped)
        return DeletionReport(len(done), len(failed), dropped)

    async def _send(self, item: PieceDelete, now: int) -> bool:
        if item.address is None:
            return False
        limit = self._signer.sign(NodeId(item.node_id), item.piece_id, Action.DELETE, 0, now)
        try:
            async with asyncio.timeout(self._config.delete_timeout):
                deleted = await self._pieces.delete(item.address, limit)
        except PieceTransferError as exc:
            log.info("piece delete at %s failed: %s (%s)", item.address, exc.code, exc)
            return False
        except TimeoutError:
            log.info("piece delete at %s failed: timeout", item.address)
            return False
        self._observe("deleted" if deleted else "missing")
        return True
