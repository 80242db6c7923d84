"""Root keys, KDF parameters, key wrapping and metadata encryption."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metadisk.core.errors import DecodeError, DecryptionError
from metadisk.core.keys import (
    DEFAULT_KDF_PARAMS,
    KEY_SIZE,
    TAG_KDF_PARAMS,
    WRAPPED_KEY_SIZE,
    KdfParams,
    decrypt_metadata,
    derive_root_key,
    encrypt_metadata,
    new_content_key,
    rewrap_key,
    rewrap_metadata_key,
    rewrap_segment_key,
    unwrap_key,
    unwrap_segment_key,
    wrap_key,
    wrap_segment_key,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "crypto.json").read_text("utf-8")
)
CHEAP = KdfParams(time_cost=1, memory_cost=8, parallelism=1)
SALT = bytes(16)
keys32 = st.binary(min_size=32, max_size=32)


def fixed_random(data: bytes) -> Callable[[int], bytes]:
    """A `randbytes` that hands out `data` in order and fails when it runs out."""
    position = 0

    def randbytes(size: int) -> bytes:
        nonlocal position
        chunk = data[position : position + size]
        assert len(chunk) == size, "fixed randomness exhausted"
        position += size
        return chunk

    return randbytes


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8 % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


# --- KdfParams ------------------------------------------------------------------------------


@given(st.integers(1, 1024), st.integers(1, 255), st.integers(0, 4 << 20))
def test_kdf_params_round_trip(time_cost: int, parallelism: int, extra: int) -> None:
    memory = min(8 * parallelism + extra, 4 << 20)
    params = KdfParams(time_cost, memory, parallelism)
    assert KdfParams.decode(params.encode()) == params


@given(st.binary(max_size=20))
def test_kdf_params_decode_arbitrary_bytes(data: bytes) -> None:
    try:
        params = KdfParams.decode(data)
    except DecodeError:
        return
    assert params.encode() == data


@pytest.mark.parametrize(
    "time_cost, memory_cost, parallelism",
    [(0, 64, 1), (1, 7, 1), (1, 15, 2), (1, 64, 0), (1, 64, 256), (1025, 64, 1), (1, 1 << 30, 1)],
)
def test_kdf_params_out_of_range(time_cost: int, memory_cost: int, parallelism: int) -> None:
    data = bytes([TAG_KDF_PARAMS, 1]) + b"".join(
        v.to_bytes(4, "big") for v in (time_cost, memory_cost, parallelism)
    )
    with pytest.raises(DecodeError):
        KdfParams.decode(data)
    with pytest.raises(DecodeError):
        KdfParams(time_cost, memory_cost, parallelism)


def test_kdf_params_malformed_encodings() -> None:
    good = CHEAP.encode()
    for cut in range(len(good)):
        with pytest.raises(DecodeError):
            KdfParams.decode(good[:cut])
    for bad in (
        good + b"\x00",
        bytes([TAG_KDF_PARAMS + 1]) + good[1:],
        good[:1] + b"\x02" + good[2:],
    ):
        with pytest.raises(DecodeError):
            KdfParams.decode(bad)


# --- root keys ------------------------------------------------------------------------------


def test_root_key_vector() -> None:
    v = VECTORS["argon2id"]
    params = KdfParams(v["time_cost"], v["memory_cost"], v["parallelism"])
    assert params.encode().hex() == v["params_encoding"]
    assert KdfParams.decode(bytes.fromhex(v["params_encoding"])) == params
    root = derive_root_key(v["passphrase"], bytes.fromhex(v["salt"]), params)
    assert root.hex() == v["root_key"]


def test_root_key_depends_on_every_input() -> None:
    base = derive_root_key("passphrase", SALT, CHEAP)
    assert len(base) == KEY_SIZE
    assert derive_root_key(b"passphrase", SALT, CHEAP) == base
    others = {
        derive_root_key("passphrase!", SALT, CHEAP),
        derive_root_key("passphrase", bytes(15) + b"\x01", CHEAP),
        derive_root_key("passphrase", bytes(17), CHEAP),
        derive_root_key("passphrase", SALT, KdfParams(2, 8, 1)),
        derive_root_key("passphrase", SALT, KdfParams(1, 16, 1)),
        derive_root_key("passphrase", SALT, KdfParams(1, 16, 2)),
    }
    assert base not in others and len(others) == 6


def test_root_key_normalizes_text_passphrases() -> None:
    composed = "caf\u00e9"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert derive_root_key(composed, SALT, CHEAP) == derive_root_key(decomposed, SALT, CHEAP)
    # Bytes are taken as they are: the caller chose the encoding.
    assert derive_root_key(decomposed.encode(), SALT, CHEAP) != derive_root_key(
        composed.encode(), SALT, CHEAP
    )


def test_root_key_default_params_work() -> None:
    assert KdfParams.decode(DEFAULT_KDF_PARAMS.encode()) == DEFAULT_KDF_PARAMS
    key = derive_root_key("passphrase", SALT)
    assert len(key) == KEY_SIZE and key != derive_root_key("passphrase", SALT, CHEAP)


def test_root_key_rejects_short_salt_and_empty_passphrase() -> None:
    with pytest.raises(ValueError, match="salt"):
        derive_root_key("passphrase", bytes(15), CHEAP)
    with pytest.raises(ValueError, match="passphrase"):
        derive_root_key("", SALT, CHEAP)


# --- wrapping -------------------------------------------------------------------------------


@given(keys32, keys32, st.binary(max_size=40))
def test_wrap_round_trip(wrapping_key: bytes, key: bytes, context: bytes) -> None:
    wrapped = wrap_key(wrapping_key, key, context=context)
    assert len(wrapped) == WRAPPED_KEY_SIZE
    assert unwrap_key(wrapping_key, wrapped, context=context) == key


def test_wrap_vector() -> None:
    v = VECTORS["wrap"]
    wk, key, context = (bytes.fromhex(v[n]) for n in ("wrapping_key", "key", "context"))
    wrapped = wrap_key(wk, key, fixed_random(bytes.fromhex(v["randbytes"])), context=context)
    assert wrapped.hex() == v["wrapped"]
    assert unwrap_key(wk, wrapped, context=context) == key


def test_segment_key_vector() -> None:
    v = VECTORS["wrap"]
    wk, key = bytes.fromhex(v["wrapping_key"]), bytes.fromhex(v["key"])
    randbytes = fixed_random(bytes.fromhex(v["randbytes"]))
    wrapped = wrap_segment_key(wk, key, v["segment_index"], randbytes)
    assert wrapped.hex() == v["wrapped_segment_key"]
    assert unwrap_segment_key(wk, wrapped, v["segment_index"]) == key


@given(keys32, keys32, st.integers(0, 2**32 - 1))
def test_segment_key_round_trip(object_key: bytes, content_key: bytes, index: int) -> None:
    wrapped = wrap_segment_key(object_key, content_key, index)
    assert unwrap_segment_key(object_key, wrapped, index) == content_key


def test_segment_key_is_bound_to_its_object_and_segment() -> None:
    object_key, other_object = bytes([1]) * 32, bytes([2]) * 32
    wrapped = wrap_segment_key(object_key, bytes(range(32)), 3)
    for key, index in [(object_key, 2), (object_key, 4), (other_object, 3)]:
        with pytest.raises(DecryptionError):
            unwrap_segment_key(key, wrapped, index)
    with pytest.raises(DecryptionError):  # not a metadata key either
        decrypt_metadata(object_key, encrypt_metadata(object_key, b"")[0], wrapped)
    moved = rewrap_segment_key(object_key, other_object, wrapped, 3)
    assert unwrap_segment_key(other_object, moved, 3) == bytes(range(32))
    with pytest.raises(ValueError):
        wrap_segment_key(object_key, bytes(32), 1 << 32)


def test_wrap_uses_fresh_nonces() -> None:
    wk, key = bytes(32), bytes(range(32))
    assert wrap_key(wk, key) != wrap_key(wk, key)


@given(keys32, st.integers(0, WRAPPED_KEY_SIZE * 8 - 1))
def test_unwrap_rejects_bit_flips(key: bytes, bit: int) -> None:
    wrapped = wrap_key(bytes(32), key)
    with pytest.raises(DecryptionError):
        unwrap_key(bytes(32), flip(wrapped, bit))


def test_unwrap_rejects_wrong_key_context_and_length() -> None:
    wk = bytes(32)
    wrapped = wrap_key(wk, bytes(range(32)), context=b"segment 1")
    bad_inputs: list[tuple[bytes, bytes, bytes]] = [
        (bytes([1]) * 32, wrapped, b"segment 1"),  # wrong key
        (wk, wrapped, b"segment 2"),  # wrong context
        (wk, wrapped, b""),
        (wk, wrapped[:-1], b"segment 1"),  # truncated
        (wk, wrapped + b"\x00", b"segment 1"),  # appended
        (wk, b"\x02" + wrapped[1:], b"segment 1"),  # unknown version
        (wk, b"", b"segment 1"),
    ]
    for wrapping_key, data, context in bad_inputs:
        with pytest.raises(DecryptionError):
            unwrap_key(wrapping_key, data, context=context)


def test_wrap_rejects_bad_key_sizes() -> None:
    with pytest.raises(ValueError):
        wrap_key(bytes(31), bytes(32))
    with pytest.raises(ValueError):
        wrap_key(bytes(32), bytes(16))
    with pytest.raises(ValueError):
        unwrap_key(bytes(33), bytes(WRAPPED_KEY_SIZE))


@given(keys32, keys32, keys32)
def test_rewrap_moves_a_key(old: bytes, new: bytes, key: bytes) -> None:
    moved = rewrap_key(old, new, wrap_key(old, key, context=b"c"), context=b"c")
    assert unwrap_key(new, moved, context=b"c") == key
    if old != new:
        with pytest.raises(DecryptionError):
            unwrap_key(old, moved, context=b"c")


def test_new_content_key_uses_randbytes() -> None:
    assert new_content_key(fixed_random(bytes(range(32)))) == bytes(range(32))
    assert new_content_key() != new_content_key()
    with pytest.raises(ValueError):
        new_content_key(lambda n: bytes(n - 1))


# --- metadata -------------------------------------------------------------------------------


@given(keys32, st.binary(max_size=2000))
def test_metadata_round_trip(object_key: bytes, metadata: bytes) -> None:
    encrypted, wrapped = encrypt_metadata(object_key, metadata)
    assert len(wrapped) == WRAPPED_KEY_SIZE
    assert decrypt_metadata(object_key, encrypted, wrapped) == metadata


def test_metadata_vector() -> None:
    v = VECTORS["metadata"]
    object_key, metadata = bytes.fromhex(v["object_key"]), bytes.fromhex(v["metadata"])
    encrypted, wrapped = encrypt_metadata(
        object_key, metadata, fixed_random(bytes.fromhex(v["randbytes"]))
    )
    assert (encrypted.hex(), wrapped.hex()) == (v["encrypted"], v["wrapped_key"])
    assert decrypt_metadata(object_key, encrypted, wrapped) == metadata


@given(st.binary(min_size=1, max_size=64), st.data())
def test_metadata_rejects_bit_flips(metadata: bytes, data: st.DataObject) -> None:
    encrypted, wrapped = encrypt_metadata(bytes(32), metadata)
    bit = data.draw(st.integers(0, len(encrypted) * 8 - 1))
    with pytest.raises(DecryptionError):
        decrypt_metadata(bytes(32), flip(encrypted, bit), wrapped)


def test_metadata_rejects_wrong_key_swaps_and_truncation() -> None:
    key_a, key_b = bytes([1]) * 32, bytes([2]) * 32
    enc_a, wrapped_a = encrypt_metadata(key_a, b"metadata of a")
    enc_b, wrapped_b = encrypt_metadata(key_b, b"metadata of b")
    content_key_wrap = wrap_key(key_a, bytes(32))  # a content key, not a metadata key
    bad: list[tuple[bytes, bytes, bytes]] = [
        (key_b, enc_a, wrapped_a),  # wrong object key
        (key_a, enc_b, wrapped_a),  # metadata swapped in from another object
        (key_a, enc_a, wrapped_b),  # metadata key swapped in from another object
        (key_a, enc_a, content_key_wrap),  # a wrapped key of another role
        (key_a, enc_a[:-1], wrapped_a),
        (key_a, enc_a + b"\x00", wrapped_a),
        (key_a, enc_a[:16], wrapped_a),
        (key_a, b"", wrapped_a),
        (key_a, b"\x02" + enc_a[1:], wrapped_a),
    ]
    for object_key, encrypted, wrapped in bad:
        with pytest.raises(DecryptionError):
            decrypt_metadata(object_key, encrypted, wrapped)


def test_metadata_rename_rewraps_only_the_key() -> None:
    old, new = bytes([1]) * 32, bytes([2]) * 32
    encrypted, wrapped = encrypt_metadata(old, b"{}")
    moved = rewrap_metadata_key(old, new, wrapped)
    assert decrypt_metadata(new, encrypted, moved) == b"{}"
    with pytest.raises(DecryptionError):
        decrypt_metadata(old, encrypted, moved)
