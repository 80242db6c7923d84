"""Sends each node a filter of the pieces it should keep (`RetainRequest`, a signed Bloom filter).

Every `[repair] node_gc_interval` each online node gets one. The time is taken before the
database is read, and the filter names every piece the node should hold as of then: recorded
pieces, order limits of uploads in progress and PUT_REPAIR transfers in flight, read in one
statement (one snapshot, so a commit between two reads cannot hide a piece). The farmer moves
to its trash what it stored before `created_before` (that time less `gc_clock_skew`, for the
farmer's clock) and the filter does not name: pieces whose deletes were dropped, of uploads
abandoned, sent in surplus. A Bloom filter has false positives, never false negatives: a piece
the bridge keeps is never collected, and a fresh random seed each time means a piece kept by
chance once is caught the next time.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence

from metadisk.bridge.config import RepairConfig
from metadisk.bridge.gc.db import GcDB, GcNode
from metadisk.core.bloom import BloomFilter
from metadisk.core.identity import Identity, NodeId
from metadisk.core.messages import RetainRequest
from metadisk.runtime.logs import event
from metadisk.wire.dataplane import PieceClient, PieceTransferError

log = logging.getLogger(__name__)

PER_CYCLE = 100
PARALLEL = 4
# Filters are sized for a few more pieces than counted: uploads go on while the ids are read.
HEADROOM = 1.05
RETRY_AFTER = 3600.0  # seconds before a node whose filter failed is sent one again (at most)


class GarbageCollector:
    """One cycle of the garbage collection chore."""

    def __init__(
        self,
        db: GcDB,
        identity: Identity,
        pieces: PieceClient,
        config: RepairConfig,
        clock: Callable[[], int],
        *,
        observe: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        self._db = db
        self._identity = identity
        self._pieces = pieces
        self._config = config
        self._clock = clock
        self._observe = observe  # "sent" or "failed"

    async def cycle(self) -> int:
        """Send the filters due; how many nodes accepted theirs."""
        now = self._clock()
        await asyncio.to_thread(self._db.prune_transfers, now)
        lease = int(max(60.0, self._config.gc_interval * 4))
        nodes = await asyncio.to_thread(self._db.claim_nodes, now, lease, PER_CYCLE)
        gate = asyncio.Semaphore(PARALLEL)

        async def one(node: GcNode) -> bool:
            async with gate:
                return await self.collect(node)

        return sum(await asyncio.gather(*(one(node) for node in nodes)))

    async def collect(self, node: GcNode) -> bool:
        try:
            request = await asyncio.to_thread(self.build, node.node_id)
            await self._pieces.retain(node.address, request)
        except Exception as exc:  # one node's filter must not keep the others from theirs
            if not isinstance(exc, PieceTransferError):
                log.exception("filter for node %s could not be built", node.node_id.hex()[:16])
            code = exc.code if isinstance(exc, PieceTransferError) else "internal"
            # Tried again before its turn comes round: a farmer just back (the checks found it,
            # or it would not have been claimed) may hold what its downtime made garbage.
            retry = min(self._config.node_gc_interval, RETRY_AFTER)
            now = self._clock()
            await asyncio.to_thread(self._db.failed, node.node_id, now + int(retry))
            self._observe("failed")
            event(
                log,
                logging.INFO,
                f"retain request to {node.address} failed: {code}",
                node_id=node.node_id,
                code=code,
            )
            return False
        now = self._clock()
        await asyncio.to_thread(
            self._db.sent, node.node_id, now, now + int(self._config.node_gc_interval)
        )
        self._observe("sent")
        return True

    def build(self, node_id: bytes) -> RetainRequest:
        """The node's signed request (blocking: reads the database and hashes every id)."""
        snapshot = self._clock()  # before the read: what it finds was there at this time
        count = self._db.count_kept(node_id)
        bloom = BloomFilter.sized(
            max(1, int(count * HEADROOM)),
            self._config.gc_false_positive_rate,
            seed=os.urandom(32),
        )

        def add(ids: Sequence[bytes]) -> None:
            for piece_id in ids:
                bloom.add(piece_id)

        kept = self._db.scan_kept(node_id, add)
        event(
            log,
            logging.DEBUG,
            f"filter of {kept} pieces for node {node_id.hex()[:16]}: {bloom.size} bytes",
            node_id=node_id,
            pieces=kept,
            size=bloom.size,
        )
        return RetainRequest(
            bridge_id=self._identity.node_id,
            node_id=NodeId(node_id),
            created_before=max(0, snapshot - self._config.gc_clock_skew),
            issued_at=snapshot,
            filter=bloom.encode(),
        ).signed_by(self._identity)
