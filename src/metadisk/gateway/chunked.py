"""Reading S3 request bodies, sans I/O: aws-chunked decoding and payload checksums.

`ChunkedDecoder` turns a ``Content-Encoding: aws-chunked`` body into its payload as bytes arrive,
in any split: it verifies the chain of chunk signatures, the trailing checksums named by
``x-amz-trailer`` and, for the signed-trailer form, the trailer's signature. `PayloadChecks`
checks any body against the SHA-256 of ``x-amz-content-sha256`` and ``x-amz-checksum-*`` headers.

Payload pieces are handed out before the chunk they belong to is verified (a chunk may be
megabytes): nothing is authentic until `finish` returns, so the server keeps the object
uncommitted until then and drops it on any error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Protocol

import google_crc32c

from metadisk.gateway.sigv4 import (
    EMPTY_SHA256,
    AuthError,
    Payload,
    Verified,
    sign,
    signatures_match,
)

MAX_LINE = 4096  # a chunk header or one trailer line
MAX_TRAILER = 4096  # the whole trailer section
MAX_CHUNK = 16 * 1024 * 1024  # boto3 sends 1 MiB chunks, the AWS documentation 64 KiB

_CHECKSUM_PREFIX = "x-amz-checksum-"
# Headers of that prefix that name a choice rather than carry a digest.
_CHECKSUM_SETTINGS = frozenset(
    {"x-amz-checksum-algorithm", "x-amz-checksum-type", "x-amz-checksum-mode"}
)
_TRAILER_SIGNATURE = "x-amz-trailer-signature"
_SIGNED_HEADER = re.compile(rb"([0-9a-fA-F]{1,8});chunk-signature=([0-9a-fA-F]{64})")
_UNSIGNED_HEADER = re.compile(rb"([0-9a-fA-F]{1,8})")


class PayloadError(AuthError):
    """The body does not match what the request promised."""


class _Hash(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc32:
    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes | memoryview, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


class _Crc32c:
    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes | memoryview, /) -> None:
        self._value = google_crc32c.extend(self._value, bytes(data))

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


_ALGORITHMS: dict[str, tuple[str, type[_Hash] | None, int]] = {
    # suffix: (name in messages, constructor, digest size)
    "crc32": ("CRC32", _Crc32, 4),
    "crc32c": ("CRC32C", _Crc32c, 4),
    "sha1": ("SHA1", None, 20),
    "sha256": ("SHA256", None, 32),
    "sha512": ("SHA512", None, 64),
}


def supported_checksums() -> tuple[str, ...]:
    """The ``x-amz-checksum-*`` header names this gateway can verify."""
    return tuple(_CHECKSUM_PREFIX + suffix for suffix in _ALGORITHMS)


class _Checksum:
    """One ``x-amz-checksum-<algorithm>`` computed over the payload."""

    def __init__(self, header: str) -> None:
        suffix = header.removeprefix(_CHECKSUM_PREFIX)
        if not header.startswith(_CHECKSUM_PREFIX) or suffix not in _ALGORITHMS:
            raise PayloadError(
                "InvalidRequest",
                f"{header} is not supported; use one of {', '.join(supported_checksums())}",
            )
        self.header = header
        self.label, make, self._size = _ALGORITHMS[suffix]
        self._hash: _Hash = make() if make is not None else hashlib.new(suffix)

    def update(self, data: bytes | memoryview) -> None:
        self._hash.update(data)

    def check(self, expected_b64: str) -> None:
        expected = _b64(expected_b64.strip(), self._size)
        if expected is None:
            raise PayloadError("InvalidRequest", f"Value for {self.header} is invalid.")
        if self._hash.digest() != expected:
            raise PayloadError(
                "BadDigest",
                f"The {self.label} you specified did not match the calculated checksum.",
            )


def _b64(text: str, size: int) -> bytes | None:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == size else None


class PayloadChecks:
    """Checks a body as it streams: the SHA-256 of ``x-amz-content-sha256`` when it is a digest
    and every ``x-amz-checksum-*`` header. For aws-chunked bodies, feed the decoded payload.

    Raises `PayloadError` at construction for an unsupported checksum algorithm.
    """

    def __init__(self, verified: Verified, headers: Mapping[str, str]) -> None:
        self._sha256 = hashlib.sha256() if verified.payload is Payload.SHA256 else None
        self._expected_sha256 = verified.content_sha256
        self._checks = [
            (_Checksum(name), value)
            for name, value in sorted(headers.items())
            if name.startswith(_CHECKSUM_PREFIX) and name not in _CHECKSUM_SETTINGS
        ]
        for checksum, value in self._checks:
            if _b64(value.strip(), checksum._size) is None:
                raise PayloadError("InvalidRequest", f"Value for {checksum.header} is invalid.")

    def update(self, data: bytes | memoryview) -> None:
        """Account for the next piece of the body."""
        if self._sha256 is not None:
            self._sha256.update(data)
        for checksum, _ in self._checks:
            checksum.update(data)

    def finish(self) -> None:
        """Raise `PayloadError` if the body read does not match."""
        if self._sha256 is not None and self._sha256.hexdigest() != self._expected_sha256:
            raise PayloadError(
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
        for checksum, value in self._checks:
            checksum.check(value)


# Decoder states
_HEADER, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class ChunkedDecoder:
    """Incremental decoder of one aws-chunked body of a request `verify` accepted.

    `feed` returns the payload pieces found in the bytes given (views into them: consume them
    before feeding more); `finish` says the body has ended and returns the trailing headers.
    Both raise `PayloadError`: ``SignatureDoesNotMatch`` for a chunk or trailer signature,
    ``BadDigest`` for a trailing checksum, ``IncompleteBody`` for a body cut short or of the
    wrong decoded length, ``InvalidRequest`` for a malformed or oversized encoding.
    """

    def __init__(
        self,
        verified: Verified,
        *,
        trailer_names: Sequence[str] | None = None,
        decoded_length: int | None = None,
        max_chunk: int = MAX_CHUNK,
    ) -> None:
        if not verified.payload.streaming:
            raise ValueError(f"{verified.payload} is not an aws-chunked payload")
        self._payload = verified.payload
        self._signing = verified.signing
        self._previous = verified.signing.seed_signature
        self._max_chunk = max_chunk
        names = verified.trailer_names if trailer_names is None else trailer_names
        self._trailer_names = tuple(name.lower() for name in names)
        if not self._payload.trailer and self._trailer_names:
            raise PayloadError("InvalidRequest", f"{self._payload.value} carries no trailer")
        self._checksums = {name: _Checksum(name) for name in self._trailer_names}
        self._expected_length = (
            verified.decoded_length if decoded_length is None else decoded_length
        )
        self._state = _HEADER
        self._final = False
        self._line = bytearray()
        self._remaining = 0
        self._chunk_signature = ""
        self._chunk_hash = hashlib.sha256()
        self._decoded = 0
        self._trailer_bytes = 0
        self._trailer_lines = 0
        self._trailers: dict[str, str] = {}
        self._trailer_signature: str | None = None

    @property
    def decoded(self) -> int:
        """Payload bytes handed out so far."""
        return self._decoded

    def feed(self, data: bytes | bytearray | memoryview) -> list[memoryview]:
        """Decode the next bytes of the body; return the payload pieces they hold."""
        buf = data if isinstance(data, bytes) else bytes(data)
        view = memoryview(buf)
        pieces: list[memoryview] = []
        at = 0
        while at < len(view):
            if self._state == _DATA:
                take = min(self._remaining, len(view) - at)
                piece = view[at : at + take]
                at += take
                self._remaining -= take
                self._take(piece)
                pieces.append(piece)
                if self._remaining == 0:
                    self._state = _DATA_END
            elif self._state == _DONE:
                raise PayloadError("InvalidRequest", "Data follows the end of the aws-chunked body")
            else:
                at = self._read_line(buf, at)
        return pieces

    def finish(self) -> dict[str, str]:
        """Say the body ended; return the trailing headers (lower-case names).

        A trailer section missing only its closing empty line is accepted: some clients stop
        after the last trailer.
        """
        if self._state == _TRAILER and not self._line and self._trailers_complete():
            self._end_trailers()
        if self._state != _DONE:
            raise PayloadError(
                "IncompleteBody", "The aws-chunked body ended before its final chunk and trailer"
            )
        return dict(self._trailers)

    def _take(self, piece: memoryview) -> None:
        self._decoded += len(piece)
        if self._expected_length is not None and self._decoded > self._expected_length:
            raise PayloadError(
                "InvalidRequest", "The body holds more than x-amz-decoded-content-length"
            )
        if self._payload.signed_chunks:
            self._chunk_hash.update(piece)
        for checksum in self._checksums.values():
            checksum.update(piece)

    def _read_line(self, buf: bytes, at: int) -> int:
        """Collect bytes up to a line feed; act on the complete line. Return the new offset."""
        end = buf.find(b"\n", at)
        stop = len(buf) if end < 0 else end + 1
        limit = MAX_LINE + 2 - len(self._line)
        if stop - at > limit:
            raise PayloadError(
                "InvalidRequest", "An aws-chunked header or trailer line is too long"
            )
        self._line += buf[at:stop]
        if end >= 0:
            line = bytes(self._line)
            self._line.clear()
            self._on_line(line)
        return stop

    def _on_line(self, raw: bytes) -> None:
        if self._state == _TRAILER:
            self._on_trailer_line(raw)
            return
        if not raw.endswith(b"\r\n"):
            raise PayloadError("InvalidRequest", "aws-chunked lines end with CRLF")
        line = raw[:-2]
        if self._state == _DATA_END:
            if line:
                raise PayloadError("InvalidRequest", "A chunk is longer than its declared size")
            if self._final:
                self._state = _DONE
            else:
                self._verify_chunk()
                self._state = _HEADER
        else:
            self._on_chunk_header(line)

    def _on_chunk_header(self, line: bytes) -> None:
        pattern = _SIGNED_HEADER if self._payload.signed_chunks else _UNSIGNED_HEADER
        match = pattern.fullmatch(line)
        if match is None:
            raise PayloadError(
                "InvalidRequest", f"Malformed aws-chunked chunk header {line[:80]!r}"
            )
        size = int(match.group(1), 16)
        if size > self._max_chunk:
            raise PayloadError(
                "InvalidRequest", f"A chunk of {size} bytes exceeds the limit of {self._max_chunk}"
            )
        if self._payload.signed_chunks:
            self._chunk_signature = match.group(2).decode()
            self._chunk_hash = hashlib.sha256()
        self._remaining = size
        if size:
            self._state = _DATA
        else:
            self._end_final_chunk()

    def _verify_chunk(self) -> None:
        if not self._payload.signed_chunks:
            return
        signing = self._signing
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                signing.amz_date,
                signing.scope,
                self._previous,
                EMPTY_SHA256,
                self._chunk_hash.hexdigest(),
            ]
        )
        expected = sign(signing.key, to_sign)
        if not signatures_match(expected, self._chunk_signature):
            raise PayloadError(
                "SignatureDoesNotMatch",
                "The chunk signature we calculated does not match the signature you provided.",
                {"StringToSign": to_sign},
            )
        self._previous = expected

    def _end_final_chunk(self) -> None:
        self._verify_chunk()
        if self._expected_length is not None and self._decoded != self._expected_length:
            raise PayloadError(
                "IncompleteBody",
                "The body does not hold the number of bytes in x-amz-decoded-content-length",
            )
        self._final = True
        # Without a trailer, the final chunk's empty data line closes the body.
        self._state = _TRAILER if self._payload.trailer else _DATA_END

    def _on_trailer_line(self, raw: bytes) -> None:
        self._trailer_bytes += len(raw)
        self._trailer_lines += 1
        if self._trailer_bytes > MAX_TRAILER:
            raise PayloadError("InvalidRequest", "The aws-chunked trailer is too long")
        line = raw.removesuffix(b"\n").removesuffix(b"\r")
        if not line:
            # The final chunk's own empty data line precedes the trailers in some encoders
            # (the AWS documentation's example) and not in others (botocore's).
            if self._trailer_lines == 1 and not self._trailers_complete():
                return
            self._end_trailers()
            return
        if self._trailer_signature is not None:
            raise PayloadError("InvalidRequest", "A trailer follows x-amz-trailer-signature")
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            raise PayloadError("InvalidRequest", "A trailer is not ASCII") from None
        name, colon, value = text.partition(":")
        name, value = name.strip().lower(), value.strip()
        if not colon or not name:
            raise PayloadError("InvalidRequest", f"Malformed trailer line {text[:80]!r}")
        if name == _TRAILER_SIGNATURE and self._payload is Payload.STREAMING_SIGNED_TRAILER:
            self._trailer_signature = value
        elif name not in self._trailer_names or name in self._trailers:
            raise PayloadError(
                "InvalidRequest", f"Trailer {name} was not announced in x-amz-trailer"
            )
        else:
            self._trailers[name] = value

    def _trailers_complete(self) -> bool:
        signed = self._payload is Payload.STREAMING_SIGNED_TRAILER
        return len(self._trailers) == len(self._trailer_names) and (
            not signed or self._trailer_signature is not None
        )

    def _end_trailers(self) -> None:
        missing = [name for name in self._trailer_names if name not in self._trailers]
        if missing:
            raise PayloadError("IncompleteBody", f"Trailer {', '.join(missing)} never came")
        if self._payload is Payload.STREAMING_SIGNED_TRAILER:
            self._verify_trailer_signature()
        for name, checksum in self._checksums.items():
            checksum.check(self._trailers[name])
        self._state = _DONE

    def _verify_trailer_signature(self) -> None:
        if self._trailer_signature is None:
            raise PayloadError("IncompleteBody", "The trailer has no x-amz-trailer-signature")
        canonical = "".join(f"{name}:{self._trailers[name]}\n" for name in sorted(self._trailers))
        signing = self._signing
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-TRAILER",
                signing.amz_date,
                signing.scope,
                self._previous,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        expected = sign(signing.key, to_sign)
        if not signatures_match(expected, self._trailer_signature):
            raise PayloadError(
                "SignatureDoesNotMatch",
                "The trailer signature we calculated does not match the signature you provided.",
                {"StringToSign": to_sign},
            )
