"""Usage counters per bridge, in memory for the hot path and kept durably in the database.

Stored bytes, piece counts and trash change only with file moves, which the piece service commits
through the journal, so those counters are exact across crashes. Bandwidth changes with every
request; it is added up in memory and flushed every `usage_flush_interval` seconds and at close,
so a kill -9 can lose at most that much bandwidth accounting (never stored-byte accounting).

Stored pieces (`used`) and the trash (`trash`) are counted apart: the trash is emptied first when
room is needed, so the node offers it as free space. The last garbage collection per bridge
(`record_collection`) is kept in memory only, for the status page.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from metadisk.farmer.pieces.db import Move
from metadisk.farmer.usage.db import BridgeUsage, UsageDB


@dataclass(frozen=True, slots=True)
class Collection:
    """What one garbage collection for one bridge did."""

    at: int  # unix time it ended
    checked: int  # pieces it looked at
    collected: int  # pieces it moved to the trash


class UsageService:
    """Bytes stored and bandwidth per bridge."""

    def __init__(self, db: UsageDB) -> None:
        self._db = db
        self._usage: dict[bytes, BridgeUsage] = defaultdict(BridgeUsage)
        self._pending: dict[bytes, list[int]] = defaultdict(lambda: [0, 0])
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
            self._pending[bridge][0] += size

    def record_out(self, bridge: bytes, size: int) -> None:
        if size:
            self._usage[bridge].bandwidth_out += size
            self._pending[bridge][1] += size

    async def flush(self) -> None:
        """Write the bandwidth counted since the last flush."""
        if not self._pending:
            return
        pending = {bridge: (v[0], v[1]) for bridge, v in self._pending.items()}
        self._pending.clear()
        try:
            await self._db.add_bandwidth(pending)
        except BaseException:
            for bridge, (bw_in, bw_out) in pending.items():  # keep them for the next flush
                self._pending[bridge][0] += bw_in
                self._pending[bridge][1] += bw_out
            raise

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
