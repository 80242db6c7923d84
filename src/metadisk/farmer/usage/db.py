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


class UsageDB(Protocol):
    async def usage(self) -> dict[bytes, BridgeUsage]:
        """Every bridge's counters, as last committed."""
        ...

    async def add_bandwidth(self, deltas: dict[bytes, tuple[int, int]]) -> None:
        """Add (in, out) bytes to each bridge's bandwidth counters."""
        ...
