"""What graceful exit needs from the database."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ExitNode:
    """A node's exit as recorded on its row."""

    node_id: bytes
    disqualified: bool
    started_at: int | None
    progress_at: int | None
    finished_at: int | None
    result: str | None  # "exited" or "failed" once finished


@dataclass(frozen=True, slots=True)
class PieceToMove:
    """A piece the exiting node still holds, with what placing it elsewhere must avoid."""

    root_piece_id: bytes
    piece_number: int
    piece_id: bytes  # the exiting node's
    size: int
    piece_hash: bytes
    holders: frozenset[bytes]  # nodes holding, or being sent, a piece of the same set
    nets: frozenset[str]  # their networks, but the exiting node's


@dataclass(frozen=True, slots=True)
class NewTransfer:
    """A transfer order to record: the serial is the signed PUT_REPAIR limit's."""

    serial: bytes
    root_piece_id: bytes
    piece_number: int
    node_id: bytes  # the new node
    piece_id: bytes  # derived for the new node
    expires_at: int


@dataclass(frozen=True, slots=True)
class OpenTransfer:
    """A transfer order, with its new node's key and the piece row as it is now."""

    serial: bytes
    root_piece_id: bytes
    piece_number: int
    node_id: bytes
    piece_id: bytes
    from_node_id: bytes | None
    public_key: bytes | None  # the new node's; None if it is not in the directory
    holder: bytes | None  # the node the pieces row names now; None if the row is gone
    holder_piece_id: bytes | None
    piece_hash: bytes | None
    size: int | None


@dataclass(frozen=True, slots=True)
class Moved:
    """A transfer whose receipt checked out: the piece's new home."""

    serial: bytes
    root_piece_id: bytes
    piece_number: int
    node_id: bytes
    piece_id: bytes
    receipt: bytes
    stored_at: int


class ExitDB(Protocol):
    def exit_node(self, node_id: bytes) -> ExitNode | None: ...

    def begin(self, node_id: bytes, now: int) -> None:
        """Record the start of the node's exit, unless it started already."""
        ...

    def pieces_to_move(
        self, node_id: bytes, now: int, limit: int, draw: bytes
    ) -> list[PieceToMove]:
        """Up to `limit` of the node's pieces with no unexpired transfer order, from the first
        piece id at or after `draw` (wrapping around), with their sets' holders."""
        ...

    def add_transfers(
        self, node_id: bytes, transfers: Sequence[NewTransfer], now: int
    ) -> set[bytes]:
        """Record the transfers whose piece the node still holds and which no unexpired order
        covers (expired ones of this exit go, their pieces queued for deletion); the serials
        recorded. None once the node's exit ended."""
        ...

    def open_transfers(self, serials: Collection[bytes]) -> list[OpenTransfer]: ...

    def record_moves(
        self, node_id: bytes, moved: Sequence[Moved], dropped: Collection[bytes], now: int
    ) -> int:
        """In one transaction: point each moved piece at its new node if its row still names
        `node_id` (else queue the new piece for deletion), delete those transfer orders and the
        `dropped` ones of this exit (their pieces queued for deletion), and count progress.
        Returns how many pieces moved."""
        ...

    def recorded(self, pieces: Collection[tuple[bytes, bytes]]) -> set[tuple[bytes, bytes]]:
        """Which (node id, piece id) pairs a pieces row names."""
        ...

    def cancel_unreported(self, node_id: bytes, now: int) -> int:
        """Drop every transfer order of this exit still open (their pieces queued for
        deletion); how many."""
        ...

    def drop_lost(self, node_id: bytes, piece_ids: Collection[bytes], now: int) -> int:
        """Forget pieces the node says it no longer has (and their transfer orders)."""
        ...

    def cancel_transfers(self, node_id: bytes, piece_ids: Collection[bytes], now: int) -> int:
        """Drop this exit's transfer orders for the node's `piece_ids` (the new node may hold
        part of a piece: queued for deletion), so the pieces are handed out again."""
        ...

    def finish_if_done(self, node_id: bytes, now: int) -> tuple[ExitNode, int]:
        """Mark the exit ``exited`` if the node holds no piece and no upload may still record
        one on it; the node's exit and the pieces it still holds."""
        ...

    def remaining(self, node_id: bytes) -> int:
        """Pieces the bridge records on the node."""
        ...

    def fail(self, node_ids: Collection[bytes], now: int) -> None:
        """Mark unfinished exits ``failed`` (their transfer orders go)."""
        ...

    def fail_stalled(self, now: int, timeout: float) -> list[bytes]:
        """Mark ``failed`` every unfinished exit with no progress for `timeout` seconds; their
        node ids."""
        ...

    def exit_states(self) -> dict[bytes, ExitNode]:
        """Every node whose exit started."""
        ...
