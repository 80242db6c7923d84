"""What the repair checker and the repairer need from the database."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SetHealth:
    """One piece set as the checker sees it: its scheme and how many pieces are healthy."""

    root_piece_id: bytes
    k: int
    m: int
    o: int
    n: int
    healthy: int


@dataclass(frozen=True, slots=True)
class Holder:
    """One piece of a set, with what the repairer needs of the node that holds it.

    `healthy`: on a node that is online and neither disqualified, suspended nor leaving.
    `retrievable`: a repair may download it (online, not disqualified; a suspended or exiting
    node still serves what it holds). `address` is None if the node left the directory.
    """

    piece_number: int
    node_id: bytes
    piece_id: bytes
    size: int
    piece_hash: bytes
    address: str | None
    last_net: str
    healthy: bool
    retrievable: bool


@dataclass(frozen=True, slots=True)
class RepairJob:
    root_piece_id: bytes
    k: int
    m: int
    o: int
    n: int
    piece_size: int
    holders: tuple[Holder, ...]
    attempts: int

    @property
    def healthy(self) -> int:
        return sum(1 for h in self.holders if h.healthy)


@dataclass(frozen=True, slots=True)
class NewPiece:
    """A rebuilt piece stored on a new node, with its verified receipt."""

    serial: bytes
    piece_number: int
    node_id: bytes
    piece_id: bytes
    size: int
    piece_hash: bytes
    stored_at: int
    receipt: bytes
    replaces: bytes | None  # the node whose row for this piece number it takes over, if any


@dataclass(frozen=True, slots=True)
class PlannedTransfer:
    serial: bytes
    piece_number: int
    node_id: bytes
    piece_id: bytes
    expires_at: int


@dataclass(frozen=True, slots=True)
class CommitResult:
    kept: int  # new pieces recorded
    discarded: int  # new pieces queued for deletion: the set is gone, or the row changed
    healthy: int  # healthy pieces the set has now


@dataclass(frozen=True, slots=True)
class HealthSummary:
    """The checker's last full pass, and the queue as it stands."""

    checked_at: int | None
    piece_sets: int
    injured: int
    lost: int
    repaired: int
    queued: dict[int, int]  # healthy pieces -> sets queued with that many


class RepairDB(Protocol):
    def sets_after(self, after: bytes, limit: int) -> list[bytes]:
        """The next `limit` piece sets' root ids in order, after `after` (b"" to start)."""
        ...

    def check_sets(self, roots: Sequence[bytes], online_since: int, now: int) -> list[SetHealth]:
        """Each of `roots` that still exists, with its healthy piece count; in the same
        transaction, those at or below m queued (or their count updated) and the others
        dropped from the queue."""
        ...

    def queue_repairs(self, sets: Sequence[SetHealth], healed: Sequence[bytes], now: int) -> None:
        """Queue (or update) `sets`, and drop `healed` from the queue."""
        ...

    def finish_check(
        self, started_at: int, now: int, piece_sets: int, injured: int, lost: int
    ) -> None:
        """Drop queued sets the pass did not see (they are gone) and store its summary."""
        ...

    def claim_repairs(self, now: int, lease: int, limit: int) -> list[bytes]:
        """Due queued sets with at least k healthy pieces, least healthy first, leased."""
        ...

    def repair_job(self, root: bytes, online_since: int) -> RepairJob | None:
        """The set's shape and pieces; None if it is gone."""
        ...

    def plan_transfers(self, root: bytes, transfers: Sequence[PlannedTransfer]) -> None:
        """Record PUT_REPAIR order limits before they are signed (garbage collection keeps
        their pieces)."""
        ...

    def commit_repair(
        self,
        root: bytes,
        pieces: Sequence[NewPiece],
        dropped: Sequence[bytes],
        now: int,
        online_since: int,
    ) -> CommitResult:
        """Swap `pieces` into the set in one transaction (each only if its piece number's row
        still names `replaces`), queue deletes for what they replace and for what cannot be
        kept, forget every serial of `dropped` (transfers that failed) and the queue entry."""
        ...

    def report_bad(self, root: bytes, bad: Mapping[int, bytes], now: int) -> None:
        """Queue audits of pieces (number -> node id) a repair found missing or damaged."""
        ...

    def retry_later(self, root: bytes, now: int, delay: int, max_attempts: int) -> None: ...

    def summary(self) -> HealthSummary: ...
