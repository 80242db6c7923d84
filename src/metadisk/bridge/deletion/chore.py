"""Sends queued piece deletes to farmers: ``DELETE {address}/v1/pieces/{piece_id}``.

Each request carries a DELETE order limit signed by the bridge in ``X-Metadisk-Order-Limit``.
A 204 or a 404 (the farmer never had it, or already deleted it) settles the delete; anything else,
or an unreachable farmer, is retried with backoff until `delete_max_attempts`, after which the
piece is left to garbage collection by filters. Rows are claimed with a lease, so any number of
bridge processes can run this chore on one database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from metadisk.bridge.config import ChoresConfig
from metadisk.bridge.deletion.db import DeletionDB, PieceDelete
from metadisk.bridge.orders.service import OrderSigner
from metadisk.core.encoding import b64encode
from metadisk.core.identity import NodeId
from metadisk.core.messages import Action

log = logging.getLogger(__name__)

ORDER_LIMIT_HEADER = "X-Metadisk-Order-Limit"
PARALLEL = 16


@dataclass(frozen=True, slots=True)
class DeletionReport:
    deleted: int
    failed: int
    dropped: int


class PieceDeleter:
    """One cycle of the piece deletion chore: claim, send, settle."""

    def __init__(
        self,
        db: DeletionDB,
        signer: OrderSigner,
        config: ChoresConfig,
        clock: Callable[[], int],
    ) -> None:
        self._clock = clock
        self._db = db
        self._signer = signer
        self._config = config
        self._session: aiohttp.ClientSession | None = None

    async def cycle(self) -> DeletionReport:
        total = DeletionReport(0, 0, 0)
        while True:
            now = self._clock()
            lease = int(self._config.delete_timeout * 3) + 30
            batch = await asyncio.to_thread(self._db.claim, now, lease, self._config.delete_batch)
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
        if self._session is None:
            self._session = aiohttp.ClientSession()
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
        return DeletionReport(len(done), len(failed), dropped)

    async def _send(self, item: PieceDelete, now: int) -> bool:
        if item.address is None:
            return False
        assert self._session is not None
        limit = self._signer.sign(NodeId(item.node_id), item.piece_id, Action.DELETE, 0, now)
        url = f"{item.address.rstrip('/')}/v1/pieces/{item.piece_id.hex()}"
        try:
            async with self._session.delete(
                url,
                headers={ORDER_LIMIT_HEADER: b64encode(limit.encode())},
                timeout=aiohttp.ClientTimeout(total=self._config.delete_timeout),
                allow_redirects=False,
            ) as response:
                if response.status in (200, 204, 404):
                    return True
                log.info("piece delete at %s answered HTTP %s", item.address, response.status)
                return False
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.info("piece delete at %s failed: %s", item.address, exc)
            return False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
