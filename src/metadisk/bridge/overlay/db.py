"""What the node directory needs from the database."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class NodeRecord:
    node_id: bytes
    public_key: bytes
    address: str
    last_net: str
    allocated: int
    free: int
    version: str
    contact_timestamp: int
    last_contact_at: int
    last_ping_ok_at: int | None
    last_ping_error: str | None
    disqualified_at: int | None
    created_at: int
    offline_since: int | None = None  # the last check or ping-back failed, since then


@dataclass(frozen=True, slots=True)
class Candidate:
    node_id: bytes
    public_key: bytes
    address: str
    last_net: str
    vetted: bool = True
    perf_success: float = 1.0
    perf_latency_ms: float = 0.0


class OverlayDB(Protocol):
    def node(self, node_id: bytes) -> NodeRecord | None: ...

    def save_contact(self, record: NodeRecord) -> None:
        """Insert or update a node from its check-in (keeping created_at and disqualified_at)."""
        ...

    def candidates(
        self,
        min_free: int,
        online_since: int,
        exclude: Collection[bytes],
        limit: int,
    ) -> list[Candidate]:
        """Up to `limit` selectable nodes with `min_free` bytes free, in random order: found by
        a check since `online_since` and not since found offline, neither disqualified nor
        suspended nor contained, and not exiting (or exited)."""
        ...

    def holding(self, node_ids: Collection[bytes], count: int) -> set[bytes]:
        """Which of `node_ids` the bridge has recorded at least `count` (>= 1) pieces on."""
        ...

    def disqualify(self, node_id: bytes, now: int) -> bool: ...
