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


class DeletionDB(Protocol):
    def claim(self, now: int, lease: int, limit: int) -> list[PieceDelete]:
        """Take up to `limit` due deletes, hiding them from other claimers for `lease` seconds."""
        ...

    def done(self, ids: Sequence[int]) -> None: ...

    def retry_later(self, ids: Sequence[int], now: int, max_attempts: int) -> int:
        """Count a failed attempt and back off; drop those at `max_attempts`. Returns dropped."""
        ...

    def pending(self) -> int:
        """How many deletes are queued (for tests and status)."""
        ...
