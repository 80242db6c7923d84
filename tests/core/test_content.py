"""Block-wise AES-256-GCM over segments: sizes, round trips, range reads and every tampering."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import blake3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from metadisk.core.content import (
    BLOCK_SIZE,
    TAG_SIZE,
    block_count,
    block_range,
    ciphertext_range,
    ciphertext_size,
    decrypt_blocks,
    decrypt_range,
    decrypt_segment,
    decrypt_segment_into,
    encrypt_segment,
    encrypt_segment_into,
    plaintext_size,
)
from metadisk.core.errors import DecodeError, DecryptionError

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "crypto.json").read_text("utf-8")
)
KEY = bytes([7]) * 32
OTHER_KEY = bytes([8]) * 32
SEALED = BLOCK_SIZE + TAG_SIZE
B = BLOCK_SIZE
EDGES = [0, 1, B - 1, B, B + 1, 2 * B - 1, 2 * B, 2 * B + 1, 3 * B]
sizes = st.one_of(st.sampled_from(EDGES), st.integers(0, 3 * B + 100))


def data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def three_blocks() -> tuple[bytes, bytes]:
    plain = data(2 * B + 1000)
    return plain, encrypt_segment(KEY, 5, plain)


# --- sizes ----------------------------------------------------------------------------------


@given(st.one_of(st.sampled_from(EDGES), st.integers(0, 1 << 40)))
def test_sizes_round_trip(size: int) -> None:
    assert plaintext_size(ciphertext_size(size)) == size
    assert ciphertext_size(size) == size + TAG_SIZE * block_count(size)


def test_size_table() -> None:
    assert [ciphertext_size(n) for n in EDGES] == [
        16, 17, B + 15, B + 16, B + 33, 2 * B + 31, 2 * B + 32, 2 * B + 49, 3 * B + 48,
    ]  # fmt: skip
    assert [block_count(n) for n in EDGES] == [1, 1, 1, 1, 2, 2, 2, 3, 3]


@pytest.mark.parametrize(
    "size", [0, 1, TAG_SIZE - 1, SEALED + 1, SEALED + TAG_SIZE - 1, SEALED + TAG_SIZE, -1]
)
def test_impossible_ciphertext_sizes(size: int) -> None:
    with pytest.raises(DecodeError):
        plaintext_size(size)


# --- round trips ----------------------------------------------------------------------------


@given(sizes, st.integers(0, 2**32 - 1))
def test_segment_round_trip(size: int, segment_index: int) -> None:
    plain = data(size, segment_index)
    sealed = encrypt_segment(KEY, segment_index, plain)
    assert len(sealed) == ciphertext_size(size)
    assert decrypt_segment(KEY, segment_index, sealed) == plain


@given(sizes)
def test_into_variants_match(size: int) -> None:
    plain = data(size)
    sealed = encrypt_segment(KEY, 1, plain)
    out = bytearray(len(sealed) + 7)  # a larger buffer is fine; only the start is written
    assert encrypt_segment_into(KEY, 1, memoryview(plain), out) == len(sealed)
    assert out[: len(sealed)] == sealed and out[len(sealed) :] == bytes(7)
    back = bytearray(size + 3)
    assert decrypt_segment_into(KEY, 1, bytes(out[: len(sealed)]), back) == size
    assert back[:size] == plain


def test_into_rejects_small_or_readonly_buffers() -> None:
    with pytest.raises(ValueError):
        encrypt_segment_into(KEY, 0, b"abc", bytearray(18))
    with pytest.raises(ValueError):
        encrypt_segment_into(KEY, 0, b"abc", memoryview(bytes(19)))
    with pytest.raises(ValueError):
        decrypt_segment_into(KEY, 0, encrypt_segment(KEY, 0, b"abc"), bytearray(2))


def test_empty_plaintext_is_one_empty_block() -> None:
    sealed = encrypt_segment(KEY, 0, b"")
    assert len(sealed) == TAG_SIZE
    assert decrypt_segment(KEY, 0, sealed) == b""
    assert block_count(0) == 1
    assert decrypt_blocks(KEY, 0, 0, sealed, total_plaintext_size=0) == b""
    with pytest.raises(DecryptionError):
        decrypt_segment(KEY, 1, sealed)


def test_vectors() -> None:
    v = VECTORS["content"]
    assert v["block_size"] == BLOCK_SIZE
    key, index = bytes.fromhex(v["content_key"]), v["segment_index"]
    assert encrypt_segment(key, index, b"").hex() == v["empty_ciphertext"]
    small = bytes.fromhex(v["small_plaintext"])
    assert encrypt_segment(key, index, small).hex() == v["small_ciphertext"]
    assert decrypt_segment(key, index, bytes.fromhex(v["small_ciphertext"])) == small
    large = blake3.blake3(v["large_plaintext_seed"].encode()).digest(v["large_plaintext_size"])
    sealed = encrypt_segment(key, index, large)
    assert len(sealed) == v["large_ciphertext_size"]
    assert blake3.blake3(sealed).hexdigest() == v["large_ciphertext_blake3"]
    ends = [min((b + 1) * SEALED, len(sealed)) for b in range(block_count(len(large)))]
    assert [sealed[end - TAG_SIZE : end].hex() for end in ends] == v["large_block_tags"]


# --- tampering ------------------------------------------------------------------------------


@given(st.sampled_from([1, B, B + 1, 2 * B + 1000]), st.data())
def test_bit_flips_are_rejected(size: int, draw: st.DataObject) -> None:
    sealed = bytearray(encrypt_segment(KEY, 0, data(size)))
    bit = draw.draw(st.integers(0, len(sealed) * 8 - 1))
    sealed[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(DecryptionError):
        decrypt_segment(KEY, 0, bytes(sealed))


def test_wrong_key_or_segment_index() -> None:
    _, sealed = three_blocks()
    for key, index in [(OTHER_KEY, 5), (KEY, 4), (KEY, 6), (KEY, 5 + (1 << 31))]:
        with pytest.raises(DecryptionError):
            decrypt_segment(key, index, sealed)


def test_truncation_and_appending() -> None:
    _, sealed = three_blocks()
    block = [sealed[i * SEALED : (i + 1) * SEALED] for i in range(3)]
    other_segment = encrypt_segment(KEY, 6, data(3 * B))
    bad = [
        sealed[:-1],  # one byte short
        sealed[: 2 * SEALED],  # last block dropped: the new last block is not marked last
        sealed[:SEALED],
        sealed[SEALED:],  # first block dropped
        sealed[: 2 * SEALED] + sealed[2 * SEALED + 1 :],  # a byte cut from the last block
        sealed + b"\x00",
        sealed + bytes(TAG_SIZE),  # looks like an extra empty block
        sealed + block[2],  # the last block repeated
        block[0] + block[1] + block[1] + block[2],  # a middle block repeated
        block[0] + block[1] + other_segment[2 * SEALED :],  # the last block of another segment
        b"",
        sealed[: TAG_SIZE - 1],
    ]
    for ciphertext in bad:
        with pytest.raises(DecryptionError):
            decrypt_segment(KEY, 5, ciphertext)


def test_reordered_blocks() -> None:
    _, sealed = three_blocks()
    b0, b1, rest = sealed[:SEALED], sealed[SEALED : 2 * SEALED], sealed[2 * SEALED :]
    with pytest.raises(DecryptionError):
        decrypt_segment(KEY, 5, b1 + b0 + rest)


def test_blocks_moved_between_segments_and_objects() -> None:
    plain = data(2 * B)
    seg5 = encrypt_segment(KEY, 5, plain)
    seg6 = encrypt_segment(KEY, 6, plain)  # same key, same data, next segment
    other_object = encrypt_segment(OTHER_KEY, 5, plain)
    for mixed in [seg6[:SEALED] + seg5[SEALED:], other_object[:SEALED] + seg5[SEALED:], seg6]:
        with pytest.raises(DecryptionError):
            decrypt_segment(KEY, 5, mixed)


def test_failed_decrypt_into_leaves_no_plaintext() -> None:
    plain, sealed = three_blocks()
    tampered = bytearray(sealed)
    tampered[2 * SEALED + 10] ^= 1  # the last block: the first two decrypt before the failure
    out = bytearray(b"\xaa" * len(plain))
    with pytest.raises(DecryptionError):
        decrypt_segment_into(KEY, 5, bytes(tampered), out)
    assert out == bytes(len(plain))


# --- range reads ----------------------------------------------------------------------------


@given(sizes.filter(lambda n: n > 0), st.data())
def test_range_reads(size: int, draw: st.DataObject) -> None:
    plain = data(size, 3)
    sealed = encrypt_segment(KEY, 2, plain)
    offset = draw.draw(st.integers(0, size - 1))
    length = draw.draw(st.integers(1, size - offset))
    first, last = block_range(offset, length, size)
    start, end = ciphertext_range(first, last, size)
    assert first * B <= offset and offset + length <= (last + 1) * B
    got = decrypt_range(
        KEY, 2, sealed[start:end], offset=offset, length=length, total_plaintext_size=size
    )
    assert got == plain[offset : offset + length]
    blocks = decrypt_blocks(KEY, 2, first, sealed[start:end], total_plaintext_size=size)
    assert blocks == plain[first * B : (last + 1) * B]


def test_range_reads_refuse_wrong_blocks() -> None:
    plain, sealed = three_blocks()
    size = len(plain)
    b1 = sealed[SEALED : 2 * SEALED]
    with pytest.raises(DecryptionError):  # block 1's bytes presented as block 0
        decrypt_blocks(KEY, 5, 0, b1, total_plaintext_size=size)
    with pytest.raises(DecryptionError):  # a partial block
        decrypt_blocks(KEY, 5, 1, b1[:-1], total_plaintext_size=size)
    with pytest.raises(DecryptionError):  # more than the segment holds
        decrypt_blocks(KEY, 5, 2, sealed[2 * SEALED :] + b"\x00", total_plaintext_size=size)
    with pytest.raises(DecryptionError):
        decrypt_blocks(KEY, 5, 1, b"", total_plaintext_size=size)
    with pytest.raises(DecryptionError):  # the bridge lies about the size: block 1 is not last
        decrypt_blocks(KEY, 5, 1, b1, total_plaintext_size=2 * B)
    with pytest.raises(DecryptionError):
        decrypt_blocks(OTHER_KEY, 5, 1, b1, total_plaintext_size=size)
    with pytest.raises(DecryptionError):  # a short answer never passes as a short range
        decrypt_range(KEY, 5, sealed[:SEALED], offset=0, length=B + 10, total_plaintext_size=size)


def test_range_arguments() -> None:
    for offset, length, size in [(-1, 1, 10), (0, 0, 10), (5, 6, 10), (0, 1, 0)]:
        with pytest.raises(ValueError):
            block_range(offset, length, size)
    for first, last, size in [(1, 0, 3 * B), (0, 3, 3 * B), (-1, 0, B), (1, 1, B)]:
        with pytest.raises(ValueError):
            ciphertext_range(first, last, size)
    with pytest.raises(ValueError):
        decrypt_blocks(KEY, 0, 3, bytes(SEALED), total_plaintext_size=3 * B)
    assert block_range(B - 1, 2, 2 * B) == (0, 1)
    assert ciphertext_range(1, 2, 2 * B + 1) == (SEALED, 2 * SEALED + 1 + TAG_SIZE)


def test_bad_keys_and_indices() -> None:
    for key, index in [(bytes(16), 0), (KEY, -1), (KEY, 1 << 32)]:
        with pytest.raises(ValueError):
            encrypt_segment(key, index, b"x")
