"""Signing order limits and checking piece receipts against the order limits issued.

Receipt checks are a flat list of named failures (`RECEIPT_FAILURES`), checked in that order;
a receipt that fails one is rejected and its piece not recorded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from metadisk.core.encoding import b64decode
from metadisk.core.errors import CoreError, SignatureError
from metadisk.core.identity import Identity, NodeId
from metadisk.core.messages import SERIAL_SIZE, Action, OrderLimit, PieceReceipt

RECEIPT_FAILURES = (
    "malformed",  # not base64url of a PieceReceipt
    "unknown-serial",  # answers no order limit issued for this segment
    "wrong-node",  # signed for another node than the order limit's
    "wrong-piece",  # another piece id than the order limit's
    "wrong-size",  # size differs from the segment's piece size
    "unknown-node",  # the node is not in the directory
    "bad-signature",  # not signed by the node's key
    "duplicate",  # a second receipt for one order limit or one node
)


@dataclass(frozen=True, slots=True)
class IssuedOrder:
    """An order limit handed out for one piece of a segment being uploaded."""

    serial: bytes
    piece_number: int
    node_id: NodeId
    piece_id: bytes
    piece_size: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class AcceptedPiece:
    piece_number: int
    node_id: NodeId
    piece_id: bytes
    size: int
    piece_hash: bytes
    stored_at: int
    serial: bytes
    receipt: bytes = b""  # the encoded, verified receipt: kept as audit evidence


@dataclass(frozen=True, slots=True)
class Rejection:
    position: int  # index of the receipt in the request
    code: str
    message: str


class OrderSigner:
    """Makes order limits signed by the bridge's identity."""

    def __init__(
        self,
        identity: Identity,
        ttl: int,
        randbytes: Callable[[int], bytes] = os.urandom,
        *,
        signed: Callable[[Action], None] = lambda action: None,
    ) -> None:
        self.identity = identity
        self._ttl = ttl
        self._randbytes = randbytes
        self._signed = signed  # told of every order limit signed (metrics)

    def sign(
        self, node_id: NodeId, piece_id: bytes, action: Action, limit: int, now: int
    ) -> OrderLimit:
        self._signed(action)
        return OrderLimit(
            serial=self._randbytes(SERIAL_SIZE),
            bridge_id=self.identity.node_id,
            node_id=node_id,
            piece_id=piece_id,
            action=action,
            limit=limit,
            issued_at=now,
            expires_at=now + self._ttl,
        ).signed_by(self.identity)


def check_receipts(
    receipts: Sequence[str],
    issued: Sequence[IssuedOrder],
    public_keys: Mapping[NodeId, bytes],
) -> tuple[list[AcceptedPiece], list[Rejection]]:
    """Split `receipts` (base64url) into pieces to record and named rejections."""
    by_serial = {order.serial: order for order in issued}
    accepted: list[AcceptedPiece] = []
    rejected: list[Rejection] = []
    seen_serials: set[bytes] = set()
    seen_nodes: set[NodeId] = set()
    for position, text in enumerate(receipts):

        def reject(code: str, message: str, position: int = position) -> None:
            rejected.append(Rejection(position, code, message))

        try:
            receipt = PieceReceipt.decode(b64decode(text))
        except CoreError as exc:
            reject("malformed", f"not a piece receipt: {exc}")
            continue
        order = by_serial.get(receipt.serial)
        if order is None:
            reject("unknown-serial", "receipt answers no order limit issued for this segment")
            continue
        if receipt.node_id != order.node_id:
            reject("wrong-node", "receipt is signed for another node than its order limit")
            continue
        if receipt.piece_id != order.piece_id:
            reject("wrong-piece", "receipt names another piece than its order limit")
            continue
        if receipt.size != order.piece_size:
            reject("wrong-size", f"piece is {receipt.size} bytes, expected {order.piece_size}")
            continue
        public_key = public_keys.get(order.node_id)
        if public_key is None:
            reject("unknown-node", "the receipt's node is not in the directory")
            continue
        try:
            receipt.verify_signature(public_key)
        except SignatureError:
            reject("bad-signature", "receipt is not signed by its node")
            continue
        if receipt.serial in seen_serials or receipt.node_id in seen_nodes:
            reject("duplicate", "a second receipt for the same order limit or node")
            continue
        seen_serials.add(receipt.serial)
        seen_nodes.add(receipt.node_id)
        accepted.append(
            AcceptedPiece(
                piece_number=order.piece_number,
                node_id=order.node_id,
                piece_id=order.piece_id,
                size=receipt.size,
                piece_hash=receipt.piece_hash,
                stored_at=receipt.stored_at,
                serial=order.serial,
                receipt=receipt.encode(),
            )
        )
    return accepted, rejected
