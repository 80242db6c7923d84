"""The trash: pieces deleted by a bridge or collected by its retain request, kept for a grace
period (``trash_grace``) so a mistake can still be undone by hand, and emptied first when room is
needed.

In: a DELETE, or `Trash.collectable`, which picks the pieces a retain request may take (those
stored before its time). Two ways out, both through the piece service's journaled moves (so
counters stay exact across a crash):

- `Trash.empty`: the trash chore purges what was trashed before the grace period, streaming the
  listing (a trash may hold millions of pieces after a collection) in batches.
- `Trash.make_room`: an upload that fits the allocation only without the trash (the node offers
  the trash to bridges as free space), or that finds the disk itself short, purges the oldest
  trashed pieces, of any bridge, until it fits. The listing is scanned for the `OLDEST` oldest
  entries at a time and those are used up before the next scan, so uploads under pressure do not
  each pay for a scan of the whole trash. Nothing is scanned while there is room.

The file work runs on one thread of its own, not the piece I/O threads: a piece I/O thread whose
upload finds the disk short waits for `make_room` (`make_room_blocking`), and must not wait for
a thread the waiting uploads hold.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from metadisk.farmer.errors import CorruptPiece, NotFound
from metadisk.farmer.metrics import FarmerMetrics
from metadisk.farmer.pieces.db import Move
from metadisk.farmer.pieces.store import PieceStore

log = logging.getLogger("metadisk.farmer.trash")

P = ParamSpec("P")
T = TypeVar("T")

BATCH = 500  # moves journaled together
OLDEST = 4096  # trashed pieces taken per scan when making room
_Trashed = tuple[bytes, bytes, str, int]  # bridge, piece id, rel path, trashed at


class Trash:
    """Empties the trash: after the grace period, or early, oldest first, to make room."""

    def __init__(
        self,
        store: PieceStore,
        apply_moves: Callable[[list[Move], Executor], Awaitable[int]],
        metrics: FarmerMetrics,
    ) -> None:
        self._store = store
        self._apply_moves = apply_moves
        self._metrics = metrics
        self._io = ThreadPoolExecutor(1, thread_name_prefix="farmer-trash")
        self._lock = asyncio.Lock()  # one room-making at a time
        self._oldest: deque[_Trashed] = deque()  # the oldest trashed pieces, from the last scan
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._io, lambda: fn(*args, **kwargs)
        )

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        self._loop = None
        await asyncio.to_thread(self._io.shutdown, wait=True)

    async def empty(self, cutoff: float) -> int:
        """Purge every piece trashed at or before `cutoff`; returns how many went."""
        listing = self._store.trashed()  # a generator: advanced only on the trash thread
        removed = 0
        while True:
            moves, more = await self._run(self._take_expired, listing, cutoff)
            removed += await self._apply_moves(moves, self._io) if moves else 0
            if not more:
                break
        self._metrics.trash_purged.labels("grace").inc(removed)
        return removed

    def _take_expired(self, listing: Iterator[_Trashed], cutoff: float) -> tuple[list[Move], bool]:
        moves: list[Move] = []
        for bridge, piece_id, rel, trashed_at in listing:
            if trashed_at > cutoff:
                continue
            size = self._size(rel)
            if size is not None:
                moves.append(Move(bridge, piece_id, rel, None, trash=-size))
                if len(moves) >= BATCH:
                    return moves, True
        return moves, False

    async def make_room(self, deficit: Callable[[], int], why: str) -> int:
        """Purge the oldest trashed pieces until `deficit()` (bytes missing, evaluated after
        each batch) is no longer positive or the trash is empty; returns how many went."""
        async with self._lock:  # a waiting upload sees the room the one before it made
            removed = 0
            while (wanted := deficit()) > 0:
                moves = await self._run(self._take_oldest, wanted)
                if not moves:
                    break
                removed += await self._apply_moves(moves, self._io)
        if removed:
            self._metrics.trash_purged.labels(why).inc(removed)
            log.info("emptied %d trashed pieces early to make room (%s)", removed, why)
        return removed

    def make_room_blocking(self, deficit: Callable[[], int], why: str) -> int:
        """`make_room` for a caller on another thread (a piece I/O thread): runs it on the event
        loop and waits. Returns 0 if the loop is gone (the node is stopping)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return 0
        future = asyncio.run_coroutine_threadsafe(self.make_room(deficit, why), loop)
        return future.result()

    def _take_oldest(self, wanted: int) -> list[Move]:
        """Trashed pieces, oldest first, adding up to at least `wanted` bytes (or `BATCH`)."""
        moves: list[Move] = []
        total = 0
        scanned = False
        while total < wanted and len(moves) < BATCH:
            if not self._oldest:
                if scanned:  # everything the scan found is gone already
                    break
                self._oldest = deque(heapq.nsmallest(OLDEST, self._store.trashed(), _when))
                scanned = True
                if not self._oldest:
                    break
            bridge, piece_id, rel, _ = self._oldest.popleft()
            size = self._size(rel)
            if size is not None:  # else purged meanwhile
                moves.append(Move(bridge, piece_id, rel, None, trash=-size))
                total += size
        return moves

    def collectable(
        self, bridge: bytes, piece_ids: list[bytes], stored_before: int, now: int
    ) -> list[Move]:
        """Moves to the trash of `bridge`'s pieces among `piece_ids` stored before
        `stored_before`, by their footers; missing and damaged pieces are left out (blocks)."""
        moves = []
        for piece_id in piece_ids:
            rel = self._store.piece_rel(bridge, piece_id)
            try:
                info = self._store.info(rel)
            except (NotFound, CorruptPiece):
                continue
            if info.stored_at < stored_before:
                size, dst = info.disk_size, self._store.trash_rel(bridge, piece_id, now)
                moves.append(Move(bridge, piece_id, rel, dst, -size, -1, trash=size))
        return moves

    def _size(self, rel: str) -> int | None:
        try:
            return self._store.disk_size(rel)
        except NotFound:
            return None


def _when(entry: _Trashed) -> int:
    return entry[3]
