"""What clients report of their piece transfers: performance, rechecks, and audits of bad pieces.

Reports are unverifiable by nature, so they only steer, never judge: they move a node's
decaying success rate and latency (which weighs its chance of being selected, never below a
floor), ask the uptime checker to look at a node the client could not reach, and queue an audit
of a piece the client found bad, which the auditor then decides on evidence. A report counts
once per node (its worst outcome), and only for nodes the bridge knows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from metadisk.bridge.config import HealthConfig
from metadisk.bridge.health.db import HealthDB, Transfer

# A failure that may mean the node is down or hung, not that it refused this one request.
UNREACHABLE_CODES = frozenset({"connection-failed", "timeout", "stalled", "unresolvable"})
_RANK = {"success": 0, "slow": 1, "failed": 2, "bad-piece": 3}
MAX_PENDING = 10_000  # transfers held before a flush is forced, whatever the time


@dataclass(frozen=True, slots=True)
class Reported:
    """One piece transfer as a client reported it."""

    piece_number: int
    node_id: bytes
    outcome: str  # success, failed, slow, bad-piece
    latency_ms: int
    code: str = ""


@dataclass(frozen=True, slots=True)
class BadPiece:
    root_piece_id: bytes
    piece_number: int
    node_id: bytes


class TransferReports:
    """Folds client reports into node performance and the audit queue.

    Performance is written in batches: reports gather in memory and go to the database in one
    transaction at most every `flush_every` seconds (and on `flush`), so a busy bridge pays one
    write a second for them, not one per segment committed or read. What a crash loses is at
    most that second of steering data.
    """

    def __init__(
        self,
        db: HealthDB,
        config: HealthConfig,
        *,
        flush_every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._config = config
        self._flush_every = flush_every
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: list[Transfer] = []
        self._flushed_at = clock()

    def record(self, reported: Sequence[Reported], now: int) -> int:
        """Count `reported` (one per node, its worst); how many nodes it touched."""
        worst: dict[bytes, Reported] = {}
        for item in reported:
            held = worst.get(item.node_id)
            if held is None or _RANK.get(item.outcome, 0) > _RANK.get(held.outcome, 0):
                worst[item.node_id] = item
        transfers = [
            Transfer(
                node_id=item.node_id,
                ok=item.outcome == "success",
                latency_ms=item.latency_ms,
                recheck=item.outcome == "failed" and item.code in UNREACHABLE_CODES,
            )
            for item in worst.values()
        ]
        with self._lock:
            self._pending.extend(transfers)
            due = (
                len(self._pending) >= MAX_PENDING
                or self._clock() - self._flushed_at >= self._flush_every
            )
        if due:
            self.flush(now)
        return len(transfers)

    def flush(self, now: int) -> None:
        """Write what was reported since the last flush."""
        with self._lock:
            batch, self._pending = self._pending, []
            self._flushed_at = self._clock()
        if batch:
            self._db.record_transfers(batch, self._config.performance_decay, now)

    def audit_soon(self, pieces: Sequence[BadPiece], now: int) -> int:
        """Queue audits of pieces a client found bad; how many were not queued already."""
        return self._db.queue_audits(
            [(p.root_piece_id, p.piece_number, p.node_id, "reported bad") for p in pieces], now
        )
