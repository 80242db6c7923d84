"""Canonical binary encoding for wire messages.

Every signed or stored message is a flat sequence of typed fields written in a fixed order, so
that one value has exactly one encoding and signatures cover bytes, not interpretations:

- ``u8``, ``u16``, ``u32``, ``u64``: unsigned big-endian integers of that width;
- ``blob``: a ``u32`` length followed by the bytes; ``fixed(n)``: exactly n bytes, no length;
- ``text``: UTF-8 text encoded as a ``blob``.

Messages start with a one-byte type tag and a one-byte version. Formats only grow by appending
fields at the end (readers of an older version stop early and use defaults); any other change takes
a new version. `Reader` raises `DecodeError` on any truncation, trailing byte or bad value, never an
arbitrary exception.
"""

from __future__ import annotations

import base64
import binascii
import struct

from metadisk.core.errors import DecodeError

MAX_FIELD = 1 << 24  # 16 MiB: no wire message field is larger; guards against absurd lengths


class Writer:
    """Appends canonical fields to a buffer."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, value: int) -> Writer:
        self._parts.append(_pack(">B", value))
        return self

    def u16(self, value: int) -> Writer:
        self._parts.append(_pack(">H", value))
        return self

    def u32(self, value: int) -> Writer:
        self._parts.append(_pack(">I", value))
        return self

    def u64(self, value: int) -> Writer:
        self._parts.append(_pack(">Q", value))
        return self

    def fixed(self, value: bytes, size: int) -> Writer:
        if len(value) != size:
            raise ValueError(f"expected {size} bytes, got {len(value)}")
        self._parts.append(bytes(value))
        return self

    def blob(self, value: bytes) -> Writer:
        if len(value) > MAX_FIELD:
            raise ValueError("field too large")
        self._parts.append(_pack(">I", len(value)))
        self._parts.append(bytes(value))
        return self

    def text(self, value: str) -> Writer:
        return self.blob(value.encode("utf-8"))

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Reads canonical fields; every failure is a `DecodeError`."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError("expected bytes")
        self._data = bytes(data)
        self._pos = 0

    def _take(self, size: int) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise DecodeError("truncated message")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def u8(self) -> int:
        return int(self._take(1)[0])

    def u16(self) -> int:
        return int(struct.unpack(">H", self._take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self._take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self._take(8))[0])

    def fixed(self, size: int) -> bytes:
        return self._take(size)

    def blob(self, max_size: int = MAX_FIELD) -> bytes:
        size = self.u32()
        if size > max_size:
            raise DecodeError("field too large")
        return self._take(size)

    def text(self, max_size: int = MAX_FIELD) -> str:
        raw = self.blob(max_size)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError("invalid UTF-8 text") from exc

    def at_end(self) -> bool:
        return self._pos == len(self._data)

    def end(self) -> None:
        """Require that every byte was consumed."""
        if not self.at_end():
            raise DecodeError("trailing bytes after message")

    def header(self, tag: int, max_version: int) -> int:
        """Read and check a message's type tag; return its version (1..max_version)."""
        got = self.u8()
        if got != tag:
            raise DecodeError(f"unexpected message type {got}, expected {tag}")
        version = self.u8()
        if not 1 <= version <= max_version:
            raise DecodeError(f"unsupported message version {version}")
        return version


def _pack(fmt: str, value: int) -> bytes:
    try:
        return struct.pack(fmt, value)
    except struct.error as exc:
        raise ValueError(f"integer {value} out of range for {fmt}") from exc


def b64encode(data: bytes) -> str:
    """URL-safe base64 without padding: how binary travels in headers, JSON and grants."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str | bytes) -> bytes:
    """Inverse of `b64encode`; raises `DecodeError` on anything that is not canonical base64url."""
    if isinstance(text, str):
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError as exc:
            raise DecodeError("base64 text must be ASCII") from exc
    else:
        raw = bytes(text)
    if len(raw) % 4 == 1:
        raise DecodeError("invalid base64 length")
    try:
        data = base64.b64decode(raw + b"=" * (-len(raw) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError("invalid base64") from exc
    if b64encode(data).encode("ascii") != raw:
        raise DecodeError("non-canonical base64")
    return data
