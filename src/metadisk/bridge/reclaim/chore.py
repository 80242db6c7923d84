"""One cycle of the reclaim chore: drop expired uploads, batch after batch, until none is left."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from metadisk.bridge.reclaim.db import ReclaimDB

BATCH = 100


class UploadReclaimer:
    def __init__(
        self,
        db: ReclaimDB,
        clock: Callable[[], int],
        *,
        reclaimed: Callable[[int], None] = lambda count: None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._reclaimed = reclaimed  # told how many each batch reclaimed (metrics)

    async def cycle(self) -> int:
        """Reclaim every upload past its deadline; how many."""
        total = 0
        while True:
            count = await asyncio.to_thread(self._db.reclaim, self._clock(), BATCH)
            self._reclaimed(count)
            total += count
            if count < BATCH:
                return total
