"""Reed-Solomon erasure coding of a segment's ciphertext into n pieces, any k of which rebuild it.

Piece format (erasure format v1, pinned by ``tests/core/vectors/merkle.json``):

- the segment is zero-padded to ``k * piece_size`` bytes, where ``piece_size`` is
  ``ceil(segment_size / k)`` rounded up to a multiple of 64 bytes (`PIECE_ALIGN`);
- pieces ``0 .. k-1`` are the padded segment cut in order (the code is systematic, so a download
  that gets every data piece just joins them);
- pieces ``k .. n-1`` are the recovery shards of reed-solomon-simd (the Leopard-RS algorithm,
  GF(2^16), O(n log n)) over those data pieces.

The backend works on independent 64-byte columns: byte range ``[a, b)`` of the recovery pieces
depends only on range ``[a, b)`` of the data pieces when ``a`` and ``b`` are multiples of 64. The
codec uses this to encode and decode in column stripes that fit in cache, which is two to four
times faster than one call over whole pieces and gives exactly the same bytes. Pieces are a pure
function of ``(k, n, data)``, so a repairer can regenerate any lost piece from any k others.

The codec holds the GIL while it computes. Its API is plain bytes in, bytes out, and an
`ErasureCodec` pickles as its ``(k, n)``, so callers run `ErasureCodec.encode` and
`ErasureCodec.decode` in a ``ProcessPoolExecutor`` to use more than one core. Reed-Solomon detects
no corruption: check each piece against its hash or Merkle root (`metadisk.core.merkle`) before
decoding.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from metadisk.core.encoding import Reader, Writer
from metadisk.core.errors import DecodeError, ErasureError

MAX_PIECES = 255  # piece numbers travel as one byte; far below the backend's 65,535
PIECE_ALIGN = 64  # the backend's column width: pieces are whole columns, so striping is exact
TAG_REDUNDANCY_SCHEME = 0x40

# The backend's working set per call is about next_pow2(n) stripes: ~8 MiB stays in cache. Decoding
# also pays ~0.5 ms per call (an erasure locator over GF(2^16)), which argues against narrower
# stripes. Measured on the project's 2-core machines (docs/core-erasure.md).
_STRIPE_BUDGET = 8 << 20
_MIN_STRIPE = 32 << 10

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class RedundancyScheme:
    """Reed-Solomon parameters of a segment: k required, repair at m, success at o, n total.

    ``1 <= k <= m <= o <= n <= 255``. A segment is rebuilt from any k pieces; the bridge repairs
    it when its healthy pieces fall to m; an upload succeeds once o pieces are stored; n pieces are
    encoded so that o can be reached despite slow or failing farmers. Storage expansion is o/k.
    """

    k: int
    m: int
    o: int
    n: int

    VERSION: ClassVar[int] = 1

    def __post_init__(self) -> None:
        for name in ("k", "m", "o", "n"):
            value = getattr(self, name)
            if type(value) is not int:
                raise ErasureError(f"redundancy {name} must be an integer")
        if not 1 <= self.k <= self.m <= self.o <= self.n <= MAX_PIECES:
            raise ErasureError(
                f"invalid redundancy {self.k}/{self.m}/{self.o}/{self.n}: "
                f"need 1 <= k <= m <= o <= n <= {MAX_PIECES}"
            )

    @property
    def expansion(self) -> float:
        """Bytes stored per byte of ciphertext once the upload succeeds (o/k)."""
        return self.o / self.k

    def codec(self) -> ErasureCodec:
        return ErasureCodec(self.k, self.n)

    def encode(self) -> bytes:
        return (
            Writer()
            .u8(TAG_REDUNDANCY_SCHEME)
            .u8(self.VERSION)
            .u8(self.k)
            .u8(self.m)
            .u8(self.o)
            .u8(self.n)
            .getvalue()
        )

    @classmethod
    def decode(cls, data: bytes) -> RedundancyScheme:
        r = Reader(data)
        r.header(TAG_REDUNDANCY_SCHEME, cls.VERSION)
        k, m, o, n = r.u8(), r.u8(), r.u8(), r.u8()
        r.end()
        try:
            return cls(k, m, o, n)
        except ErasureError as exc:
            raise DecodeError(str(exc)) from exc

    def __str__(self) -> str:
        return f"{self.k}/{self.m}/{self.o}/{self.n}"


LOCAL = RedundancyScheme(4, 6, 8, 10)
"""A small network, such as ``metadisk up`` on one host with 10 farmers."""

GLOBAL = RedundancyScheme(29, 35, 80, 110)
"""A large public network, like Storj's default."""


@dataclass(frozen=True, slots=True)
class ErasureCodec:
    """Systematic Reed-Solomon over GF(2^16): n pieces of a segment, any k of which rebuild it.

    Pure and picklable (it is just ``(k, n)``), so `encode` and `decode` can run in a process pool:
    the backend holds the GIL. `stripe` only tunes speed (bytes of each piece per backend call,
    0 = measured default); the pieces never depend on it.

    `encode` and `decode` return new bytes. `encode_into` and `decode_into` write into the
    caller's buffers instead: reusing buffers avoids the page faults of fresh allocations, which
    cost more than the coding itself on the project's machines (docs/core-erasure.md).
    """

    k: int
    n: int
    stripe: int = 0

    def __post_init__(self) -> None:
        if type(self.k) is not int or type(self.n) is not int:
            raise ErasureError("k and n must be integers")
        if not 1 <= self.k <= self.n <= MAX_PIECES:
            raise ErasureError(f"invalid code {self.k}/{self.n}: need 1 <= k <= n <= {MAX_PIECES}")
        if type(self.stripe) is not int or self.stripe < 0 or self.stripe % PIECE_ALIGN:
            raise ErasureError(f"stripe must be a non-negative multiple of {PIECE_ALIGN}")

    def piece_size(self, segment_size: int) -> int:
        """Bytes in each piece of a `segment_size`-byte segment: ceil(size / k) rounded up to 64."""
        if type(segment_size) is not int or segment_size < 1:
            raise ErasureError("a segment holds at least one byte")
        per_piece = -(-segment_size // self.k)
        return -(-per_piece // PIECE_ALIGN) * PIECE_ALIGN

    def encode(self, data: Buffer) -> list[bytes]:
        """All n pieces of `data` (index = piece number), each `piece_size(len(data))` bytes."""
        originals = self._originals(data)
        size = len(originals[0])
        parts: list[list[bytes]] = [[] for _ in range(self.n - self.k)]
        for _, stripes in self._encode_stripes(originals, size):
            for part, stripe in zip(parts, stripes, strict=True):
                part.append(stripe)
        return originals + [b"".join(part) for part in parts]

    def encode_into(self, data: Buffer, out: Sequence[bytearray | memoryview | None]) -> int:
        """Write piece i of `data` to the start of ``out[i]`` (skipped if None); return piece size.

        A caller whose data already sits, zero-padded, in the data pieces' buffers passes None for
        them and gets only the recovery pieces written.
        """
        view = _byte_view(data)
        size = self.piece_size(len(view))
        if len(out) != self.n:
            raise ValueError(f"need {self.n} output buffers, got {len(out)}")
        targets = [None if buffer is None else _writable(buffer, size)[:size] for buffer in out]
        originals: list[Buffer] = []
        for i, target in enumerate(targets[: self.k]):
            chunk = view[i * size : (i + 1) * size]
            if target is None:
                # Read stripes from the input; only the last data pieces need padding.
                originals.append(
                    chunk if len(chunk) == size else bytes(chunk) + bytes(size - len(chunk))
                )
                continue
            target[: len(chunk)] = chunk
            target[len(chunk) :] = bytes(size - len(chunk))  # zero padding
            originals.append(target)
        for start, stripes in self._encode_stripes(originals, size):
            for target, stripe in zip(targets[self.k :], stripes, strict=True):
                if target is not None:
                    target[start : start + len(stripe)] = stripe
        return size

    def encode_pieces(self, data: Buffer, indices: Iterable[int]) -> dict[int, bytes]:
        """Only the pieces at `indices`; the same bytes `encode` gives (for repair)."""
        wanted = self._check_indices(indices)
        if all(i < self.k for i in wanted):
            originals = self._originals(data)  # data pieces need no coding
            return {i: originals[i] for i in wanted}
        pieces = self.encode(data)
        return {i: pieces[i] for i in wanted}

    def decode(self, pieces: Mapping[int, Buffer], segment_size: int) -> bytes:
        """Rebuild the `segment_size`-byte segment from any k or more `pieces` (index -> bytes).

        Raises `ErasureError` for fewer than k pieces, an index outside ``0 .. n-1``, a piece of the
        wrong size, or pieces whose padding is not zero (a wrong `segment_size`, or pieces from
        different segments). Pieces must have been verified against their hashes first: erasure
        codes find no corruption.
        """
        out = bytearray(segment_size)
        self.decode_into(pieces, segment_size, out)
        return bytes(out)

    def decode_into(
        self, pieces: Mapping[int, Buffer], segment_size: int, out: bytearray | memoryview
    ) -> int:
        """`decode` into the start of `out`; return `segment_size`.

        Works stripe by stripe: every piece's stripe is copied out before that stripe of `out` is
        written. So `out` may be the very memory the pieces sit in, as long as each piece starts
        at a multiple of the piece size from the start of `out` (pieces in slots, any order):
        the segment is then rebuilt in place, with no second copy of it.
        """
        size, present, recovery = self._select(pieces, segment_size)
        target = _writable(out, segment_size)
        count = self._decode_count(max(recovery)) if len(present) < self.k else 0
        stripe = self._stripe(size)
        rs = _codec()
        for start in range(0, size, stripe):
            end = min(start + stripe, size)
            shards = {i: bytes(p[start:end]) for i, p in present.items()}
            if count:
                extra = {i: bytes(p[start:end]) for i, p in recovery.items()}
                try:
                    shards |= rs.decode(self.k, count, shards, extra)
                except ValueError as exc:  # excluded by the checks in _select; never leak it raw
                    raise ErasureError(f"erasure backend refused the pieces: {exc}") from exc
            for i, shard in shards.items():
                offset = i * size + start
                kept = _keep(shard, offset, segment_size)
                target[offset : offset + len(kept)] = kept
        return segment_size

    def reconstruct(
        self, pieces: Mapping[int, Buffer], segment_size: int, indices: Iterable[int]
    ) -> dict[int, bytes]:
        """Regenerate the pieces at `indices` from any k `pieces` (what the repairer does)."""
        return self.encode_pieces(self.decode(pieces, segment_size), indices)

    def _originals(self, data: Buffer) -> list[bytes]:
        data = bytes(data)  # no copy for bytes; the backend wants bytes
        size = self.piece_size(len(data))
        pieces = [data[i * size : (i + 1) * size] for i in range(self.k)]
        # Only the data pieces at the end are short (or empty): pad them with zeros.
        return [p if len(p) == size else p + bytes(size - len(p)) for p in pieces]

    def _check_indices(self, indices: Iterable[int]) -> list[int]:
        wanted = list(indices)
        for i in wanted:
            if type(i) is not int or not 0 <= i < self.n:
                raise ErasureError(f"piece index {i!r} outside 0..{self.n - 1}")
        return wanted

    def _select(
        self, pieces: Mapping[int, Buffer], segment_size: int
    ) -> tuple[int, dict[int, memoryview], dict[int, memoryview]]:
        """Check `pieces`; return piece size, data pieces, and the recovery pieces to decode with.

        Recovery pieces are keyed by recovery index (piece number - k). The backend takes exactly k
        shards: every data piece there is, then the lowest recovery pieces (faster to decode).
        """
        size = self.piece_size(segment_size)
        self._check_indices(pieces)
        for index, piece in pieces.items():
            if not isinstance(piece, bytes | bytearray | memoryview):
                raise ErasureError(f"piece {index} is not bytes")
            if len(piece) != size:
                raise ErasureError(f"piece {index} is {len(piece)} bytes, expected {size}")
        if len(pieces) < self.k:
            raise ErasureError(f"{len(pieces)} pieces cannot rebuild a segment that needs {self.k}")
        present = {i: _byte_view(p) for i, p in pieces.items() if i < self.k}
        chosen = sorted(i for i in pieces if i >= self.k)[: self.k - len(present)]
        return size, present, {i - self.k: _byte_view(pieces[i]) for i in chosen}

    def _stripe(self, size: int) -> int:
        if self.stripe:
            return min(self.stripe, size)
        width = 1 << (self.n - 1).bit_length()
        return min(size, max(_MIN_STRIPE, _STRIPE_BUDGET // width // PIECE_ALIGN * PIECE_ALIGN))

    def _encode_stripes(
        self, originals: Sequence[Buffer], size: int
    ) -> Iterator[tuple[int, list[bytes]]]:
        """(offset, recovery stripes) for each column stripe of the pieces."""
        count = self.n - self.k
        if count == 0:
            return
        stripe = self._stripe(size)
        rs = _codec()
        for start in range(0, size, stripe):
            shards = [bytes(o[start : start + stripe]) for o in originals]
            yield start, rs.encode(shards, count)

    def _decode_count(self, highest: int) -> int:
        """Recovery count to decode with when no recovery piece above `highest` is used.

        With more than next_pow2(k) recovery shards the backend works in low-rate mode, where
        recovery shard j does not depend on how many recovery shards there are. Decoding may then
        pretend there are only ``highest + 1`` (at least next_pow2(k) + 1, which keeps the decoder
        in low-rate mode too): its transform shrinks to the next power of two, up to twice as fast
        (29/110 decoded from pieces below 64).
        """
        count = self.n - self.k
        floor = (1 << (self.k - 1).bit_length()) + 1
        if count < floor:
            return count
        return max(highest + 1, floor)


def _keep(chunk: bytes, offset: int, segment_size: int) -> bytes | memoryview:
    """The part of `chunk` (at `offset` in the padded segment) before `segment_size`.

    The rest is padding and must be zero. Padding is under 64 bytes per piece, so checking it
    costs nothing, and it catches a wrong `segment_size` or pieces of different segments.
    """
    keep = min(len(chunk), max(0, segment_size - offset))
    if keep == len(chunk):
        return chunk
    pad = chunk[keep:]
    if pad.count(0) != len(pad):
        raise ErasureError("segment padding is not zero: wrong segment size or mixed pieces")
    return memoryview(chunk)[:keep]


def _byte_view(data: Buffer) -> memoryview:
    view = memoryview(data)
    return view if view.ndim == 1 and view.itemsize == 1 else view.cast("B")


def _writable(buffer: bytearray | memoryview, size: int) -> memoryview:
    view = _byte_view(buffer)
    if view.readonly:
        raise ValueError("output buffer is read-only")
    if len(view) < size:
        raise ValueError(f"output buffer holds {len(view)} bytes, needs {size}")
    return view


def _codec() -> Any:  # the codec has no type hints
    """The Leopard codec, imported by the first segment coded: listing buckets and objects
    (a `RedundancyScheme` is all they need) does without it."""
    import reed_solomon_leopard

    return reed_solomon_leopard
