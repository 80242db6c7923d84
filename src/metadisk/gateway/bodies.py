"""A request's payload as the S3 client meant it: decoded, checked and hashed on the way through.

`RequestBody` turns aiohttp's byte stream into the object's bytes: ``aws-chunked`` framing is
removed and each chunk's signature checked (`chunked.ChunkedDecoder`); a signed payload's
SHA-256 and any ``x-amz-checksum-*`` are compared at the end (`chunked.PayloadChecks`); the MD5
that becomes the ETag is taken as the bytes pass. Work is done a block (about a MiB) at a time,
in a thread (hashlib releases the GIL), so hashing runs beside the event loop and the encryption
pipeline. Reading stops when the consumer stops asking, which is the backpressure a slow
uploader's socket gets.

A payload that fails a check raises an `S3Error` at the end of the stream, before the upload is
committed, so what a client sent wrongly never becomes an object.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Mapping

from aiohttp import web

from metadisk.gateway.chunked import ChunkedDecoder, PayloadChecks
from metadisk.gateway.s3errors import S3Error
from metadisk.gateway.sigv4 import Verified

BLOCK = 1 << 20
INLINE_HASHING = 64 << 10
# S3's largest single PUT and largest part.
MAX_PUT = 5 << 30


class RequestBody:
    """The payload of one request; iterate `chunks()` once, then read `md5`."""

    def __init__(self, request: web.Request, verified: Verified, *, limit: int = MAX_PUT) -> None:
        self._request = request
        headers: Mapping[str, str] = {k.lower(): v for k, v in request.headers.items()}
        encodings = [e.strip() for e in headers.get("content-encoding", "").split(",")]
        self._chunked = "aws-chunked" in encodings or verified.payload.streaming
        self._decoder = ChunkedDecoder(verified) if self._chunked else None
        self._checks = PayloadChecks(verified, headers)
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = _declared_size(headers, self._chunked)
        if self.size is not None and self.size > limit:
            raise S3Error("EntityTooLarge", f"at most {limit} bytes in one request")
        self._limit = limit
        self.received = 0

    @property
    def md5(self) -> str:
        """The hex MD5 of the payload (complete once `chunks()` is exhausted)."""
        return self._md5.hexdigest()

    @property
    def md5_digest(self) -> bytes:
        return self._md5.digest()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The decoded payload, a block at a time, checked as a whole at its end."""
        stream = self._request.content
        pending = bytearray()
        while True:
            data = await stream.read(BLOCK)
            if data:
                if self._decoder is not None:
                    for piece in self._decoder.feed(data):
                        pending += piece
                else:
                    pending += data
            if len(pending) >= BLOCK or (not data and pending):
                block = bytes(pending)
                pending.clear()
                if len(block) < INLINE_HASHING:
                    self._digest(block)  # a thread hop costs more than hashing a small body
                else:
                    await asyncio.to_thread(self._digest, block)
                yield block
            if not data:
                break
        self._finish()

    def _digest(self, block: bytes) -> None:
        self.received += len(block)
        if self.received > self._limit:
            raise S3Error("EntityTooLarge", f"at most {self._limit} bytes in one request")
        self._md5.update(block)
        self._checks.update(block)

    def _finish(self) -> None:
        if self._decoder is not None:
            self._decoder.finish()
        self._checks.finish()
        if self.size is not None and self.received != self.size:
            raise S3Error("IncompleteBody", "the body is not as long as its declared length")
        md5 = self._request.headers.get("Content-MD5")
        if md5 is not None and _b64(self._md5.digest()) != md5.strip():
            raise S3Error("BadDigest", "the Content-MD5 you specified did not match")

    async def read_all(self, most: int) -> bytes:
        """The whole payload of a small request (an XML document), at most `most` bytes."""
        out = bytearray()
        async for block in self.chunks():
            out += block
            if len(out) > most:
                raise S3Error("MaxMessageLengthExceeded")
        return bytes(out)


def _declared_size(headers: Mapping[str, str], chunked: bool) -> int | None:
    raw = headers.get("x-amz-decoded-content-length") if chunked else None
    if raw is None and not chunked:
        raw = headers.get("content-length")
    if raw is None:
        return None
    try:
        size = int(raw)
    except ValueError:
        raise S3Error("InvalidArgument", "the content length is not a number") from None
    if size < 0:
        raise S3Error("InvalidArgument", "the content length is negative")
    return size


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()
