"""What the piece service needs from its metadata database.

Piece files are the truth about which pieces exist; the database holds what files cannot say
cheaply: used PUT serials, TTLs, usage counters, and a journal of file moves in flight so a crash
between a move and its counter update is repaired exactly at the next start.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Move:
    """A file move (or removal, `dst` None) and the counter changes it makes once done.

    A move is done exactly when `src` no longer exists, which is what recovery checks.
    """

    bridge: bytes
    piece_id: bytes
    src: str  # relative to the data dir
    dst: str | None
    stored: int = 0  # change of stored bytes (piece files, on disk)
    pieces: int = 0  # change of the piece count
    trash: int = 0  # change of bytes in the trash


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A journaled move, with its row id."""

    id: int
    move: Move


@dataclass(frozen=True, slots=True)
class Expiring:
    """A piece whose TTL has passed."""

    bridge: bytes
    piece_id: bytes


class PieceDB(Protocol):
    async def serial_used(self, serial: bytes) -> bool:
        """Whether a PUT serial was already used."""
        ...

    async def begin_put(
        self, serial: bytes, serial_expires_at: int, piece_expires_at: int, move: Move
    ) -> int:
        """Durably record the serial, the TTL and the journaled move; raise `Conflict`
        (serial-reused) if the serial was used. Returns the journal id."""
        ...

    def begin_put_soon(
        self, serial: bytes, serial_expires_at: int, piece_expires_at: int, move: Move
    ) -> Future[int]:
        """`begin_put` for a caller on any thread (the piece I/O threads): returns at once, the
        future settles after the durable commit."""
        ...

    async def begin_moves(self, moves: list[Move]) -> list[int]:
        """Durably journal moves about to happen; returns their ids."""
        ...

    async def finish_moves(self, done: list[JournalEntry], undone: list[JournalEntry]) -> None:
        """Apply the counters of `done` moves, forget both lists' journal rows and the TTLs of
        pieces moved out of the store."""
        ...

    def finish_moves_soon(
        self, done: list[JournalEntry], undone: list[JournalEntry]
    ) -> Future[None]:
        """`finish_moves` for a caller on any thread; returns at once."""
        ...

    def finish_moves_later(self, done: list[JournalEntry]) -> None:
        """`finish_moves(done, [])` some time soon, for moves nobody waits on; any thread."""
        ...

    async def journal(self) -> list[JournalEntry]:
        """Moves that were journaled but never finished (after a crash)."""
        ...

    async def expired(self, now: int, limit: int) -> list[Expiring]:
        """Up to `limit` pieces whose TTL is at or before `now`."""
        ...

    async def forget_expiration(self, bridge: bytes, piece_id: bytes) -> None: ...

    async def prune_serials(self, now: int) -> int:
        """Forget serials of order limits that expired before `now`; returns how many."""
        ...
