"""A Bloom filter of piece ids: what a bridge sends a farmer to say which pieces to keep.

A bridge builds one filter per farmer from the piece ids it knows that farmer holds; the farmer
moves to its trash what is old enough and not in the filter (`metadisk.core.messages.RetainRequest`,
docs/farmer.md). A filter never says "no" for an item added to it, so a piece the bridge keeps is
never collected; a false positive only keeps a piece one round longer. The bridge picks a random
32-byte seed per filter, so a piece kept by a false positive this round is likely caught next
round (its bits are elsewhere).

Hashing: each item's k bit indices come from one BLAKE3 output keyed by the seed: the first
``8 * k`` bytes of ``BLAKE3(item, key=seed)`` (the extendable output) read as k little-endian
unsigned 64-bit integers, each taken modulo the bit count. Bit ``i`` is bit ``i % 8`` (least
significant first) of byte ``i // 8``.

Encoding (`encode`/`decode`, the style of `metadisk.core.encoding`)::

    u8 tag 0x42 | u8 version 1 | seed (32 bytes) | u8 hash count (1..32) | u32 n | n bytes of bits

with 1 <= n <= 64 MiB. Every byte string of bits is a valid filter, so one filter has exactly one
encoding; anything else is a `DecodeError`.
"""

from __future__ import annotations

import math
import struct

import blake3

from metadisk.core.encoding import Reader, Writer
from metadisk.core.errors import DecodeError

TAG_BLOOM_FILTER = 0x42
SEED_SIZE = 32
MAX_HASHES = 32
MAX_BYTES = 64 << 20  # of bits: ~110 million items at a 10 % false-positive rate
# tag, version, seed, hash count, length of the bits
HEADER_SIZE = 2 + SEED_SIZE + 1 + 4
MAX_ENCODED = HEADER_SIZE + MAX_BYTES
_LN2 = math.log(2)


class BloomFilter:
    """A set of byte strings that answers "maybe" or "no" (see the module docstring).

    Example::

        kept = BloomFilter.sized(len(piece_ids), 0.1, seed=os.urandom(32))
        for piece_id in piece_ids:
            kept.add(piece_id)
        assert piece_ids[0] in BloomFilter.decode(kept.encode())
    """

    __slots__ = ("_bits", "_hash_count", "_m", "_seed", "_unpack")

    VERSION = 1

    def __init__(self, *, seed: bytes, hash_count: int, size: int) -> None:
        """An empty filter of `size` bytes (8 * size bits) probing `hash_count` bits per item."""
        if not isinstance(seed, bytes) or len(seed) != SEED_SIZE:
            raise ValueError(f"the seed is exactly {SEED_SIZE} bytes")
        if not 1 <= hash_count <= MAX_HASHES:
            raise ValueError(f"hash count must be 1 to {MAX_HASHES}, not {hash_count}")
        if not 1 <= size <= MAX_BYTES:
            raise ValueError(f"a filter takes 1 byte to {MAX_BYTES} bytes, not {size}")
        self._seed = seed
        self._hash_count = hash_count
        self._bits = bytearray(size)
        self._m = 8 * size
        self._unpack = struct.Struct(f"<{hash_count}Q").unpack

    @classmethod
    def sized(cls, count: int, false_positive_rate: float = 0.1, *, seed: bytes) -> BloomFilter:
        """An empty filter for `count` items at about `false_positive_rate`: the optimal
        ``m = -count * ln(rate) / ln(2)**2`` bits (rounded up to whole bytes, at least one) and
        ``k = m / count * ln(2)`` hashes (rounded, 1 to 32). ValueError past 64 MiB of bits."""
        if count < 0:
            raise ValueError("count must not be negative")
        if not 0 < false_positive_rate < 1:
            raise ValueError("the false-positive rate is between 0 and 1, exclusive")
        bits = math.ceil(-count * math.log(false_positive_rate) / (_LN2 * _LN2))
        size = max(1, math.ceil(bits / 8))
        if size > MAX_BYTES:
            raise ValueError(
                f"{count} items at a rate of {false_positive_rate} need {size} bytes, "
                f"more than the {MAX_BYTES} a filter may take"
            )
        hashes = round(8 * size / count * _LN2) if count else 1
        return cls(seed=seed, hash_count=min(MAX_HASHES, max(1, hashes)), size=size)

    @property
    def seed(self) -> bytes:
        return self._seed

    @property
    def hash_count(self) -> int:
        return self._hash_count

    @property
    def bit_count(self) -> int:
        return self._m

    @property
    def size(self) -> int:
        """Bytes of bits (the encoding adds `HEADER_SIZE`)."""
        return len(self._bits)

    def _indices(self, item: bytes) -> tuple[int, ...]:
        digest = blake3.blake3(item, key=self._seed).digest(length=8 * self._hash_count)
        return self._unpack(digest)

    def add(self, item: bytes) -> None:
        bits, m = self._bits, self._m
        for value in self._indices(item):
            index = value % m
            bits[index >> 3] |= 1 << (index & 7)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, bytes | bytearray | memoryview):
            return False
        bits, m = self._bits, self._m
        for value in self._indices(bytes(item)):
            index = value % m
            if not bits[index >> 3] >> (index & 7) & 1:
                return False
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BloomFilter):
            return NotImplemented
        return (self._seed, self._hash_count, self._bits) == (
            other._seed,
            other._hash_count,
            other._bits,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"BloomFilter(size={self.size}, hash_count={self._hash_count})"

    def encode(self) -> bytes:
        header = (
            Writer()
            .u8(TAG_BLOOM_FILTER)
            .u8(self.VERSION)
            .fixed(self._seed, SEED_SIZE)
            .u8(self._hash_count)
            .u32(len(self._bits))  # a blob, written by hand: Writer caps blobs at 16 MiB
            .getvalue()
        )
        return header + self._bits

    @classmethod
    def decode(cls, data: bytes) -> BloomFilter:
        """The filter `data` encodes; `DecodeError` on anything else."""
        r = Reader(data)
        r.header(TAG_BLOOM_FILTER, cls.VERSION)
        seed = r.fixed(SEED_SIZE)
        hash_count = r.u8()
        bits = r.blob(MAX_BYTES)
        r.end()
        if not 1 <= hash_count <= MAX_HASHES:
            raise DecodeError(f"hash count {hash_count} out of range")
        if not bits:
            raise DecodeError("a filter has at least one byte of bits")
        bloom = cls(seed=seed, hash_count=hash_count, size=1)
        bloom._bits = bytearray(bits)
        bloom._m = 8 * len(bits)
        return bloom
