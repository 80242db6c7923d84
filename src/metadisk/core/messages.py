"""Signed wire messages between bridge, farmers and clients.

- `OrderLimit`: the bridge's permission for one action on one piece at one farmer.
- `PieceReceipt`: the farmer's signed statement that it stored a piece (size, Merkle-root hash).
- `NodeContact`: the farmer's signed check-in (key, address, space, version).
- `AuditResponse`: the farmer's signed answer to an audit (a leaf's hash and its Merkle proof),
  which with its `PieceReceipt` is evidence anyone can check (`metadisk.core.audit`).
- `NodeQuery`: a farmer's signed, timestamped request to read its own standing at a bridge.
- `RetainRequest`: a bridge's signed garbage-collection request: a Bloom filter of the pieces a
  farmer should keep (`metadisk.core.bloom`), and the time before which the others may go.

Each message is a frozen dataclass with `encode()` / `decode()` over the canonical format of
`metadisk.core.encoding`; the signature covers a domain prefix plus every field before it, so a
signature for one kind of message can never be replayed as another. Verification takes `now` as an
argument; core never reads a clock.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

import blake3

from metadisk.core.bloom import MAX_ENCODED as MAX_FILTER
from metadisk.core.bloom import BloomFilter
from metadisk.core.encoding import Reader, Writer
from metadisk.core.errors import CoreError, DecodeError, SignatureError
from metadisk.core.identity import (
    NODE_ID_SIZE,
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    Identity,
    NodeId,
    verify_signature,
)

PIECE_ID_SIZE = 32
SERIAL_SIZE = 16
HASH_SIZE = 32
_SIGNING_DOMAIN = b"metadisk signed message\x00"
_PIECE_ID_CONTEXT = "metadisk 2026 derived piece id v1"

TAG_ORDER_LIMIT = 1
TAG_PIECE_RECEIPT = 2
TAG_NODE_CONTACT = 3
TAG_AUDIT_RESPONSE = 4
TAG_NODE_QUERY = 5
TAG_RETAIN_REQUEST = 6
MAX_PROOF = 4096  # an encoded MerkleProof is at most 11 + 32 * 32 bytes


class Action(enum.IntEnum):
    """What an order limit allows. Values are wire format: never renumber, only append."""

    PUT = 1
    GET = 2
    AUDIT = 3
    DELETE = 4
    GET_REPAIR = 5
    PUT_REPAIR = 6

    @property
    def is_put(self) -> bool:
        return self in (Action.PUT, Action.PUT_REPAIR)

    @property
    def is_get(self) -> bool:
        return self in (Action.GET, Action.GET_REPAIR)


def derive_piece_id(root_piece_id: bytes, node_id: NodeId, piece_number: int) -> bytes:
    """The id a farmer sees for piece `piece_number` of a segment.

    Derived per node with a keyed hash, so farmers holding pieces of one segment cannot tell they
    belong together; only the bridge knows the segment's root piece id.
    """
    if len(root_piece_id) != PIECE_ID_SIZE:
        raise ValueError("a root piece id is exactly 32 bytes")
    if not 0 <= piece_number < 1 << 16:
        raise ValueError("piece number out of range")
    key = blake3.blake3(root_piece_id, derive_key_context=_PIECE_ID_CONTEXT).digest()
    return blake3.blake3(node_id.raw + piece_number.to_bytes(2, "big"), key=key).digest()


def _signing_bytes(body: bytes) -> bytes:
    return _SIGNING_DOMAIN + body


@dataclass(frozen=True, slots=True)
class OrderLimit:
    """A bridge's signed permission: `action` on `piece_id` at `node_id`, up to `limit` bytes."""

    serial: bytes
    bridge_id: NodeId
    node_id: NodeId
    piece_id: bytes
    action: Action
    limit: int
    issued_at: int
    expires_at: int
    piece_expires_at: int = 0  # 0: the piece is kept until deleted
    signature: bytes = b""

    VERSION = 1

    def __post_init__(self) -> None:
        _check_size("serial", self.serial, SERIAL_SIZE)
        _check_size("piece id", self.piece_id, PIECE_ID_SIZE)
        for name in ("limit", "issued_at", "expires_at", "piece_expires_at"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < 1 << 64:
                raise DecodeError(f"{name} out of range")

    def _body(self) -> bytes:
        return (
            Writer()
            .u8(TAG_ORDER_LIMIT)
            .u8(self.VERSION)
            .fixed(self.serial, SERIAL_SIZE)
            .fixed(self.bridge_id.raw, NODE_ID_SIZE)
            .fixed(self.node_id.raw, NODE_ID_SIZE)
            .fixed(self.piece_id, PIECE_ID_SIZE)
            .u8(int(self.action))
            .u64(self.limit)
            .u64(self.issued_at)
            .u64(self.expires_at)
            .u64(self.piece_expires_at)
            .getvalue()
        )

    def signed_by(self, bridge: Identity) -> OrderLimit:
        """Return a copy signed by `bridge` (whose node id must be `bridge_id`)."""
        if bridge.node_id != self.bridge_id:
            raise ValueError("signer is not the order limit's bridge")
        return replace(self, signature=bridge.sign(_signing_bytes(self._body())))

    def verify_signature(self, bridge_public_key: bytes) -> None:
        if NodeId.from_public_key(bridge_public_key) != self.bridge_id:
            raise SignatureError("key does not belong to the order limit's bridge")
        verify_signature(bridge_public_key, _signing_bytes(self._body()), self.signature)

    def encode(self) -> bytes:
        return self._body() + self.signature

    @classmethod
    def decode(cls, data: bytes) -> OrderLimit:
        r = Reader(data)
        r.header(TAG_ORDER_LIMIT, cls.VERSION)
        serial = r.fixed(SERIAL_SIZE)
        bridge_id = NodeId(r.fixed(NODE_ID_SIZE))
        node_id = NodeId(r.fixed(NODE_ID_SIZE))
        piece_id = r.fixed(PIECE_ID_SIZE)
        action = _action(r.u8())
        limit, issued_at, expires_at, piece_expires_at = r.u64(), r.u64(), r.u64(), r.u64()
        signature = r.fixed(SIGNATURE_SIZE)
        r.end()
        return cls(
            serial, bridge_id, node_id, piece_id, action, limit, issued_at, expires_at,
            piece_expires_at, signature,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class PieceReceipt:
    """A farmer's signed proof that it stored a piece exactly as uploaded."""

    serial: bytes  # the order limit this answers
    node_id: NodeId
    piece_id: bytes
    size: int
    piece_hash: bytes  # the piece's Merkle root (metadisk.core.merkle), which audits prove against
    stored_at: int
    signature: bytes = b""

    VERSION = 1

    def __post_init__(self) -> None:
        _check_size("serial", self.serial, SERIAL_SIZE)
        _check_size("piece id", self.piece_id, PIECE_ID_SIZE)
        _check_size("piece hash", self.piece_hash, HASH_SIZE)
        for name in ("size", "stored_at"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < 1 << 64:
                raise DecodeError(f"{name} out of range")

    def _body(self) -> bytes:
        return (
            Writer()
            .u8(TAG_PIECE_RECEIPT)
            .u8(self.VERSION)
            .fixed(self.serial, SERIAL_SIZE)
            .fixed(self.node_id.raw, NODE_ID_SIZE)
            .fixed(self.piece_id, PIECE_ID_SIZE)
            .u64(self.size)
            .fixed(self.piece_hash, HASH_SIZE)
            .u64(self.stored_at)
            .getvalue()
        )

    def signed_by(self, farmer: Identity) -> PieceReceipt:
        if farmer.node_id != self.node_id:
            raise ValueError("signer is not the receipt's node")
        return replace(self, signature=farmer.sign(_signing_bytes(self._body())))

    def verify_signature(self, farmer_public_key: bytes) -> None:
        if NodeId.from_public_key(farmer_public_key) != self.node_id:
            raise SignatureError("key does not belong to the receipt's node")
        verify_signature(farmer_public_key, _signing_bytes(self._body()), self.signature)

    def encode(self) -> bytes:
        return self._body() + self.signature

    @classmethod
    def decode(cls, data: bytes) -> PieceReceipt:
        r = Reader(data)
        r.header(TAG_PIECE_RECEIPT, cls.VERSION)
        serial = r.fixed(SERIAL_SIZE)
        node_id = NodeId(r.fixed(NODE_ID_SIZE))
        piece_id = r.fixed(PIECE_ID_SIZE)
        size = r.u64()
        piece_hash = r.fixed(HASH_SIZE)
        stored_at = r.u64()
        signature = r.fixed(SIGNATURE_SIZE)
        r.end()
        return cls(serial, node_id, piece_id, size, piece_hash, stored_at, signature)


@dataclass(frozen=True, slots=True)
class NodeContact:
    """A farmer's signed check-in: who it is, where to reach it, how much space it has."""

    public_key: bytes
    address: str  # base URL of the farmer's data plane, e.g. http://127.0.0.1:7001
    allocated: int
    free: int
    version: str
    timestamp: int
    signature: bytes = b""

    VERSION = 1
    MAX_ADDRESS = 2048

    def __post_init__(self) -> None:
        _check_size("public key", self.public_key, PUBLIC_KEY_SIZE)
        if len(self.address.encode()) > self.MAX_ADDRESS or len(self.version.encode()) > 64:
            raise DecodeError("address or version too long")
        for name in ("allocated", "free", "timestamp"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < 1 << 64:
                raise DecodeError(f"{name} out of range")

    @property
    def node_id(self) -> NodeId:
        return NodeId.from_public_key(self.public_key)

    def _body(self) -> bytes:
        return (
            Writer()
            .u8(TAG_NODE_CONTACT)
            .u8(self.VERSION)
            .fixed(self.public_key, PUBLIC_KEY_SIZE)
            .text(self.address)
            .u64(self.allocated)
            .u64(self.free)
            .text(self.version)
            .u64(self.timestamp)
            .getvalue()
        )

    def signed_by(self, farmer: Identity) -> NodeContact:
        if farmer.public_key != self.public_key:
            raise ValueError("signer is not the contact's node")
        return replace(self, signature=farmer.sign(_signing_bytes(self._body())))

    def verify_signature(self) -> None:
        verify_signature(self.public_key, _signing_bytes(self._body()), self.signature)

    def encode(self) -> bytes:
        return self._body() + self.signature

    @classmethod
    def decode(cls, data: bytes) -> NodeContact:
        r = Reader(data)
        r.header(TAG_NODE_CONTACT, cls.VERSION)
        public_key = r.fixed(PUBLIC_KEY_SIZE)
        address = r.text(cls.MAX_ADDRESS)
        allocated, free = r.u64(), r.u64()
        version = r.text(64)
        timestamp = r.u64()
        signature = r.fixed(SIGNATURE_SIZE)
        r.end()
        return cls(public_key, address, allocated, free, version, timestamp, signature)


@dataclass(frozen=True, slots=True)
class AuditResponse:
    """A farmer's signed answer to an audit: leaf `leaf_index` of a piece hashes to `leaf_hash`
    (`metadisk.core.merkle.leaf_hash`), is `leaf_size` bytes, and `proof` (an encoded
    `MerkleProof`) places it under the piece's root.

    Signed, so a wrong answer is the farmer's own statement: with the receipt in which the same
    farmer signed the root, anyone can check the fault without trusting the bridge.
    """

    serial: bytes  # the AUDIT order limit this answers
    node_id: NodeId
    piece_id: bytes
    leaf_index: int
    leaf_hash: bytes
    leaf_size: int
    proof: bytes
    signature: bytes = b""

    VERSION = 1

    def __post_init__(self) -> None:
        _check_size("serial", self.serial, SERIAL_SIZE)
        _check_size("piece id", self.piece_id, PIECE_ID_SIZE)
        _check_size("leaf hash", self.leaf_hash, HASH_SIZE)
        for name in ("leaf_index", "leaf_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < 1 << 32:
                raise DecodeError(f"{name} out of range")
        if not isinstance(self.proof, bytes) or len(self.proof) > MAX_PROOF:
            raise DecodeError("proof too long")

    def _body(self) -> bytes:
        return (
            Writer()
            .u8(TAG_AUDIT_RESPONSE)
            .u8(self.VERSION)
            .fixed(self.serial, SERIAL_SIZE)
            .fixed(self.node_id.raw, NODE_ID_SIZE)
            .fixed(self.piece_id, PIECE_ID_SIZE)
            .u32(self.leaf_index)
            .fixed(self.leaf_hash, HASH_SIZE)
            .u32(self.leaf_size)
            .blob(self.proof)
            .getvalue()
        )

    def signed_by(self, farmer: Identity) -> AuditResponse:
        if farmer.node_id != self.node_id:
            raise ValueError("signer is not the audit response's node")
        return replace(self, signature=farmer.sign(_signing_bytes(self._body())))

    def verify_signature(self, farmer_public_key: bytes) -> None:
        if NodeId.from_public_key(farmer_public_key) != self.node_id:
            raise SignatureError("key does not belong to the audit response's node")
        verify_signature(farmer_public_key, _signing_bytes(self._body()), self.signature)

    def encode(self) -> bytes:
        return self._body() + self.signature

    @classmethod
    def decode(cls, data: bytes) -> AuditResponse:
        r = Reader(data)
        r.header(TAG_AUDIT_RESPONSE, cls.VERSION)
        serial = r.fixed(SERIAL_SIZE)
        node_id = NodeId(r.fixed(NODE_ID_SIZE))
        piece_id = r.fixed(PIECE_ID_SIZE)
        leaf_index = r.u32()
        leaf_hash = r.fixed(HASH_SIZE)
        leaf_size = r.u32()
        proof = r.blob(MAX_PROOF)
        signature = r.fixed(SIGNATURE_SIZE)
        r.end()
        return cls(serial, node_id, piece_id, leaf_index, leaf_hash, leaf_size, proof, signature)


@dataclass(frozen=True, slots=True)
class NodeQuery:
    """A farmer's signed request to one bridge, e.g. to read its own standing there.

    `purpose` names what is asked, so a query signed for one purpose is no good for another;
    the bridge refuses queries whose `timestamp` is far from its clock, which bounds replays.
    """

    public_key: bytes
    bridge_id: NodeId
    purpose: str
    timestamp: int
    signature: bytes = b""

    VERSION = 1
    MAX_PURPOSE = 64

    def __post_init__(self) -> None:
        _check_size("public key", self.public_key, PUBLIC_KEY_SIZE)
        if len(self.purpose.encode()) > self.MAX_PURPOSE:
            raise DecodeError("purpose too long")
        if not isinstance(self.timestamp, int) or not 0 <= self.timestamp < 1 << 64:
            raise DecodeError("timestamp out of range")

    @property
    def node_id(self) -> NodeId:
        return NodeId.from_public_key(self.public_key)

    def _body(self) -> bytes:
        return (
            Writer()
            .u8(TAG_NODE_QUERY)
            .u8(self.VERSION)
            .fixed(self.public_key, PUBLIC_KEY_SIZE)
            .fixed(self.bridge_id.raw, NODE_ID_SIZE)
            .text(self.purpose)
            .u64(self.timestamp)
            .getvalue()
        )

    def signed_by(self, farmer: Identity) -> NodeQuery:
        if farmer.public_key != self.public_key:
            raise ValueError("signer is not the query's node")
        return replace(self, signature=farmer.sign(_signing_bytes(self._body())))

    def verify_signature(self) -> None:
        verify_signature(self.public_key, _signing_bytes(self._body()), self.signature)

    def encode(self) -> bytes:
        return self._body() + self.signature

    @classmethod
    def decode(cls, data: bytes) -> NodeQuery:
        r = Reader(data)
        r.header(TAG_NODE_QUERY, cls.VERSION)
        public_key = r.fixed(PUBLIC_KEY_SIZE)
        bridge_id = NodeId(r.fixed(NODE_ID_SIZE))
        purpose = r.text(cls.MAX_PURPOSE)
        timestamp = r.u64()
        signature = r.fixed(SIGNATURE_SIZE)
        r.end()
        return cls(public_key, bridge_id, purpose, timestamp, signature)


@dataclass(frozen=True, slots=True)
class RetainRequest:
    """A bridge's signed request to one farmer: keep the pieces in `filter` (an encoded
    `BloomFilter` of piece ids); pieces of this bridge stored before `created_before` (unix
    seconds, compared with the stored-at time the farmer signed in the piece's receipt) and not
    in the filter may be collected.

    A farmer takes only the newest request per bridge (`issued_at`) and only one issued near its
    own clock. Replaying an older signed request is harmless by construction: the pieces it does
    not list were all stored before its `created_before`, when the bridge no longer wanted them.
    """

    bridge_id: NodeId
    node_id: NodeId
    created_before: int
    issued_at: int
    filter: bytes
    signature: bytes = b""

    VERSION = 1
    MAX_FILTER = MAX_FILTER  # an encoded filter of up to 64 MiB of bits
    MAX_ENCODED = 2 + 2 * NODE_ID_SIZE + 8 + 8 + 4 + MAX_FILTER + SIGNATURE_SIZE

    def __post_init__(self) -> None:
        for name in ("created_before", "issued_at"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < 1 << 64:
                raise DecodeError(f"{name} out of range")
        if not isinstance(self.filter, bytes) or len(self.filter) > MAX_FILTER:
            raise DecodeError("filter too large")

    def _body(self) -> bytes:
        return (
            Writer()
            .u8(TAG_RETAIN_REQUEST)
            .u8(self.VERSION)
            .fixed(self.bridge_id.raw, NODE_ID_SIZE)
            .fixed(self.node_id.raw, NODE_ID_SIZE)
            .u64(self.created_before)
            .u64(self.issued_at)
            # a blob, written by hand: Writer caps blobs at 16 MiB, a filter may take 64
            .u32(len(self.filter))
            .getvalue()
        ) + self.filter

    def signed_by(self, bridge: Identity) -> RetainRequest:
        """Return a copy signed by `bridge` (whose node id must be `bridge_id`)."""
        if bridge.node_id != self.bridge_id:
            raise ValueError("signer is not the retain request's bridge")
        return replace(self, signature=bridge.sign(_signing_bytes(self._body())))

    def verify_signature(self, bridge_public_key: bytes) -> None:
        if NodeId.from_public_key(bridge_public_key) != self.bridge_id:
            raise SignatureError("key does not belong to the retain request's bridge")
        verify_signature(bridge_public_key, _signing_bytes(self._body()), self.signature)

    def bloom_filter(self) -> BloomFilter:
        """The decoded filter; `DecodeError` if it is not one."""
        return BloomFilter.decode(self.filter)

    def encode(self) -> bytes:
        return self._body() + self.signature

    @classmethod
    def decode(cls, data: bytes) -> RetainRequest:
        r = Reader(data)
        r.header(TAG_RETAIN_REQUEST, cls.VERSION)
        bridge_id = NodeId(r.fixed(NODE_ID_SIZE))
        node_id = NodeId(r.fixed(NODE_ID_SIZE))
        created_before, issued_at = r.u64(), r.u64()
        bloom = r.blob(MAX_FILTER)
        signature = r.fixed(SIGNATURE_SIZE)
        r.end()
        return cls(bridge_id, node_id, created_before, issued_at, bloom, signature)


class OrderLimitRejected(CoreError):
    """An order limit that does not allow the request; `code` names the failed check."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_order_limit(
    limit: OrderLimit,
    *,
    trusted_bridges: Mapping[NodeId, bytes],
    node_id: NodeId,
    piece_id: bytes,
    actions: Collection[Action],
    now: int,
) -> None:
    """Check that `limit` allows one of `actions` on `piece_id` at `node_id` at time `now`.

    `trusted_bridges` maps each trusted bridge's node id to its public key. Each failed check
    raises `OrderLimitRejected` with its own code, in this order: untrusted-bridge, bad-signature,
    wrong-node, wrong-piece, wrong-action, not-yet-valid, expired.
    """
    public_key = trusted_bridges.get(limit.bridge_id)
    if public_key is None:
        raise OrderLimitRejected("untrusted-bridge", "order limit is from a bridge not trusted")
    try:
        limit.verify_signature(public_key)
    except SignatureError as exc:
        raise OrderLimitRejected("bad-signature", "order limit signature is invalid") from exc
    if limit.node_id != node_id:
        raise OrderLimitRejected("wrong-node", "order limit is for another node")
    if limit.piece_id != piece_id:
        raise OrderLimitRejected("wrong-piece", "order limit is for another piece")
    if limit.action not in actions:
        raise OrderLimitRejected("wrong-action", f"order limit does not allow {limit.action.name}")
    if now < limit.issued_at - CLOCK_SKEW:
        raise OrderLimitRejected("not-yet-valid", "order limit is not valid yet")
    if now >= limit.expires_at:
        raise OrderLimitRejected("expired", "order limit has expired")


CLOCK_SKEW = 300  # seconds of clock difference tolerated between bridge and farmer


def _check_size(name: str, value: bytes, size: int) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        raise DecodeError(f"{name} must be exactly {size} bytes")


def _action(value: int) -> Action:
    try:
        return Action(value)
    except ValueError as exc:
        raise DecodeError(f"unknown action {value}") from exc
