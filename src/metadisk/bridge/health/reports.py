"""What clients report of their piece transfers: performance, rechecks, and audits of bad pieces.

Reports are unverifiable by nature, so they only steer, never judge: they move a node's
decaying success rate and latency (which weighs its chance of being selected, never below a
floor), ask the uptime checker to look at a node the client could not reach, and queue an audit
of a piece the client found bad, which the auditor then decides on evidence. A report counts
once per node (its worst outcome), and only for nodes the bridge knows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from metadisk.bridge.config import HealthConfig
from metadisk.bridge.health.db import HealthDB, Transfer

# A failure that may mean the node is down or hung, not that it refused this one request.
UNREACHABLE_CODES = frozenset({"connection-failed", "timeout", "stalled", "unresolvable"})
_RANK = {"success": 0, "slow": 1, "failed": 2, "bad-piece": 3}


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
    """Folds client reports into node performance and the audit queue."""

    def __init__(self, db: HealthDB, config: HealthConfig) -> None:
        self._db = db
        self._config = config

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
        self._db.record_transfers(transfers, self._config.performance_decay, now)
        return len(transfers)

    def audit_soon(self, pieces: Sequence[BadPiece], now: int) -> int:
        """Queue audits of pieces a client found bad; how many were not queued already."""
        return self._db.queue_audits(
            [(p.root_piece_id, p.piece_number, p.node_id, "reported bad") for p in pieces], now
        )
