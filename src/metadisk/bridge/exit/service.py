"""Graceful exit: a farmer that leaves moves its pieces to other nodes, farmer to farmer.

The farmer asks with a `NodeQuery` it signs (purpose ``graceful-exit``), the same way it reads
its standing. The first request starts the exit: from then on the node gets no new pieces
(`metadisk.bridge.db.overlay` leaves exiting nodes out of selection). Each answer hands out up
to `exit_batch` transfers: a new node for one of the node's pieces (none holding a piece of the
same set, nor on their networks unless `single_host`) and a PUT_REPAIR order limit for it, whose
serial is a `transfer_orders` row. The farmer PUTs the piece there and reports the new node's
receipt in its next request; the bridge checks it against the order and the piece's recorded hash
and size, then points the piece at the new node. An answer's transfers stand until the node's
next request: the farmer works through them before it asks again, so any it does not report then
was lost (it crashed, or the answer never reached it) and is cancelled, its new node asked to
delete what it got, and its piece handed out again at once rather than when its order limit
expires. A receipt reported again after it was recorded (the answer to that request was lost)
counts as moved. The exit ends ``exited`` when the node holds no piece, or ``failed`` when it
makes no progress for `exit_timeout` (`ExitDB.fail_stalled`, run by the repair checker) or is
disqualified: repair takes over from there.

Refused ``done`` entries, each with a code, are answered back and logged; they never touch the
piece, and their transfer is cancelled so the piece is handed out again:
``unknown-serial`` (no such transfer order: expired and replaced, or never issued),
``wrong-exit`` (another node's transfer), ``duplicate``, ``wrong-node``, ``wrong-piece`` (the
receipt or the entry names another piece than the order), ``unknown-node``, ``bad-signature``
(not signed by the new node's key), ``wrong-hash``, ``wrong-size`` (not the recorded piece).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from metadisk.bridge import errors
from metadisk.bridge.common import verified_query
from metadisk.bridge.config import NodesConfig, RepairConfig
from metadisk.bridge.exit.db import ExitDB, ExitNode, Moved, NewTransfer, OpenTransfer, PieceToMove
from metadisk.bridge.orders.service import OrderSigner
from metadisk.bridge.overlay.service import OverlayService
from metadisk.core.errors import SignatureError
from metadisk.core.identity import NodeId
from metadisk.core.messages import Action, NodeQuery, OrderLimit, PieceReceipt, derive_piece_id
from metadisk.runtime.logs import event
from metadisk.wire.api.nodes import EXIT_LOST_CODES, EXIT_PURPOSE, ExitState

log = logging.getLogger(__name__)

EXITED = "exited"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Done:
    """A piece the farmer says it moved: its own piece id and the new node's receipt."""

    piece_id: bytes
    receipt: PieceReceipt


@dataclass(frozen=True, slots=True)
class Failed:
    piece_id: bytes
    code: str


@dataclass(frozen=True, slots=True)
class Transfer:
    piece_id: bytes  # the exiting node's
    address: str
    limit: OrderLimit
    piece_hash: bytes


@dataclass(frozen=True, slots=True)
class Refusal:
    piece_id: bytes
    code: str


@dataclass(frozen=True, slots=True)
class ExitAnswer:
    state: ExitState
    transfers: list[Transfer]
    remaining: int
    refused: list[Refusal]


class ExitService:
    def __init__(
        self,
        db: ExitDB,
        overlay: OverlayService,
        signer: OrderSigner,
        nodes: NodesConfig,
        repair: RepairConfig,
        *,
        randbytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._db = db
        self._overlay = overlay
        self._signer = signer
        self._nodes = nodes
        self._repair = repair
        self._randbytes = randbytes

    def exit(
        self, encoded_query: bytes, done: Sequence[Done], failed: Sequence[Failed], now: int
    ) -> ExitAnswer:
        """Start or go on with the exit of the node that signed `encoded_query`: record what it
        moved and could not move, then hand out the next transfers."""
        query = self._verify(encoded_query, now)
        node_id = query.node_id.raw
        node = self._db.exit_node(node_id)
        if node is None:
            raise errors.NotFound("this node never checked in here", code="node-not-found")
        if node.finished_at is not None:
            return ExitAnswer(_state(node), [], self._db.remaining(node_id), [])
        if node.disqualified:
            if node.started_at is None:
                raise errors.AccessDenied(
                    "a disqualified node cannot exit: its pieces count as lost",
                    code="exit-refused",
                )
            self._db.fail([node_id], now)  # disqualified during its exit: repair takes over
            event(log, logging.WARNING, "exit failed", node=node_id, reason="disqualified")
            return ExitAnswer("failed", [], self._db.remaining(node_id), [])
        if node.started_at is None:
            self._db.begin(node_id, now)
            event(log, logging.INFO, "exit started", node=node_id)
        refused = self._record_done(node_id, done, now)
        self._record_failed(node_id, failed, now)
        lost = self._db.cancel_unreported(node_id, now)
        if lost:
            event(log, logging.INFO, "exit transfers not reported", node=node_id, count=lost)
        node, remaining = self._db.finish_if_done(node_id, now)
        if node.finished_at is not None:
            event(log, logging.INFO, "exit ended", node=node_id, result=node.result)
            return ExitAnswer(_state(node), [], remaining, refused)
        transfers = self._hand_out(node_id, now)
        return ExitAnswer("exiting", transfers, remaining, refused)

    def fail_stalled(self, now: int) -> list[bytes]:
        """Mark ``failed`` the exits that made no progress for `exit_timeout` (for the repair
        checker's chore); their node ids."""
        failed = self._db.fail_stalled(now, self._repair.exit_timeout)
        for node_id in failed:
            event(log, logging.WARNING, "exit failed", node=node_id, reason="no-progress")
        return failed

    def _verify(self, encoded: bytes, now: int) -> NodeQuery:
        # The same checks, and codes, as a farmer's standing query.
        bridge_id = self._signer.identity.node_id
        return verified_query(encoded, EXIT_PURPOSE, bridge_id, now, self._nodes.contact_skew)

    # -- what the farmer reports

    def _record_done(self, node_id: bytes, done: Sequence[Done], now: int) -> list[Refusal]:
        if not done:
            return []
        orders = {o.serial: o for o in self._db.open_transfers({d.receipt.serial for d in done})}
        unknown = [d.receipt for d in done if d.receipt.serial not in orders]
        recorded = self._db.recorded({(r.node_id.raw, r.piece_id) for r in unknown})
        moved: list[Moved] = []
        dropped: set[bytes] = set()
        refused: list[Refusal] = []
        seen: set[bytes] = set()
        for entry in done:
            order = orders.get(entry.receipt.serial)
            if order is None and (entry.receipt.node_id.raw, entry.receipt.piece_id) in recorded:
                continue  # moved already: a request whose answer was lost, sent again
            code = _check(node_id, entry, order, seen)
            if order is not None and order.from_node_id == node_id:
                seen.add(order.serial)
            if code is None:
                assert order is not None
                receipt = entry.receipt
                moved.append(
                    Moved(
                        order.serial,
                        order.root_piece_id,
                        order.piece_number,
                        order.node_id,
                        order.piece_id,
                        receipt.encode(),
                        receipt.stored_at,
                    )
                )
                continue
            refused.append(Refusal(entry.piece_id, code))
            event(log, logging.INFO, "exit transfer refused", node=node_id, code=code)
            if order is not None and order.from_node_id == node_id and code != "duplicate":
                dropped.add(order.serial)  # hand the piece out again
        if moved or dropped:
            self._db.record_moves(node_id, moved, dropped, now)
        return refused

    def _record_failed(self, node_id: bytes, failed: Sequence[Failed], now: int) -> None:
        lost = {f.piece_id for f in failed if f.code in EXIT_LOST_CODES}
        other = {f.piece_id for f in failed if f.code not in EXIT_LOST_CODES} - lost
        if lost:
            dropped = self._db.drop_lost(node_id, lost, now)
            event(log, logging.WARNING, "exiting node lost pieces", node=node_id, pieces=dropped)
        if other:
            self._db.cancel_transfers(node_id, other, now)
            codes = ",".join(sorted({f.code for f in failed if f.piece_id in other}))
            event(log, logging.INFO, "exit transfers failed", node=node_id, codes=codes[:200])

    # -- what the farmer is told to do next

    def _hand_out(self, node_id: bytes, now: int) -> list[Transfer]:
        batch = self._repair.exit_batch
        pieces = self._db.pieces_to_move(node_id, now, batch, self._randbytes(32))
        planned: list[tuple[NewTransfer, Transfer]] = []
        sent: dict[bytes, set[bytes]] = {}  # set -> nodes chosen for it in this batch
        for piece in pieces:
            target = self._place(node_id, piece, sent.setdefault(piece.root_piece_id, set()), now)
            if target is None:
                continue
            node, address = target
            new_id = derive_piece_id(piece.root_piece_id, NodeId(node), piece.piece_number)
            limit = self._signer.sign(NodeId(node), new_id, Action.PUT_REPAIR, piece.size, now)
            root, number = piece.root_piece_id, piece.piece_number
            order = NewTransfer(limit.serial, root, number, node, new_id, limit.expires_at)
            planned.append((order, Transfer(piece.piece_id, address, limit, piece.piece_hash)))
        if not planned:
            if pieces:
                event(log, logging.WARNING, "no node for exit transfers", node=node_id)
            return []
        # Signed before they are recorded, but handed out only once recorded: a limit whose row
        # did not make it (a race with another request of the node, or a repair) is dropped.
        recorded = self._db.add_transfers(node_id, [order for order, _ in planned], now)
        return [transfer for order, transfer in planned if order.serial in recorded]

    def _place(
        self, node_id: bytes, piece: PieceToMove, chosen: set[bytes], now: int
    ) -> tuple[bytes, str] | None:
        exclude = piece.holders | chosen | {node_id}
        try:
            (candidate,) = self._overlay.select(
                1, 1, piece.size, now, exclude=exclude, exclude_nets=piece.nets
            )
        except errors.Unavailable:
            return None  # tried again next round; a stuck exit fails after exit_timeout
        chosen.add(candidate.node_id)
        return candidate.node_id, candidate.address


def _check(node_id: bytes, entry: Done, order: OpenTransfer | None, seen: set[bytes]) -> str | None:
    """Why a `done` entry is refused, or None if its piece may move."""
    receipt = entry.receipt
    if order is None:
        return "unknown-serial"
    if order.from_node_id != node_id:
        return "wrong-exit"
    if order.serial in seen:
        return "duplicate"
    if receipt.node_id.raw != order.node_id:
        return "wrong-node"
    if receipt.piece_id != order.piece_id:
        return "wrong-piece"
    if order.public_key is None:
        return "unknown-node"
    try:
        receipt.verify_signature(order.public_key)
    except SignatureError:
        return "bad-signature"
    if order.holder != node_id:
        return None  # the piece changed hands meanwhile: recorded as moot, new piece deleted
    if entry.piece_id != order.holder_piece_id:
        return "wrong-piece"
    if receipt.piece_hash != order.piece_hash:
        return "wrong-hash"
    if receipt.size != order.size:
        return "wrong-size"
    return None


def _state(node: ExitNode) -> ExitState:
    if node.finished_at is None:
        return "exiting"
    return "exited" if node.result == EXITED else "failed"
