"""What garbage collection needs from the database."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class GcNode:
    node_id: bytes
    address: str


class GcDB(Protocol):
    def claim_nodes(self, now: int, lease: int, limit: int) -> list[GcNode]:
        """Online nodes due a filter (not disqualified, not done exiting), their next one moved
        `lease` seconds ahead so no other worker takes them meanwhile."""
        ...

    def count_kept(self, node_id: bytes) -> int:
        """About how many piece ids the node's filter will hold (to size it)."""
        ...

    def scan_kept(self, node_id: bytes, consume: Callable[[Sequence[bytes]], None]) -> int:
        """Every piece id the node must keep, in batches to `consume`, read in ONE statement
        (one snapshot): recorded pieces, order limits of uploads in progress, repair and exit
        transfers in flight. Returns how many."""
        ...

    def sent(self, node_id: bytes, now: int, next_at: int) -> None: ...

    def failed(self, node_id: bytes, retry_at: int) -> None: ...

    def prune_transfers(self, now: int) -> int:
        """Forget transfer orders long expired (a repairer or exit that never finished)."""
        ...
