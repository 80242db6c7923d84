"""AES-256-GCM over fixed-size blocks of a segment.

A segment's plaintext is cut into blocks of `BLOCK_SIZE` bytes (the last one shorter, never
empty unless the whole segment is). Each block is sealed on its own, so a range read decrypts only
the blocks it touches::

    ciphertext = block_0 || tag_0 || block_1 || tag_1 || ... || block_last || tag_last
    nonce(b)   = u32 segment index || u32 block index b || u32 flags   (flags = 1 on the last block)

The nonce pins every block to its place: a block moved to another position or segment changes its
nonce, and the last-block flag makes dropping or appending whole blocks fail. A segment's content
key is random (`metadisk.core.keys.new_content_key`), so a block moved to another object fails
under the other key. Every such change raises `DecryptionError`.

An empty plaintext is one empty last block: its ciphertext is the 16-byte tag alone.

The ``*_into`` functions write into a caller's buffer. Reusing one buffer per pipeline stage avoids
the page faults of a fresh 64 MiB allocation, which on this project's machines cost as much as the
encryption itself (see docs/core-crypto.md).
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from metadisk.core.errors import DecodeError, DecryptionError

BLOCK_SIZE = 64 * 1024  # plaintext bytes per block
TAG_SIZE = 16
KEY_SIZE = 32
MAX_SEGMENT_INDEX = (1 << 32) - 1
_SEALED_BLOCK = BLOCK_SIZE + TAG_SIZE
_LAST = 1
_NONCE = struct.Struct(">III")

BytesLike = bytes | bytearray | memoryview


def ciphertext_size(plaintext_size: int) -> int:
    """Ciphertext bytes for `plaintext_size` bytes of plaintext."""
    if plaintext_size < 0:
        raise ValueError("a size is never negative")
    return plaintext_size + TAG_SIZE * block_count(plaintext_size)


def plaintext_size(ciphertext_size: int) -> int:
    """Plaintext bytes in a ciphertext of `ciphertext_size`; `DecodeError` if no plaintext fits."""
    full, rest = divmod(ciphertext_size, _SEALED_BLOCK)
    if ciphertext_size < TAG_SIZE or (0 < rest < TAG_SIZE) or (full and rest == TAG_SIZE):
        # Below one tag, a partial tag, or an empty block after full ones: never produced.
        raise DecodeError(f"no plaintext encrypts to {ciphertext_size} bytes")
    return full * BLOCK_SIZE + (rest - TAG_SIZE if rest else 0)


def block_count(plaintext_size: int) -> int:
    """Blocks in a segment of `plaintext_size` bytes (at least one)."""
    return max(1, -(-plaintext_size // BLOCK_SIZE))


def encrypt_segment(content_key: bytes, segment_index: int, plaintext: BytesLike) -> bytes:
    """Encrypt one segment; the result is `ciphertext_size(len(plaintext))` bytes."""
    aead = _aead(content_key, segment_index)
    view = _view(plaintext)
    blocks = block_count(len(view))
    # One bytes per block and one join measured as fast as encrypting into a bytearray and
    # copying it to bytes: either way the fresh result costs page faults, not AES time.
    return b"".join(
        [
            aead.encrypt(
                _nonce(segment_index, b, b == blocks - 1),
                view[b * BLOCK_SIZE : (b + 1) * BLOCK_SIZE],
                None,
            )
            for b in range(blocks)
        ]
    )


def encrypt_segment_into(
    content_key: bytes, segment_index: int, plaintext: BytesLike, out: bytearray | memoryview
) -> int:
    """Encrypt one segment into the start of `out`; return the ciphertext size written."""
    aead = _aead(content_key, segment_index)
    view = _view(plaintext)
    size = ciphertext_size(len(view))
    target = _writable(out, size)
    blocks = block_count(len(view))
    for b in range(blocks):
        chunk = view[b * BLOCK_SIZE : (b + 1) * BLOCK_SIZE]
        start = b * _SEALED_BLOCK
        aead.encrypt_into(
            _nonce(segment_index, b, b == blocks - 1),
            chunk,
            None,
            target[start : start + len(chunk) + TAG_SIZE],
        )
    return size


def decrypt_segment(content_key: bytes, segment_index: int, ciphertext: BytesLike) -> bytes:
    """Decrypt and check a whole segment; `DecryptionError` on any change to it."""
    aead = _aead(content_key, segment_index)
    view = _view(ciphertext)
    blocks = block_count(_plaintext_size(len(view)))
    try:
        return b"".join(
            [
                aead.decrypt(
                    _nonce(segment_index, b, b == blocks - 1),
                    view[b * _SEALED_BLOCK : (b + 1) * _SEALED_BLOCK],
                    None,
                )
                for b in range(blocks)
            ]
        )
    except InvalidTag as exc:
        raise DecryptionError("segment does not decrypt: wrong key, tampered or moved") from exc


def decrypt_segment_into(
    content_key: bytes, segment_index: int, ciphertext: BytesLike, out: bytearray | memoryview
) -> int:
    """Decrypt a whole segment into the start of `out`; return the plaintext size written.

    On `DecryptionError` the bytes written so far are zeroed, so no unauthenticated plaintext is
    left behind in `out`.
    """
    aead = _aead(content_key, segment_index)
    view = _view(ciphertext)
    size = _plaintext_size(len(view))
    target = _writable(out, size)
    blocks = block_count(size)
    b = 0
    try:
        for b in range(blocks):
            start = b * BLOCK_SIZE
            sealed = view[b * _SEALED_BLOCK : (b + 1) * _SEALED_BLOCK]
            aead.decrypt_into(
                _nonce(segment_index, b, b == blocks - 1),
                sealed,
                None,
                target[start : start + len(sealed) - TAG_SIZE],
            )
    except InvalidTag as exc:
        target[: (b + 1) * BLOCK_SIZE] = bytes(min(size, (b + 1) * BLOCK_SIZE))
        raise DecryptionError("segment does not decrypt: wrong key, tampered or moved") from exc
    return size


def block_range(offset: int, length: int, plaintext_size: int) -> tuple[int, int]:
    """The first and last (inclusive) blocks holding plaintext bytes [offset, offset + length)."""
    if offset < 0 or length < 1 or offset + length > plaintext_size:
        raise ValueError(f"range {offset}+{length} is not inside {plaintext_size} bytes")
    return offset // BLOCK_SIZE, (offset + length - 1) // BLOCK_SIZE


def ciphertext_range(first_block: int, last_block: int, plaintext_size: int) -> tuple[int, int]:
    """The ciphertext bytes [start, end) of blocks first_block..last_block (inclusive)."""
    if not 0 <= first_block <= last_block < block_count(plaintext_size):
        raise ValueError(f"blocks {first_block}..{last_block} are not in the segment")
    end = min((last_block + 1) * _SEALED_BLOCK, ciphertext_size(plaintext_size))
    return first_block * _SEALED_BLOCK, end


def decrypt_blocks(
    content_key: bytes,
    segment_index: int,
    first_block: int,
    ciphertext: BytesLike,
    *,
    total_plaintext_size: int,
) -> bytes:
    """Decrypt whole blocks starting at `first_block`, cut from a segment's ciphertext.

    `total_plaintext_size` is the segment's plaintext size: it says which block is the last.
    The ciphertext must be one or more whole blocks; anything else raises `DecryptionError`.
    """
    aead = _aead(content_key, segment_index)
    view = _view(ciphertext)
    blocks = block_count(total_plaintext_size)
    if not 0 <= first_block < blocks:
        raise ValueError(f"block {first_block} is not in the segment")
    start = first_block * _SEALED_BLOCK
    end = start + len(view)
    segment_end = ciphertext_size(total_plaintext_size)
    if not view or end > segment_end or (end != segment_end and end % _SEALED_BLOCK):
        raise DecryptionError("ciphertext is not whole blocks of this segment")
    last_block = -(-end // _SEALED_BLOCK) - 1
    try:
        return b"".join(
            [
                aead.decrypt(
                    _nonce(segment_index, b, b == blocks - 1),
                    view[(b - first_block) * _SEALED_BLOCK : (b - first_block + 1) * _SEALED_BLOCK],
                    None,
                )
                for b in range(first_block, last_block + 1)
            ]
        )
    except InvalidTag as exc:
        raise DecryptionError("blocks do not decrypt: wrong key, tampered or moved") from exc


def decrypt_range(
    content_key: bytes,
    segment_index: int,
    ciphertext: BytesLike,
    *,
    offset: int,
    length: int,
    total_plaintext_size: int,
) -> bytes:
    """Plaintext bytes [offset, offset + length) from exactly the blocks `block_range` names.

    `ciphertext` is the segment's ciphertext bytes `ciphertext_range(*block_range(...))`; any
    other length raises `DecryptionError`, so a short answer can never pass as a short file.
    """
    first, last = block_range(offset, length, total_plaintext_size)
    start, end = ciphertext_range(first, last, total_plaintext_size)
    view = _view(ciphertext)
    if len(view) != end - start:
        raise DecryptionError(f"expected {end - start} ciphertext bytes, got {len(view)}")
    plain = decrypt_blocks(
        content_key, segment_index, first, view, total_plaintext_size=total_plaintext_size
    )
    skip = offset - first * BLOCK_SIZE
    return plain[skip : skip + length]


def _aead(content_key: bytes, segment_index: int) -> AESGCM:
    if not isinstance(content_key, bytes) or len(content_key) != KEY_SIZE:
        raise ValueError(f"a content key is exactly {KEY_SIZE} bytes")
    if not isinstance(segment_index, int) or not 0 <= segment_index <= MAX_SEGMENT_INDEX:
        raise ValueError("segment index out of range")
    return AESGCM(content_key)


def _nonce(segment_index: int, block_index: int, last: bool) -> bytes:
    return _NONCE.pack(segment_index, block_index, _LAST if last else 0)


def _view(data: BytesLike) -> memoryview:
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _plaintext_size(size: int) -> int:
    try:
        return plaintext_size(size)
    except DecodeError as exc:
        raise DecryptionError("ciphertext is truncated or has bytes appended") from exc


def _writable(out: bytearray | memoryview, size: int) -> memoryview:
    target = _view(out)
    if target.readonly or len(target) < size:
        raise ValueError(f"the output buffer must be writable and hold {size} bytes")
    return target[:size]
