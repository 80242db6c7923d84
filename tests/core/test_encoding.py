"""Canonical encoding: round trips, and every malformed input is a DecodeError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metadisk.core.encoding import Reader, Writer, b64decode, b64encode
from metadisk.core.errors import DecodeError


@given(
    st.integers(0, 255),
    st.integers(0, 2**16 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**64 - 1),
    st.binary(max_size=300),
    st.text(max_size=100),
)
def test_fields_round_trip(a: int, b: int, c: int, d: int, blob: bytes, text: str) -> None:
    data = Writer().u8(a).u16(b).u32(c).u64(d).blob(blob).text(text).fixed(b"xyz", 3).getvalue()
    r = Reader(data)
    assert (r.u8(), r.u16(), r.u32(), r.u64(), r.blob(), r.text(), r.fixed(3)) == (
        a, b, c, d, blob, text, b"xyz",
    )  # fmt: skip
    r.end()


@given(st.binary(max_size=200), st.data())
def test_any_truncation_is_a_decode_error(blob: bytes, data: st.DataObject) -> None:
    encoded = Writer().u64(7).blob(blob).getvalue()
    cut = data.draw(st.integers(0, len(encoded) - 1))
    r = Reader(encoded[:cut])
    with pytest.raises(DecodeError):
        r.u64()
        r.blob()


def test_trailing_bytes_rejected() -> None:
    r = Reader(Writer().u8(1).getvalue() + b"\x00")
    r.u8()
    with pytest.raises(DecodeError, match="trailing"):
        r.end()


def test_oversized_length_rejected_without_allocating() -> None:
    r = Reader(b"\xff\xff\xff\xff" + b"abc")
    with pytest.raises(DecodeError, match="too large"):
        r.blob()


def test_invalid_utf8_rejected() -> None:
    with pytest.raises(DecodeError, match="UTF-8"):
        Reader(Writer().blob(b"\xff\xfe").getvalue()).text()


def test_header_checks_tag_and_version() -> None:
    with pytest.raises(DecodeError, match="type"):
        Reader(b"\x02\x01").header(1, 1)
    with pytest.raises(DecodeError, match="version"):
        Reader(b"\x01\x02").header(1, 1)
    with pytest.raises(DecodeError, match="version"):
        Reader(b"\x01\x00").header(1, 1)
    assert Reader(b"\x01\x01").header(1, 1) == 1


def test_writer_refuses_out_of_range_values() -> None:
    with pytest.raises(ValueError):
        Writer().u8(256)
    with pytest.raises(ValueError):
        Writer().u64(-1)
    with pytest.raises(ValueError):
        Writer().fixed(b"ab", 3)


@given(st.binary(max_size=200))
def test_base64_round_trip(data: bytes) -> None:
    text = b64encode(data)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64decode(text) == data


@pytest.mark.parametrize("bad", ["a", "ab=", "a+bc", "a/bc", "ab!c", "é", "AB"])
def test_base64_rejects_malformed(bad: str) -> None:
    # "AB" decodes to one byte but its last char carries stray bits: not canonical.
    with pytest.raises(DecodeError):
        b64decode(bad)
