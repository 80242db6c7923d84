"""What the reclaim chore needs from the database."""

from __future__ import annotations

from typing import Protocol


class ReclaimDB(Protocol):
    def reclaim(self, now: int, limit: int) -> int:
        """Drop up to `limit` uploads past their deadline, queueing deletes for their pieces;
        how many. One transaction each batch, rows taken with ``SKIP LOCKED``: two workers never
        reclaim the same upload."""
        ...

    def expired_uploads(self, now: int) -> int:
        """How many uploads are past their deadline and not reclaimed yet (the queue's depth)."""
        ...
