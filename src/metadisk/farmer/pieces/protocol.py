"""Parsing the data plane's untrusted inputs; each failure is a `FarmerError` with a stable code.

Sans-I/O: strings in, values out, so every check has its own small test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from metadisk.core.encoding import b64decode
from metadisk.core.errors import DecodeError
from metadisk.core.messages import HASH_SIZE, OrderLimit
from metadisk.farmer.errors import BadRequest, RangeNotSatisfiable, Unauthorized
from metadisk.wire.dataplane.contract import (
    MAX_ORDER_LIMIT_HEADER,
    ORDER_LIMIT_HEADER,
    PIECE_HASH_HEADER,
)

_PIECE_ID = re.compile(r"[0-9a-f]{64}")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def parse_piece_id(text: str) -> bytes:
    """A piece id is exactly 64 lowercase hex digits: nothing else ever reaches a file path."""
    if not _PIECE_ID.fullmatch(text):
        raise BadRequest("a piece id is 64 lowercase hex digits", code="bad-piece-id")
    return bytes.fromhex(text)


def parse_order_limit(header: str | None) -> OrderLimit:
    if header is None or not header.strip():
        raise Unauthorized(f"missing {ORDER_LIMIT_HEADER} header")
    try:
        if len(header) > MAX_ORDER_LIMIT_HEADER:
            raise DecodeError("header too long")
        return OrderLimit.decode(b64decode(header.strip()))
    except DecodeError as exc:
        raise BadRequest(f"malformed order limit: {exc}", code="malformed-order-limit") from exc


def parse_piece_hash(header: str | None) -> bytes:
    if header is None:
        raise BadRequest(f"missing {PIECE_HASH_HEADER} header", code="missing-piece-hash")
    try:
        value = b64decode(header.strip())
    except DecodeError as exc:
        raise BadRequest("malformed piece hash", code="malformed-piece-hash") from exc
    if len(value) != HASH_SIZE:
        raise BadRequest(f"a piece hash is {HASH_SIZE} bytes", code="malformed-piece-hash")
    return value


@dataclass(frozen=True, slots=True)
class RangeSpec:
    """One ``bytes=`` range as asked: ``a-b``, ``a-`` or the suffix ``-n`` (start None)."""

    start: int | None
    end: int | None

    def resolve(self, size: int) -> tuple[int, int]:
        """(offset, count) within a piece of `size` bytes; RangeNotSatisfiable if none."""
        if self.start is None:
            assert self.end is not None
            if self.end == 0 or size == 0:
                raise RangeNotSatisfiable("empty suffix range", size=size)
            count = min(self.end, size)
            return size - count, count
        if self.start >= size:
            raise RangeNotSatisfiable(f"range starts at or after byte {size}", size=size)
        last = size - 1 if self.end is None else min(self.end, size - 1)
        return self.start, last - self.start + 1


def parse_range(header: str | None) -> RangeSpec | None:
    """A single byte range, or None for the whole piece; several ranges are refused."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        raise BadRequest("only one range of the form bytes=a-b is served", code="malformed-range")
    start = int(match.group(1)) if match.group(1) else None
    end = int(match.group(2)) if match.group(2) else None
    if start is not None and end is not None and end < start:
        raise BadRequest("range ends before it starts", code="malformed-range")
    return RangeSpec(start, end)
