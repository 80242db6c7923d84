"""Parsing the data plane's untrusted inputs: one test per check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metadisk.core.encoding import b64encode
from metadisk.farmer.errors import BadRequest, FarmerError, RangeNotSatisfiable, Unauthorized
from metadisk.farmer.pieces.protocol import (
    RangeSpec,
    parse_order_limit,
    parse_piece_hash,
    parse_piece_id,
    parse_range,
)


def code_of(fn: object, *args: object) -> str:
    with pytest.raises(FarmerError) as info:
        fn(*args)  # type: ignore[operator]
    return info.value.code


def test_piece_id() -> None:
    assert parse_piece_id("ab" * 32) == bytes([0xAB]) * 32
    for bad in ["", "AB" * 32, "ab" * 31, "ab" * 33, "../" * 21 + "a", "g" * 64, "ab" * 32 + "\n"]:
        assert code_of(parse_piece_id, bad) == "bad-piece-id", bad


@given(st.text(max_size=80))
def test_piece_id_never_lets_a_path_through(text: str) -> None:
    try:
        value = parse_piece_id(text)
    except BadRequest:
        return
    assert text == value.hex()  # only the canonical spelling of 32 bytes passes


def test_order_limit_header() -> None:
    with pytest.raises(Unauthorized):
        parse_order_limit(None)
    with pytest.raises(Unauthorized):
        parse_order_limit("  ")
    for bad in ["%%", "AAAA", b64encode(b"\x01\x01"), "A" * 5000]:
        assert code_of(parse_order_limit, bad) == "malformed-order-limit"


def test_piece_hash_header() -> None:
    assert parse_piece_hash(b64encode(b"\x07" * 32)) == b"\x07" * 32
    assert code_of(parse_piece_hash, None) == "missing-piece-hash"
    assert code_of(parse_piece_hash, b64encode(b"\x07" * 31)) == "malformed-piece-hash"
    assert code_of(parse_piece_hash, "!!") == "malformed-piece-hash"


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-9", 100, (0, 10)),
        ("bytes=90-", 100, (90, 10)),
        ("bytes=90-1000", 100, (90, 10)),
        ("bytes=-5", 100, (95, 5)),
        ("bytes=-500", 100, (0, 100)),
        ("bytes=99-99", 100, (99, 1)),
    ],
)
def test_range(header: str, size: int, expected: tuple[int, int]) -> None:
    spec = parse_range(header)
    assert spec is not None
    assert spec.resolve(size) == expected


def test_no_range() -> None:
    assert parse_range(None) is None


@pytest.mark.parametrize(
    "header", ["bytes=5-4", "bytes=0-1,3-4", "bytes=-", "bits=0-1", "bytes=a-b"]
)
def test_malformed_range(header: str) -> None:
    assert code_of(parse_range, header) == "malformed-range"


@pytest.mark.parametrize(
    ("spec", "size"),
    [(RangeSpec(100, None), 100), (RangeSpec(None, 0), 100), (RangeSpec(None, 5), 0)],
)
def test_unsatisfiable_range(spec: RangeSpec, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as info:
        spec.resolve(size)
    assert info.value.status == 416
    assert info.value.size == size
