"""The object metadata's checksum: fixed encodings, old ones still decoding, bad ones refused."""

from __future__ import annotations

import pytest

from metadisk.client.formats import ObjectMetadata
from metadisk.core.errors import DecodeError

# What clients before the checksum wrote, byte for byte: it must keep decoding, as checksum None.
OLD = b'{"content_type":"text/plain","custom":{"a":"b"},"size":5,"v":1}'
NEW = (
    b'{"checksum":"' + b"ab" * 32 + b'","content_type":"text/plain","custom":{"a":"b"},'
    b'"size":5,"v":1}'
)


def test_an_old_encoding_decodes_without_a_checksum() -> None:
    meta = ObjectMetadata.decode(OLD)
    assert meta == ObjectMetadata(5, "text/plain", {"a": "b"})
    assert meta.checksum is None
    assert meta.encode() == OLD  # without a checksum, nothing changed on the wire


def test_the_checksum_encodes_as_hex_and_round_trips() -> None:
    meta = ObjectMetadata(5, "text/plain", {"a": "b"}, bytes([0xAB]) * 32)
    assert meta.encode() == NEW
    assert ObjectMetadata.decode(NEW) == meta


@pytest.mark.parametrize("checksum", ['"abcd"', '"' + "zz" * 32 + '"', "7", "[]"])
def test_a_malformed_checksum_is_refused(checksum: str) -> None:
    raw = OLD.replace(b'"size"', b'"checksum":' + checksum.encode() + b',"size"')
    with pytest.raises(DecodeError):
        ObjectMetadata.decode(raw)


def test_a_checksum_is_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        ObjectMetadata(5, checksum=b"short")
