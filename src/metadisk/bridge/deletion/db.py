"""What the piece deletion chore needs from the database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class PieceDelete:
    id: int
    node_id: bytes
    piece_id: bytes
    address: str | None  # None: the node is not in the directory
    attempts: int
    offline: bool = False  # the bridge's last uptime check of the node failed


class DeletionDB(Protocol):
    def claim(self, due: int, until: int, limit: int) -> list[PieceDelete]:
        """Take up to `limit` deletes due by `due`, hiding them from other claimers until
        `until` (their lease)."""
        ...

    def done(self, ids: Sequence[int]) -> None: ...

    def retry_later(self, ids: Sequence[int], now: int, max_attempts: int) -> int:
        """Count a failed attempt and back off; drop those at `max_attempts`. Returns dropped."""
        ...

    def release(self, ids: Sequence[int], at: int) -> None:
        """Give claimed deletes back unsent, due again at `at`; no attempt is counted."""
        ...

    def pending(self) -> int:
        """How many deletes are queued (for tests and status)."""
        ...
