"""The CPU work on one segment, as pure functions over a shared buffer.

A segment in flight owns one buffer laid out as a `SegmentLayout`::

    [ plaintext: capacity bytes ][ piece 0 ][ piece 1 ] ... [ piece slots-1 ]

Upload: the reader fills the plaintext, `encode_segment` encrypts it straight into the first k
piece slots (a systematic code's data pieces *are* the padded ciphertext), computes the recovery
pieces into the rest, and hashes every piece. Download: fetched pieces land in the piece slots,
`piece_hash` checks each, and `decode_segment` decrypts into the plaintext region (joining data
pieces without any decoding when all of them came back in place).

The functions take a `BufferRef`: the buffer itself when they run in a thread, or the name of a
shared-memory block when they run in a worker process (`metadisk.client.offload`). Only small
values (keys, sizes, digests) cross the process boundary; segment data never gets pickled.
"""

from __future__ import annotations

import mmap
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from metadisk.client.formats import plaintext_tag
from metadisk.core import content
from metadisk.core.erasure import ErasureCodec
from metadisk.core.merkle import digest_piece


@dataclass(frozen=True, slots=True)
class SharedRef:
    """A shared-memory block a worker process maps by name (``/dev/shm/<name>`` on Linux)."""

    name: str
    size: int


BufferRef = memoryview | SharedRef


@dataclass(frozen=True, slots=True)
class SegmentLayout:
    """Where plaintext and pieces sit in a segment's buffer."""

    capacity: int  # plaintext bytes the buffer holds
    piece_size: int
    slots: int  # piece slots after the plaintext

    @property
    def size(self) -> int:
        return self.capacity + self.piece_size * self.slots


def layout_for(capacity: int, k: int, slots: int) -> SegmentLayout:
    """The layout for segments of up to `capacity` plaintext bytes under a k-of-n code."""
    piece_size = ErasureCodec(k, k).piece_size(content.ciphertext_size(capacity))
    return SegmentLayout(capacity, piece_size, slots)


@dataclass(frozen=True, slots=True)
class PieceDigest:
    """What the client checks a farmer's receipt against."""

    piece_hash: bytes  # the piece's Merkle root


@dataclass(frozen=True, slots=True)
class EncodedSegment:
    """The result of `encode_segment`; pieces 0..n-1 sit in piece slots 0..n-1 of the buffer."""

    plaintext_size: int
    ciphertext_size: int
    piece_size: int
    digests: tuple[PieceDigest, ...]
    plaintext_tag: bytes  # formats.plaintext_tag: lets a resumed upload recognise the segment


def encode_segment(
    ref: BufferRef,
    layout: SegmentLayout,
    *,
    content_key: bytes,
    index: int,
    plaintext_size: int,
    k: int,
    n: int,
) -> EncodedSegment:
    """Encrypt, erasure-code and hash the plaintext at the start of the buffer."""
    view = _resolve(ref)
    codec = ErasureCodec(k, n)
    ciphertext_size = content.ciphertext_size(plaintext_size)
    piece_size = codec.piece_size(ciphertext_size)
    if plaintext_size > layout.capacity or piece_size > layout.piece_size or n > layout.slots:
        raise ValueError("segment does not fit its buffer")
    # Pieces of a smaller segment are packed at its own piece size, not the layout's maximum.
    base = layout.capacity
    data_end = base + k * piece_size
    written = content.encrypt_segment_into(
        content_key, index, view[:plaintext_size], view[base:data_end]
    )
    tag = plaintext_tag(content_key, view[base : base + written])
    view[base + written : data_end] = bytes(data_end - base - written)  # zero padding
    if n > k:
        # The data pieces already sit in their slots: write only the recovery pieces, straight
        # into theirs (no copy of the segment, no temporary pieces).
        out: list[memoryview | None] = [None] * k
        out += [view[base + i * piece_size : base + (i + 1) * piece_size] for i in range(k, n)]
        codec.encode_into(view[base:data_end], out)
    digests = []
    for number in range(n):
        start = base + number * piece_size
        digest = digest_piece(view[start : start + piece_size])
        digests.append(PieceDigest(digest.piece_hash))
    return EncodedSegment(plaintext_size, ciphertext_size, piece_size, tuple(digests), tag)


def tag_segment(
    ref: BufferRef, layout: SegmentLayout, *, content_key: bytes, index: int, plaintext_size: int
) -> bytes:
    """The `plaintext_tag` of the plaintext at the start of the buffer (resume checks).

    Encrypts it again into the piece region, which the caller does not need at this point.
    """
    view = _resolve(ref)
    base = layout.capacity
    written = content.encrypt_segment_into(
        content_key, index, view[:plaintext_size], view[base : layout.size]
    )
    return plaintext_tag(content_key, view[base : base + written])


def piece_view(view: memoryview, layout: SegmentLayout, slot: int, piece_size: int) -> memoryview:
    """The bytes of piece slot `slot` for pieces of `piece_size` (packed at that size)."""
    start = layout.capacity + slot * piece_size
    return view[start : start + piece_size]


def piece_hash(ref: BufferRef, start: int, size: int) -> bytes:
    """The hash (Merkle root) of buffer bytes [start, start + size): a fetched piece's hash."""
    return digest_piece(_resolve(ref)[start : start + size]).piece_hash


def decode_segment(
    ref: BufferRef,
    layout: SegmentLayout,
    *,
    content_key: bytes,
    index: int,
    plaintext_size: int,
    k: int,
    n: int,
    positions: Sequence[int],
) -> int:
    """Rebuild and decrypt a segment whose verified pieces sit in the buffer's piece slots.

    `positions[slot]` is the piece number held in piece slot `slot` (-1 for an empty slot).
    The plaintext is written to the start of the buffer; returns its size.
    """
    view = _resolve(ref)
    codec = ErasureCodec(k, n)
    ciphertext_size = content.ciphertext_size(plaintext_size)
    piece_size = codec.piece_size(ciphertext_size)
    base = layout.capacity
    if list(positions[:k]) != list(range(k)):
        # Rebuild in place: slot i ends up holding data piece i, so the ciphertext is contiguous
        # where the pieces were (the codec reads each stripe of every slot before writing it).
        pieces = {
            number: view[base + slot * piece_size : base + (slot + 1) * piece_size]
            for slot, number in enumerate(positions)
            if number >= 0
        }
        codec.decode_into(pieces, ciphertext_size, view[base : base + len(positions) * piece_size])
        for piece in pieces.values():
            piece.release()
    ciphertext = view[base : base + ciphertext_size]
    return content.decrypt_segment_into(content_key, index, ciphertext, view[:plaintext_size])


def decrypt_span(
    ref: BufferRef,
    layout: SegmentLayout,
    *,
    content_key: bytes,
    index: int,
    plaintext_size: int,
    offset: int,
    length: int,
) -> int:
    """Decrypt plaintext [offset, offset + length) of a segment from its ciphertext span.

    The buffer's piece region holds exactly the ciphertext bytes `content.ciphertext_range` names
    for those blocks; the plaintext goes to the start of the buffer. Returns `length`.
    """
    view = _resolve(ref)
    first, last = content.block_range(offset, length, plaintext_size)
    start, end = content.ciphertext_range(first, last, plaintext_size)
    base = layout.capacity
    plain = content.decrypt_range(
        content_key,
        index,
        view[base : base + end - start],
        offset=offset,
        length=length,
        total_plaintext_size=plaintext_size,
    )
    view[:length] = plain
    return length


# A worker process maps each shared block once and keeps it while it is in use; the client
# reuses a handful of blocks for a whole transfer, so a small cache holds all of them.
_ATTACHED: OrderedDict[str, tuple[mmap.mmap, memoryview]] = OrderedDict()
_MAX_ATTACHED = 16
_SHM_DIR = "/dev/shm"  # noqa: S108 - where POSIX shared memory lives on Linux; not a temp file


def _resolve(ref: BufferRef) -> memoryview:
    if isinstance(ref, memoryview):
        return ref
    for name in [name for name in _ATTACHED if name != ref.name]:
        # The client unlinks blocks it no longer uses; drop our mapping so the memory goes too.
        if not os.path.exists(os.path.join(_SHM_DIR, name)):
            old, old_view = _ATTACHED.pop(name)
            old_view.release()
            old.close()
    entry = _ATTACHED.get(ref.name)
    if entry is not None and len(entry[1]) == ref.size:
        _ATTACHED.move_to_end(ref.name)
        return entry[1]
    fd = os.open(os.path.join(_SHM_DIR, ref.name), os.O_RDWR)
    try:
        mapping = mmap.mmap(fd, ref.size)
    finally:
        os.close(fd)
    _ATTACHED[ref.name] = (mapping, memoryview(mapping))
    while len(_ATTACHED) > _MAX_ATTACHED:
        _, (old, old_view) = _ATTACHED.popitem(last=False)
        old_view.release()
        old.close()
    return _ATTACHED[ref.name][1]
