"""The uptime checker: the bridge asks each node who it is on its own schedule.

Every `node_check_interval` seconds per node (sooner when a client or the auditor could not
reach it), whether or not the node checks in. A node that answers with its own id is online:
its last successful check is refreshed, its free space taken from its card. Any failure makes it
offline at once, so selection never hands out its pieces' slots, and it is checked again after
a quarter of the interval; a later success brings it back. Each result moves the online score
and extends the node's online or offline window.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

from metadisk.bridge.config import HealthConfig
from metadisk.bridge.health.db import DueNode, HealthDB, Scores
from metadisk.bridge.health.standing import after_check
from metadisk.bridge.overlay.pinger import failure_code
from metadisk.core.identity import NodeId
from metadisk.runtime.logs import event
from metadisk.wire.dataplane import PieceClient, PieceTransferError

log = logging.getLogger(__name__)

PARALLEL = 32


class UptimeChecker:
    """One cycle of the uptime chore: claim due nodes, ask each who it is, record."""

    def __init__(
        self,
        db: HealthDB,
        pieces: PieceClient,
        config: HealthConfig,
        clock: Callable[[], int],
        *,
        observe: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        self._db = db
        self._pieces = pieces
        self._config = config
        self._clock = clock
        self._observe = observe

    async def cycle(self) -> Counter[str]:
        """Check every node due; how many were found online and offline."""
        now = self._clock()
        interval = max(1, round(self._config.node_check_interval))
        due = await asyncio.to_thread(
            self._db.claim_checks, now, interval, self._config.checks_per_cycle
        )
        gate = asyncio.Semaphore(PARALLEL)

        async def one(node: DueNode) -> str:
            async with gate:
                return await self.check(node)

        return Counter(await asyncio.gather(*(one(node) for node in due)))

    async def check(self, node: DueNode) -> str:
        error: str | None = None
        free: int | None = None
        try:
            async with asyncio.timeout(self._config.check_timeout):
                card = await self._pieces.node_info(node.address, NodeId(node.node_id))
            if card.node_id.raw != node.node_id:
                error = "wrong-node"
            free = card.free
        except TimeoutError:
            error = "timeout"
        except PieceTransferError as exc:
            error = failure_code(exc)
        online = error is None
        config = self._config

        def update(scores: Scores) -> Scores:
            return after_check(scores, online, config)

        now = self._clock()
        # A failed check is soon checked again: one lost ping (ours, or the network's) should
        # not keep a node out of selection and downloads for a whole interval.
        retry_at = None if online else now + max(1, round(config.node_check_interval / 4))
        changed = await asyncio.to_thread(
            self._db.record_check, node.node_id, online, error, free if online else None,
            now, update, retry_at,
        )  # fmt: skip
        outcome = "online" if online else "offline"
        self._observe(outcome)
        if changed:
            level = logging.INFO if online else logging.WARNING
            event(log, level, f"node went {outcome}", node=node.node_id.hex()[:16],
                  address=node.address, reason=error or "")  # fmt: skip
        return outcome
