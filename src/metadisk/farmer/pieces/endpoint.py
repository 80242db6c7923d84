"""The data plane's HTTP handlers: parse the request, call `PieceService`, stream the answer.

See docs/farmer.md for the protocol. Downloads go out with ``sendfile`` straight from the page
cache to the socket, so a GET costs the server almost no CPU; over TLS, which has no zero-copy
path, a MiB at a time.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator

from aiohttp import StreamReader, web
from pydantic import ValidationError

from metadisk.farmer.errors import BadRequest, Busy, NotFound
from metadisk.farmer.http import REQUEST_CLOCK, RequestClock
from metadisk.farmer.pieces.protocol import (
    parse_order_limit,
    parse_piece_hash,
    parse_piece_id,
    parse_range,
)
from metadisk.farmer.pieces.service import AUDIT_ACTIONS, PieceService
from metadisk.farmer.pieces.store import Download
from metadisk.wire.dataplane.contract import (
    ORDER_LIMIT_HEADER,
    PIECE,
    PIECE_AUDIT,
    PIECE_HASH_HEADER,
    PIECES,
    AuditAnswer,
    AuditRequest,
    PieceStored,
)

_READ_BUFFER = 1 << 20
_MAX_AUDIT_REQUEST = 4096


class PieceEndpoint:
    """``/v1/pieces/{piece_id}``: PUT, GET, DELETE and POST ``/audit``.

    At most `max_puts_per_address` PUTs run at once per remote address; more get 503 ``busy``
    at once, before anything is read or held (a client sends one piece per segment to a node,
    a few segments at a time).
    """

    def __init__(self, service: PieceService, *, max_puts_per_address: int = 64) -> None:
        self._service = service
        self._max_puts = max_puts_per_address
        self._puts: Counter[str | None] = Counter()  # PUTs in flight per remote address

    def routes(self) -> list[web.RouteDef]:
        return [
            web.put(PIECE, self.put),
            web.get(PIECE, self.get, allow_head=False),
            web.delete(PIECE, self.delete),
            web.post(PIECE_AUDIT, self.audit),
            # anything else under /v1/pieces/ is a bad id (e.g. "..%2F..%2Fetc", extra segments)
            web.route("*", PIECES + "{rest:.*}", self.bad_id),
        ]

    async def put(self, request: web.Request) -> web.Response:
        piece_id = parse_piece_id(request.match_info["piece_id"])
        limit = parse_order_limit(request.headers.get(ORDER_LIMIT_HEADER))
        piece_hash = parse_piece_hash(request.headers.get(PIECE_HASH_HEADER))
        remote = request.remote
        if self._puts[remote] >= self._max_puts:
            raise Busy(f"{self._max_puts} uploads from this address are under way already")
        self._puts[remote] += 1
        try:
            body = _body(request.content, request[REQUEST_CLOCK])
            receipt = await self._service.put(
                limit, piece_id, piece_hash, request.content_length, body
            )
        finally:
            if (left := self._puts[remote] - 1) > 0:
                self._puts[remote] = left
            else:
                del self._puts[remote]
        return _json(PieceStored(receipt=receipt), status=201)

    async def get(self, request: web.Request) -> web.StreamResponse:
        piece_id = parse_piece_id(request.match_info["piece_id"])
        limit = parse_order_limit(request.headers.get(ORDER_LIMIT_HEADER))
        byte_range = parse_range(request.headers.get("Range"))
        download = await self._service.get(limit, piece_id, byte_range)
        try:
            return await _send(request, download)
        finally:
            download.piece.close()

    async def audit(self, request: web.Request) -> web.Response:
        piece_id = parse_piece_id(request.match_info["piece_id"])
        limit = parse_order_limit(request.headers.get(ORDER_LIMIT_HEADER))
        self._service.authorize(limit, piece_id, AUDIT_ACTIONS)  # before reading any body
        raw = b""
        async for chunk in _body(request.content, request[REQUEST_CLOCK]):
            raw += chunk
            if len(raw) > _MAX_AUDIT_REQUEST:
                break
        try:
            if len(raw) > _MAX_AUDIT_REQUEST:
                raise ValueError("too long")
            leaf_index = AuditRequest.model_validate_json(raw).leaf_index
        except (ValueError, ValidationError) as exc:
            raise BadRequest(
                'expected JSON {"leaf_index": integer}', code="malformed-request"
            ) from exc
        leaf, response = await self._service.audit(limit, piece_id, leaf_index)
        return _json(AuditAnswer(leaf=leaf, response=response.encode()))

    async def delete(self, request: web.Request) -> web.Response:
        piece_id = parse_piece_id(request.match_info["piece_id"])
        limit = parse_order_limit(request.headers.get(ORDER_LIMIT_HEADER))
        await self._service.delete(limit, piece_id)
        return web.Response(status=204)

    async def bad_id(self, request: web.Request) -> web.Response:
        head, _, tail = request.match_info["rest"].partition("/")
        parse_piece_id(head)
        if tail in ("", "audit"):  # a good path with a method it does not take
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "PUT", "DELETE", "POST"])
        raise NotFound(f"no route {request.path}")


def _json(body: PieceStored | AuditAnswer, *, status: int = 200) -> web.Response:
    return web.Response(
        body=body.model_dump_json().encode(), status=status, content_type="application/json"
    )


async def _body(content: StreamReader, clock: RequestClock) -> AsyncIterator[bytes]:
    """The request body, chunk by chunk as the socket delivered it, cut by `clock` when the
    client goes silent.

    Not `iter_any`: that joins whatever is buffered into one new bytes object, a copy of most of
    the body. A larger read buffer (1-2 MiB instead of 64-128 KiB) pauses and resumes the socket
    far less often; the service writes ~1 MiB at a time anyway.
    """
    content.set_read_chunk_size(_READ_BUFFER)
    while True:
        chunk, _ = await clock.read(content)
        if chunk:
            yield chunk
        elif content.at_eof():
            return


async def _send(request: web.Request, download: Download) -> web.StreamResponse:
    response = web.StreamResponse(status=206 if download.partial else 200)
    response.content_type = "application/octet-stream"
    response.content_length = download.count
    response.headers["Accept-Ranges"] = "bytes"
    if download.partial:
        last = download.offset + download.count - 1
        response.headers["Content-Range"] = f"bytes {download.offset}-{last}/{download.size}"
    await response.prepare(request)
    if download.count:
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("connection lost")
        if transport.get_extra_info("sslcontext") is None:
            # zero-copy from the page cache; falls back to read/write where sendfile is missing
            await asyncio.get_running_loop().sendfile(
                transport, download.piece.file, download.offset, download.count
            )
        else:
            await _send_copied(response, download)
    await response.write_eof()
    return response


# TLS has no zero-copy path, and asyncio's own fallback for it reads 16 KiB at a time, each read
# a thread hop and each write a syscall: measured on one 16 MiB piece fetched over and over,
# 106 MiB/s at 8.9 CPU-s/GiB on the farmer (3.8 on the client), against 955 MiB/s at 1.0 (1.0).
TLS_CHUNK = 1 << 20


async def _send_copied(response: web.StreamResponse, download: Download) -> None:
    """Send the range through the transport (TLS encrypts it there), a MiB read at a time off
    the event loop."""
    fd = download.piece.file.fileno()
    offset, left = download.offset, download.count
    while left:
        chunk = await asyncio.to_thread(os.pread, fd, min(left, TLS_CHUNK), offset)
        if not chunk:
            raise ConnectionResetError("piece file ended early")  # cannot happen: size checked
        await response.write(chunk)
        offset += len(chunk)
        left -= len(chunk)
