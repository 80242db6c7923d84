"""What the usage service needs from its database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(slots=True)
class BridgeUsage:
    """Counters for one bridge's namespace; bytes, except `pieces`."""

    stored: int = 0
    pieces: int = 0
    trash: int = 0
    bandwidth_in: int = 0
    bandwidth_out: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "stored": self.stored,
            "pieces": self.pieces,
            "trash": self.trash,
            "bandwidth_in": self.bandwidth_in,
            "bandwidth_out": self.bandwidth_out,
        }


@dataclass(frozen=True, slots=True)
class DayBandwidth:
    """Bytes received and sent on one UTC day (`day`: days since 1970-01-01), all bridges."""

    day: int
    bandwidth_in: int = 0
    bandwidth_out: int = 0


class UsageDB(Protocol):
    async def usage(self) -> dict[bytes, BridgeUsage]:
        """Every bridge's counters, as last committed."""
        ...

    async def add_bandwidth(self, deltas: dict[tuple[int, bytes], tuple[int, int]]) -> None:
        """Add (in, out) bytes to each (day, bridge)'s bandwidth counters: the bridge's totals
        and the day's."""
        ...

    async def bandwidth_days(self, since: int) -> list[DayBandwidth]:
        """Bandwidth per day from day `since` on, oldest first; days without any are left out."""
        ...
