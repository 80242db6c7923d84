"""Reed-Solomon codec and redundancy schemes: any k of n pieces rebuild the exact segment."""

from __future__ import annotations

import pickle
import random

import pytest
import reed_solomon_leopard
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from metadisk.core.erasure import (
    GLOBAL,
    LOCAL,
    MAX_PIECES,
    PIECE_ALIGN,
    ErasureCodec,
    RedundancyScheme,
)
from metadisk.core.errors import DecodeError, ErasureError


def data_of(size: int, seed: int) -> bytes:
    # Never all zero, so a padding check cannot pass by luck.
    return random.Random(seed).randbytes(size).replace(b"\x00", b"\x01")


def edge_sizes(k: int) -> st.SearchStrategy[int]:
    """1 byte, odd sizes, and sizes around piece and stripe boundaries."""
    edges = [1, 2, 63, 64, 65, 127, 128, 129]
    edges += [m * PIECE_ALIGN * k + d for m in (1, 2, 3) for d in (-1, 0, 1)]
    return st.one_of(st.sampled_from(edges), st.integers(1, 40 * k * PIECE_ALIGN))


# Small stripes force several backend calls per piece even on small data; 0 is the default.
STRIPES = st.sampled_from([0, 64, 128, 192, 1024])

# Shapes of every backend mode: low rate (r > k), high rate (r < k), equal powers of two both
# ways, pure replication (k = 1) and no redundancy (n = k).
SHAPES = [(4, 10), (29, 80), (29, 110), (8, 12), (3, 7), (7, 12), (1, 1), (1, 5), (5, 5), (2, 3)]


@st.composite
def loss_case(draw: st.DrawFn, k: int, n: int) -> tuple[int, int, list[int], int]:
    size = draw(edge_sizes(k))
    seed = draw(st.integers(0, 2**32))
    kept = draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=n, unique=True))
    stripe = draw(STRIPES)
    return size, seed, kept, stripe


def check_round_trip(k: int, n: int, size: int, seed: int, kept: list[int], stripe: int) -> None:
    data = data_of(size, seed)
    codec = ErasureCodec(k, n, stripe)
    pieces = codec.encode(data)
    assert len(pieces) == n
    assert {len(p) for p in pieces} == {codec.piece_size(size)}
    assert b"".join(pieces[:k])[:size] == data  # systematic: data pieces are the segment
    chosen = {i: pieces[i] for i in kept}
    assert codec.decode(chosen, size) == data
    out = bytearray(size + 7)
    assert codec.decode_into(chosen, size, out) == size
    assert out[:size] == data
    assert out[size:] == bytes(7)


@settings(max_examples=150)
@given(st.sampled_from([(4, 10), (29, 80), (3, 7), (1, 5), (5, 5)]), st.data())
def test_decode_in_place_over_pieces_sitting_in_slots_in_any_order(
    shape: tuple[int, int], data: st.DataObject
) -> None:
    # The client's download buffer: the pieces it got, one per slot, in arrival order; the
    # segment is rebuilt over them, slot i becoming data piece i.
    k, n = shape
    size, seed, kept, stripe = data.draw(loss_case(k, n))
    segment = data_of(size, seed)
    codec = ErasureCodec(k, n, stripe)
    pieces = codec.encode(segment)
    order = data.draw(st.permutations(kept))
    piece_size = codec.piece_size(size)
    slots = bytearray(b"".join(pieces[i] for i in order))
    view = memoryview(slots)
    chosen = {i: view[s * piece_size : (s + 1) * piece_size] for s, i in enumerate(order)}
    assert codec.decode_into(chosen, size, view) == size
    assert slots[:size] == segment


@settings(max_examples=200)
@given(loss_case(4, 10))
def test_local_any_k_of_n_rebuild(case: tuple[int, int, list[int], int]) -> None:
    check_round_trip(4, 10, *case)


@settings(max_examples=100)
@given(loss_case(29, 80))
def test_29_of_80_any_k_rebuild(case: tuple[int, int, list[int], int]) -> None:
    check_round_trip(29, 80, *case)


@settings(max_examples=100)
@given(loss_case(29, 110))
def test_global_any_k_of_n_rebuild(case: tuple[int, int, list[int], int]) -> None:
    check_round_trip(29, 110, *case)


@given(st.sampled_from(SHAPES).flatmap(lambda s: st.tuples(st.just(s), loss_case(*s))))
def test_other_shapes_rebuild(
    args: tuple[tuple[int, int], tuple[int, int, list[int], int]],
) -> None:
    (k, n), case = args
    check_round_trip(k, n, *case)


@given(st.sampled_from(SHAPES), st.integers(1, 20_000), STRIPES)
def test_stripes_never_change_pieces(shape: tuple[int, int], size: int, stripe: int) -> None:
    k, n = shape
    data = data_of(size, size)
    codec = ErasureCodec(k, n)
    pieces = codec.encode(data)
    # One backend call over whole pieces is the reference the stripes must reproduce.
    if n > k:
        assert reed_solomon_leopard.encode(pieces[:k], n - k) == pieces[k:]
    assert ErasureCodec(k, n, stripe).encode(data) == pieces


@given(st.sampled_from(SHAPES), st.integers(1, 5000), st.data())
def test_encode_into_matches_encode(shape: tuple[int, int], size: int, data: st.DataObject) -> None:
    k, n = shape
    segment = data_of(size, 3)
    codec = ErasureCodec(k, n, data.draw(STRIPES))
    pieces = codec.encode(segment)
    piece_size = codec.piece_size(size)
    skip = data.draw(st.sets(st.integers(0, n - 1)))
    out = [None if i in skip else bytearray(b"\xee" * (piece_size + 3)) for i in range(n)]
    assert codec.encode_into(memoryview(segment), out) == piece_size
    for i, buffer in enumerate(out):
        if buffer is not None:
            assert buffer[:piece_size] == pieces[i]
            assert buffer[piece_size:] == b"\xee" * 3  # nothing written past the piece


@given(st.sampled_from(SHAPES), st.integers(1, 5000), st.data())
def test_encode_pieces_and_reconstruct(
    shape: tuple[int, int], size: int, data: st.DataObject
) -> None:
    k, n = shape
    segment = data_of(size, 5)
    codec = ErasureCodec(k, n)
    pieces = codec.encode(segment)
    wanted = data.draw(st.lists(st.integers(0, n - 1), unique=True))
    assert codec.encode_pieces(segment, wanted) == {i: pieces[i] for i in wanted}
    kept = data.draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k, unique=True))
    lost = [i for i in range(n) if i not in kept]
    rebuilt = codec.reconstruct({i: pieces[i] for i in kept}, size, lost)
    assert rebuilt == {i: pieces[i] for i in lost}


def test_piece_size_rules() -> None:
    codec = ErasureCodec(4, 10)
    assert codec.piece_size(1) == 64
    assert codec.piece_size(4 * 64) == 64
    assert codec.piece_size(4 * 64 + 1) == 128
    assert codec.piece_size(64 << 20) == 16 << 20
    assert ErasureCodec(29, 80).piece_size(58 << 20) == 2 << 20
    assert ErasureCodec(29, 80).piece_size(1000) == 64  # ceil(1000 / 29) = 35, rounded to 64
    assert ErasureCodec(3, 5).piece_size(1000) == 384  # ceil(1000 / 3) = 334, rounded to 384
    for bad in (0, -1):
        with pytest.raises(ErasureError):
            codec.piece_size(bad)
    with pytest.raises(ErasureError):
        codec.encode(b"")


def test_one_byte_segment() -> None:
    codec = GLOBAL.codec()
    pieces = codec.encode(b"\x07")
    assert pieces[0] == b"\x07" + bytes(63)
    assert all(p == bytes(64) for p in pieces[1:29])  # pure padding
    assert codec.decode({i: pieces[i] for i in range(81, 110)}, 1) == b"\x07"


@given(st.integers(0, 3))
def test_fewer_than_k_pieces_fail(missing: int) -> None:
    codec = ErasureCodec(4, 10)
    pieces = codec.encode(data_of(1000, 1))
    few = {i: pieces[i] for i in range(6, 6 + missing)}
    with pytest.raises(ErasureError, match="cannot rebuild"):
        codec.decode(few, 1000)
    with pytest.raises(ErasureError):
        codec.decode_into(few, 1000, bytearray(1000))


def test_bad_pieces_fail() -> None:
    codec = ErasureCodec(4, 10)
    pieces = codec.encode(data_of(1000, 2))
    good = {i: pieces[i] for i in range(4, 8)}
    for index in (-1, 10, 255, "1", 1.0, None):
        with pytest.raises(ErasureError, match="outside"):
            codec.decode({**good, index: pieces[0]}, 1000)  # type: ignore[dict-item]
    for piece in (pieces[0][:-1], pieces[0] + b"\0", b""):
        with pytest.raises(ErasureError, match="bytes, expected"):
            codec.decode({**good, 0: piece}, 1000)
    with pytest.raises(ErasureError, match="not bytes"):
        codec.decode({**good, 0: "text"}, 1000)  # type: ignore[dict-item]
    with pytest.raises(ErasureError):
        codec.decode(good, 0)
    with pytest.raises(ErasureError):
        codec.encode_pieces(b"x", [10])


@given(st.integers(1, 3000), st.integers(-200, 200), st.booleans())
def test_wrong_segment_size(size: int, delta: int, all_data: bool) -> None:
    codec = ErasureCodec(4, 10)
    claimed = size + delta
    # Other claims change the piece size, which the size check catches (tested above).
    assume(delta and claimed >= 1 and codec.piece_size(claimed) == codec.piece_size(size))
    data = data_of(size, size)
    pieces = codec.encode(data)
    chosen = {i: pieces[i] for i in (range(4) if all_data else range(6, 10))}
    if delta < 0:
        with pytest.raises(ErasureError, match="padding"):
            codec.decode(chosen, claimed)  # real data where padding should be
    else:
        # Claiming more keeps zero padding; only decryption can tell (the GCM tag moves).
        assert codec.decode(chosen, claimed) == data + bytes(delta)


def test_mixed_segments_are_caught_by_padding() -> None:
    codec = ErasureCodec(4, 10)
    a, b = codec.encode(data_of(900, 1)), codec.encode(data_of(900, 2))
    # Piece 3 carries the padding; taking it from another segment of a different length fails.
    c = codec.encode(data_of(1000, 3))
    with pytest.raises(ErasureError, match="padding"):
        codec.decode({0: a[0], 1: b[1], 2: a[2], 3: c[3]}, 900)


def test_codec_validation() -> None:
    for k, n in ((0, 1), (2, 1), (1, MAX_PIECES + 1), (-1, 4)):
        with pytest.raises(ErasureError):
            ErasureCodec(k, n)
    with pytest.raises(ErasureError):
        ErasureCodec(4.0, 10)  # type: ignore[arg-type]
    for stripe in (-64, 63, 100):
        with pytest.raises(ErasureError):
            ErasureCodec(4, 10, stripe)
    ErasureCodec(MAX_PIECES, MAX_PIECES)
    ErasureCodec(1, MAX_PIECES)


def test_output_buffers_are_checked() -> None:
    codec = ErasureCodec(2, 3)
    with pytest.raises(ValueError, match="output buffers"):
        codec.encode_into(b"abc", [bytearray(64)] * 2)
    with pytest.raises(ValueError, match="needs 64"):
        codec.encode_into(b"abc", [bytearray(64), bytearray(63), bytearray(64)])
    with pytest.raises(ValueError, match="read-only"):
        codec.encode_into(b"abc", [bytearray(64), memoryview(bytes(64)), bytearray(64)])
    pieces = codec.encode(b"abc")
    with pytest.raises(ValueError, match="needs 3"):
        codec.decode_into({0: pieces[0], 2: pieces[2]}, 3, bytearray(2))


def test_codec_pickles_for_process_pools() -> None:
    codec = ErasureCodec(29, 80)
    clone = pickle.loads(pickle.dumps(codec))
    assert clone == codec
    data = data_of(5000, 9)
    assert pickle.loads(pickle.dumps(codec.encode))(data) == codec.encode(data)
    assert pickle.loads(pickle.dumps(GLOBAL)) == GLOBAL


def test_profiles() -> None:
    assert (LOCAL.k, LOCAL.m, LOCAL.o, LOCAL.n) == (4, 6, 8, 10)
    assert (GLOBAL.k, GLOBAL.m, GLOBAL.o, GLOBAL.n) == (29, 35, 80, 110)
    assert LOCAL.expansion == 2.0
    assert str(GLOBAL) == "29/35/80/110"
    assert GLOBAL.codec() == ErasureCodec(29, 110)


@st.composite
def schemes(draw: st.DrawFn) -> RedundancyScheme:
    values = sorted(draw(st.lists(st.integers(1, MAX_PIECES), min_size=4, max_size=4)))
    return RedundancyScheme(*values)


@given(schemes())
def test_scheme_round_trip(scheme: RedundancyScheme) -> None:
    encoded = scheme.encode()
    assert len(encoded) == 6
    assert RedundancyScheme.decode(encoded) == scheme


def test_scheme_encoding_is_pinned() -> None:
    assert LOCAL.encode().hex() == "40010406080a"
    assert GLOBAL.encode().hex() == "40011d23506e"


@pytest.mark.parametrize(
    "values",
    [(0, 1, 1, 1), (2, 1, 2, 2), (1, 3, 2, 3), (1, 1, 3, 2), (1, 1, 1, 256), (4, 6, 8, -1)],
)
def test_scheme_validation(values: tuple[int, int, int, int]) -> None:
    with pytest.raises(ErasureError):
        RedundancyScheme(*values)


def test_scheme_rejects_non_integers() -> None:
    with pytest.raises(ErasureError):
        RedundancyScheme(4, 6, 8, 10.0)  # type: ignore[arg-type]
    with pytest.raises(ErasureError):
        RedundancyScheme(True, 6, 8, 10)


@pytest.mark.parametrize(
    "hex_bytes",
    [
        "",
        "40",
        "4001",
        "40010406080a00",  # trailing byte
        "41010406080a",  # another message's tag
        "40020406080a",  # unknown version
        "40000406080a",
        "40010006080a",  # k = 0
        "40010806040a",  # m > o
        "400104060804",  # n < o
    ],
)
def test_scheme_malformed_encodings(hex_bytes: str) -> None:
    with pytest.raises(DecodeError):
        RedundancyScheme.decode(bytes.fromhex(hex_bytes))


@given(st.binary(max_size=8))
def test_scheme_decode_never_fails_otherwise(data: bytes) -> None:
    try:
        scheme = RedundancyScheme.decode(data)
    except DecodeError:
        return
    assert scheme.encode() == data  # canonical: one encoding per value
