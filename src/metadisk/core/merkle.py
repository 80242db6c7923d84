"""Piece integrity: a BLAKE3 Merkle tree over a piece's leaves, whose root is the piece's hash.

The root is the only hash a piece has: receipts sign it, downloads check it, audits prove single
leaves against it. One hashing pass serves all three (a separate whole-piece BLAKE3 doubled the
hashing cost of every client and farmer for no extra assurance: the root already binds every
byte, every leaf's position and the leaf count).

A piece is cut into `LEAF_SIZE`-byte leaves (the last one may be shorter). Three BLAKE3 keyed
hashes, with keys derived from distinct contexts, keep leaves, inner nodes and the root apart, so no
node can pass for a leaf or a subtree for a whole tree (no second preimages by confusion)::

    leaf(i, bytes)   = BLAKE3(key=LEAF, bytes || u64(i))        binds the leaf to its index
    node(l, r)       = BLAKE3(key=NODE, l || r)
    root(count, top) = BLAKE3(key=ROOT, u64(count) || top)      binds the tree's shape
    root(0)          = BLAKE3(key=ROOT, u64(0))                 the empty piece

Nodes pair up left to right; an odd last node moves up a level unchanged (it is never paired with a
copy of itself, which would let two trees share a root). A proof lists the siblings from the leaf
up, skipping levels where the node had none, so its length follows from (index, count).

`LEAF_SIZE` is 64 KiB. An audit then moves 64 KiB plus 32 bytes per tree level, one random disk
read either way, and a farmer keeps 32 bytes of leaf hashes per 64 KiB stored (0.05%). Smaller
leaves pay a fixed Python cost per leaf (~1.5 us): `PieceHasher` measured ~1,750 MiB/s per core
with 64 KiB leaves, ~1,650 with 32 KiB and ~1,500 with 16 KiB (docs/core-erasure.md).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import blake3

from metadisk.core.encoding import Reader, Writer
from metadisk.core.errors import DecodeError, IntegrityError

LEAF_SIZE = 64 * 1024
HASH_SIZE = 32
MAX_LEAVES = (1 << 32) - 1  # leaf numbers travel as u32: pieces up to 256 TiB
MAX_DEPTH = 32  # siblings in a proof over at most MAX_LEAVES leaves
TAG_MERKLE_PROOF = 0x41

_LEAF_KEY = blake3.blake3(b"", derive_key_context="metadisk 2026 merkle leaf v1").digest()
_NODE_KEY = blake3.blake3(b"", derive_key_context="metadisk 2026 merkle node v1").digest()
_ROOT_KEY = blake3.blake3(b"", derive_key_context="metadisk 2026 merkle root v1").digest()

Buffer = bytes | bytearray | memoryview


def leaf_count(size: int) -> int:
    """Number of leaves of a `size`-byte piece (0 for an empty piece)."""
    if size < 0:
        raise ValueError("a piece size is never negative")
    return -(-size // LEAF_SIZE)


def leaf_span(size: int, leaf_index: int) -> tuple[int, int]:
    """Byte range ``[start, end)`` of leaf `leaf_index` in a `size`-byte piece (what to read)."""
    if type(leaf_index) is not int or not 0 <= leaf_index < leaf_count(size):
        raise IntegrityError(f"leaf {leaf_index!r} outside a piece of {leaf_count(size)} leaves")
    start = leaf_index * LEAF_SIZE
    return start, min(start + LEAF_SIZE, size)


def leaf_hash(leaf_index: int, leaf: Buffer) -> bytes:
    """Hash of one leaf, bound to its position in the piece."""
    hasher = blake3.blake3(leaf, key=_LEAF_KEY)
    hasher.update(leaf_index.to_bytes(8, "big"))
    return hasher.digest()


def _node(left: bytes, right: bytes) -> bytes:
    return blake3.blake3(left + right, key=_NODE_KEY).digest()


def _root(count: int, top: bytes) -> bytes:
    return blake3.blake3(count.to_bytes(8, "big") + top, key=_ROOT_KEY).digest()


def _levels(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves first, ending with the single top node."""
    level = list(leaf_hashes)
    levels = [level]
    while len(level) > 1:
        paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])  # the odd node moves up unchanged
        level = paired
        levels.append(level)
    return levels


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Root over `leaf_hashes` (e.g. to check leaf hashes a farmer read back from disk)."""
    _check_leaf_hashes(leaf_hashes)
    if not leaf_hashes:
        return _root(0, b"")
    return _root(len(leaf_hashes), _levels(leaf_hashes)[-1][0])


@dataclass(frozen=True, slots=True)
class PieceDigest:
    """Size, hash (the Merkle root over `LEAF_SIZE` leaves) and leaf hashes of one piece."""

    size: int
    piece_hash: bytes  # the 32-byte Merkle root
    leaf_hashes: tuple[bytes, ...]  # kept by farmers to answer audits without rehashing

    def __post_init__(self) -> None:
        if type(self.size) is not int or not 0 <= self.size < 1 << 64:
            raise DecodeError("piece size out of range")
        _check_hash("piece hash", self.piece_hash)
        object.__setattr__(self, "leaf_hashes", tuple(self.leaf_hashes))
        if len(self.leaf_hashes) != leaf_count(self.size):
            raise DecodeError(f"a {self.size}-byte piece has {leaf_count(self.size)} leaves")
        _check_leaf_hashes(self.leaf_hashes)


class PieceHasher:
    """Incremental `PieceDigest`: feed a piece in chunks of any size, then call `finish`.

    Each byte is hashed once, as part of its leaf; whole leaves are hashed straight from the
    caller's buffer without copies.
    """

    __slots__ = ("_finished", "_leaves", "_partial", "_size")

    def __init__(self) -> None:
        self._leaves: list[bytes] = []
        self._partial = bytearray()  # the start of a leaf split across `update` calls
        self._size = 0
        self._finished = False

    def update(self, data: Buffer) -> None:
        if self._finished:
            raise ValueError("update() after finish()")
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        total = len(view)
        self._size += total
        pos = 0
        if self._partial:
            pos = min(LEAF_SIZE - len(self._partial), total)
            self._partial += view[:pos]
            if len(self._partial) < LEAF_SIZE:
                return
            self._add_leaf(self._partial)
            self._partial = bytearray()
        leaves, index = self._leaves, len(self._leaves)
        end = pos + (total - pos) // LEAF_SIZE * LEAF_SIZE
        for start in range(pos, end, LEAF_SIZE):  # hot loop: whole leaves, no copies
            hasher = blake3.blake3(view[start : start + LEAF_SIZE], key=_LEAF_KEY)
            hasher.update(index.to_bytes(8, "big"))
            leaves.append(hasher.digest())
            index += 1
        if end < total:
            self._partial += view[end:]

    def finish(self) -> PieceDigest:
        if self._finished:
            raise ValueError("finish() called twice")
        self._finished = True
        if self._partial:
            self._add_leaf(self._partial)
        leaves = tuple(self._leaves)
        return PieceDigest(self._size, merkle_root(leaves), leaves)

    def _add_leaf(self, leaf: Buffer) -> None:
        self._leaves.append(leaf_hash(len(self._leaves), leaf))


def digest_piece(piece: Buffer) -> PieceDigest:
    """`PieceDigest` of a whole piece in memory."""
    hasher = PieceHasher()
    hasher.update(piece)
    return hasher.finish()


def verify_piece(piece: Buffer, piece_hash: bytes) -> None:
    """Check a downloaded piece against the hash in its receipt; `IntegrityError` if it differs."""
    if not isinstance(piece_hash, bytes) or not hmac.compare_digest(
        digest_piece(piece).piece_hash, piece_hash
    ):
        raise IntegrityError("piece does not match its hash")


@dataclass(frozen=True, slots=True)
class MerkleProof:
    """The siblings from leaf `leaf_index` up to the top of a tree of `leaf_count` leaves.

    Encoded as tag, version, ``u32`` index, ``u32`` count, ``u8`` sibling count, then 32 bytes per
    sibling. Only the field shapes are checked here; `verify_leaf` checks the rest.
    """

    leaf_index: int
    leaf_count: int
    siblings: tuple[bytes, ...]

    VERSION: ClassVar[int] = 1

    def __post_init__(self) -> None:
        if type(self.leaf_count) is not int or not 1 <= self.leaf_count <= MAX_LEAVES:
            raise DecodeError("proof leaf count out of range")
        if type(self.leaf_index) is not int or not 0 <= self.leaf_index < self.leaf_count:
            raise DecodeError("proof leaf index out of range")
        object.__setattr__(self, "siblings", tuple(self.siblings))
        if len(self.siblings) > MAX_DEPTH:
            raise DecodeError("too many siblings in proof")
        for sibling in self.siblings:
            _check_hash("sibling", sibling)

    def encode(self) -> bytes:
        w = Writer().u8(TAG_MERKLE_PROOF).u8(self.VERSION)
        w.u32(self.leaf_index).u32(self.leaf_count).u8(len(self.siblings))
        for sibling in self.siblings:
            w.fixed(sibling, HASH_SIZE)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> MerkleProof:
        r = Reader(data)
        r.header(TAG_MERKLE_PROOF, cls.VERSION)
        leaf_index, count, depth = r.u32(), r.u32(), r.u8()
        if depth > MAX_DEPTH:
            raise DecodeError("too many siblings in proof")
        siblings = tuple(r.fixed(HASH_SIZE) for _ in range(depth))
        r.end()
        return cls(leaf_index, count, siblings)


def prove(leaf_hashes: Sequence[bytes], leaf_index: int) -> MerkleProof:
    """Proof that leaf `leaf_index` belongs under the root of `leaf_hashes`.

    `IntegrityError` if the index is outside the piece (an audit asking for a leaf that does not
    exist).
    """
    _check_leaf_hashes(leaf_hashes)
    if type(leaf_index) is not int or not 0 <= leaf_index < len(leaf_hashes):
        raise IntegrityError(f"leaf {leaf_index} outside a piece of {len(leaf_hashes)} leaves")
    siblings = []
    index = leaf_index
    for level in _levels(leaf_hashes)[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            siblings.append(level[sibling])
        index //= 2
    return MerkleProof(leaf_index, len(leaf_hashes), tuple(siblings))


def verify_leaf(merkle_root: bytes, leaf: bytes, proof: MerkleProof) -> None:
    """Check that `leaf` is leaf `proof.leaf_index` under `merkle_root`; `IntegrityError` if not.

    Also checks the leaf's length: `LEAF_SIZE` except for the last leaf, which holds 1 to
    `LEAF_SIZE` bytes.
    """
    if not isinstance(leaf, bytes | bytearray | memoryview):
        raise IntegrityError("leaf is not bytes")
    verify_leaf_hash(merkle_root, leaf_hash(proof.leaf_index, leaf), len(leaf), proof)


def verify_leaf_hash(merkle_root: bytes, hashed: bytes, size: int, proof: MerkleProof) -> None:
    """`verify_leaf` for a leaf known only by its hash and length (signed audit evidence)."""
    index, count = proof.leaf_index, proof.leaf_count
    if index < count - 1 and size != LEAF_SIZE:
        raise IntegrityError(f"leaf {index} is {size} bytes, expected {LEAF_SIZE}")
    if not 1 <= size <= LEAF_SIZE:
        raise IntegrityError(f"last leaf is {size} bytes")
    if not isinstance(hashed, bytes) or len(hashed) != HASH_SIZE:
        raise IntegrityError("a leaf hash is exactly 32 bytes")
    node = hashed
    siblings = iter(proof.siblings)
    width = count
    try:
        while width > 1:
            if index % 2:
                node = _node(next(siblings), node)
            elif index + 1 < width:
                node = _node(node, next(siblings))
            index //= 2
            width = (width + 1) // 2
    except StopIteration:
        raise IntegrityError("proof has too few siblings") from None
    if next(siblings, None) is not None:
        raise IntegrityError("proof has too many siblings")
    expected = merkle_root if isinstance(merkle_root, bytes) else b""
    if not hmac.compare_digest(_root(count, node), expected):
        raise IntegrityError("leaf does not match the Merkle root")


def _check_hash(name: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise DecodeError(f"{name} must be exactly {HASH_SIZE} bytes")


def _check_leaf_hashes(leaf_hashes: Sequence[bytes]) -> None:
    if len(leaf_hashes) > MAX_LEAVES:
        raise DecodeError("too many leaves")
    for value in leaf_hashes:
        _check_hash("leaf hash", value)
