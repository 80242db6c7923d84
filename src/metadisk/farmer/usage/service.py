"""Usage counters per bridge, in memory for the hot path and kept durably in the database.

Stored bytes, piece counts and trash change only with file moves, which the piece service commits
through the journal, so those counters are exact across crashes. Bandwidth changes with every
request; it is added up in memory and flushed every `usage_flush_interval` seconds and at close,
so a kill -9 can lose at most that much bandwidth accounting (never stored-byte accounting).
Bandwidth is also kept per UTC day (for the dashboard's chart), counted on the day a transfer
ended.

Stored pieces (`used`) and the trash (`trash`) are counted apart: the trash is emptied first when
room is needed, so the node offers it as free space. The last garbage collection per bridge
(`record_collection`) is kept in memory only, for the status page.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from metadisk.farmer.pieces.db import Move
from metadisk.farmer.usage.db import BridgeUsage, DayBandwidth, UsageDB

DAY = 86400


@dataclass(frozen=True, slots=True)
class Collection:
    """What one garbage collection for one bridge did."""

    at: int  # unix time it ended
    checked: int  # pieces it looked at
    collected: int  # pieces it moved to the trash


class UsageService:
    """Bytes stored and bandwidth per bridge."""

    def __init__(self, db: UsageDB, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock
        self._usage: dict[bytes, BridgeUsage] = defaultdict(BridgeUsage)
        # by (UTC day, bridge): what the next flush writes
        self._pending: dict[tuple[int, bytes], list[int]] = defaultdict(lambda: [0, 0])
        self._collections: dict[bytes, Collection] = {}

    async def load(self) -> None:
        self._usage.clear()
        self._usage.update(await self._db.usage())

    @property
    def used(self) -> int:
        """Bytes on disk in stored pieces (with their trailers), the trash not included."""
        return sum(u.stored for u in self._usage.values())

    @property
    def trash(self) -> int:
        """Bytes on disk in the trash."""
        return sum(u.trash for u in self._usage.values())

    @property
    def on_disk(self) -> int:
        """Bytes on disk in pieces and trash together."""
        return sum(u.stored + u.trash for u in self._usage.values())

    @property
    def pieces(self) -> int:
        return sum(u.pieces for u in self._usage.values())

    def apply(self, move: Move) -> None:
        """Account a committed file move."""
        usage = self._usage[move.bridge]
        usage.stored += move.stored
        usage.pieces += move.pieces
        usage.trash += move.trash

    def record_in(self, bridge: bytes, size: int) -> None:
        if size:
            self._usage[bridge].bandwidth_in += size
            self._pending[self._today(), bridge][0] += size

    def record_out(self, bridge: bytes, size: int) -> None:
        if size:
            self._usage[bridge].bandwidth_out += size
            self._pending[self._today(), bridge][1] += size

    async def flush(self) -> None:
        """Write the bandwidth counted since the last flush."""
        if not self._pending:
            return
        pending = {key: (v[0], v[1]) for key, v in self._pending.items()}
        self._pending.clear()
        try:
            await self._db.add_bandwidth(pending)
        except BaseException:
            for key, (bw_in, bw_out) in pending.items():  # keep them for the next flush
                self._pending[key][0] += bw_in
                self._pending[key][1] += bw_out
            raise

    def _today(self) -> int:
        return int(self._clock() // DAY)

    async def days(self, count: int) -> list[DayBandwidth]:
        """Bandwidth of each of the last `count` UTC days, today last, unflushed bytes too; a
        day without any is there with zeros."""
        today = self._today()
        first = today - count + 1
        totals = {day: [0, 0] for day in range(first, today + 1)}
        # The pending bytes before the query: the query queues behind any flush already under
        # way, and a flush after this point writes after the query reads, so no byte is missed
        # or counted twice.
        rows = [DayBandwidth(day, i, o) for (day, _), (i, o) in self._pending.items()]
        rows += await self._db.bandwidth_days(first)
        for row in rows:
            if row.day in totals:
                totals[row.day][0] += row.bandwidth_in
                totals[row.day][1] += row.bandwidth_out
        return [DayBandwidth(day, i, o) for day, (i, o) in totals.items()]

    def record_collection(self, bridge: bytes, collection: Collection) -> None:
        """Remember a bridge's last garbage collection, for the status page."""
        self._collections[bridge] = collection

    def last_collection(self, bridge: bytes) -> Collection | None:
        return self._collections.get(bridge)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Counters per bridge (hex id), with its last garbage collection, for the status page."""
        report: dict[str, dict[str, int]] = {}
        for bridge in sorted(self._usage.keys() | self._collections.keys()):
            entry = (self._usage[bridge] if bridge in self._usage else BridgeUsage()).as_dict()
            collection = self._collections.get(bridge)
            if collection is not None:
                entry["last_collection_at"] = collection.at
                entry["last_checked"] = collection.checked
                entry["last_collected"] = collection.collected
            report[bridge.hex()] = entry
        return report
