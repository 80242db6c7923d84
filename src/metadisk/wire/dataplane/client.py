"""`PieceClient`: the one client of the farmer data plane, over one pooled aiohttp session.

Every failure is a `PieceTransferError` whose ``code`` is the farmer's own error code when it
answered with the error envelope, else one of:

- ``connection-failed``: no connection (refused, reset, no route, closed mid-answer);
- ``unresolvable``: the address's host name does not resolve;
- ``timeout``: no connection within ``connect_timeout``, no answer within
  ``first_byte_timeout`` of asking (GET, AUDIT, DELETE, the node card), or, for a PUT or a
  retain request, no answer within ``answer_timeout`` of the body's last byte;
- ``stalled``: a transfer under way that moved no byte for ``stall_timeout``: a PUT whose
  farmer stopped reading the piece (the socket's buffers full, nothing written into them), or
  an answer that stopped arriving;
- ``bad-response``: an answer that is not what the contract says (``status`` set if it was an
  HTTP status other than the expected one);
- ``wrong-node-identity``: a TLS farmer whose certificate is not the key of the node id the
  order limit (or the caller) names: someone else answers at that address
  (`metadisk.wire.dataplane.tls`).

Why a watchdog of our own: aiohttp's read timer starts only once the whole body is written, so
a farmer that stops reading (hung, not dead: the kernel still accepts the connection) held a
PUT for as long as the caller waited. A PUT's body is written in chunks, each pushing the
deadline back; a hung farmer costs ``stall_timeout`` (or ``answer_timeout`` when the piece fit
in the socket buffers), never more.

Redirects are never followed: a farmer has no business sending anyone elsewhere. Bound a call
in time with ``asyncio.timeout`` as well if you need to; the config's timeouts bound silence.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from aiohttp.abc import AbstractStreamWriter
from pydantic import BaseModel, ValidationError

from metadisk.core.encoding import b64encode
from metadisk.core.errors import DecodeError
from metadisk.core.identity import NodeId
from metadisk.core.messages import AuditResponse, OrderLimit, PieceReceipt, RetainRequest
from metadisk.wire.bodies import BodyTooLarge, read_capped
from metadisk.wire.dataplane.config import PieceClientConfig
from metadisk.wire.dataplane.contract import (
    NODE_INFO,
    ORDER_LIMIT_HEADER,
    PIECE,
    PIECE_AUDIT,
    PIECE_HASH_HEADER,
    RETAIN,
    AuditAnswer,
    AuditRequest,
    NodeInfo,
    PieceStored,
    RetainAccepted,
)
from metadisk.wire.dataplane.tls import WrongNodeIdentity, transport_security
from metadisk.wire.errors import MAX_ERROR_BODY, describe_invalid, parse_error

M = TypeVar("M", bound=BaseModel)

MAX_SMALL_ANSWER = 256 * 1024  # receipts, audit answers and node cards are far smaller
# A PUT body goes out in chunks of this size, each one progress for the stall watchdog: small
# enough to notice a farmer that stops reading, large enough to cost nothing per chunk.
WRITE_CHUNK = 256 * 1024


class PieceTransferError(Exception):
    """One request to one farmer failed; `code` says how (see the module docstring)."""

    def __init__(self, message: str, *, code: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status

    @property
    def message(self) -> str:
        return str(self)


@dataclass(frozen=True, slots=True)
class Audited:
    """A farmer's answer to an audit: the leaf, and its signed hash and proof (not yet checked:
    `metadisk.core.audit.judge` decides)."""

    leaf: bytes
    response: AuditResponse


class PieceClient:
    """PUT, GET, AUDIT and DELETE pieces, ask a farmer who it is, send it a retain request.

    Example::

        pieces = PieceClient()
        receipt = await pieces.put(address, limit, piece_hash, memoryview(piece))
        await pieces.aclose()
    """

    def __init__(self, config: PieceClientConfig | None = None, *, user_agent: str = "") -> None:
        self._config = config or PieceClientConfig()
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    @property
    def config(self) -> PieceClientConfig:
        return self._config

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, so it binds to the loop that uses it, not to the constructor's.
        if self._session is None:
            config = self._config
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=config.max_connections, limit_per_host=0),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=config.connect_timeout, sock_read=config.read_timeout
                ),
                auto_decompress=False,
                headers={"User-Agent": self._user_agent} if self._user_agent else None,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def put(
        self, address: str, limit: OrderLimit, piece_hash: bytes, data: bytes | memoryview
    ) -> PieceReceipt:
        """Store `data` under `limit`; the farmer's receipt (not yet verified: the caller knows
        the key it must verify under)."""
        headers = {
            ORDER_LIMIT_HEADER: b64encode(limit.encode()),
            PIECE_HASH_HEADER: b64encode(piece_hash),
        }
        url = _piece_url(address, limit.piece_id)
        watch = _Watch(self._config)
        try:
            async with watch.deadline:
                watch.start(sending=True)
                body = _WatchedBody(memoryview(data).cast("B"), watch)
                async with self._client().put(
                    url,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    ssl=transport_security(address, limit.node_id),
                ) as response:
                    watch.answered()
                    if response.status != 201:
                        raise await _error(response)
                    raw = await _small(response)
        except aiohttp.ClientError as exc:
            raise _connection_error(exc) from exc
        except TimeoutError as exc:
            raise watch.error() from exc
        return _parse(PieceStored, raw, "receipt").receipt

    async def get(
        self,
        address: str,
        limit: OrderLimit,
        into: memoryview,
        *,
        offset: int = 0,
        ranged: bool = False,
    ) -> None:
        """Fill `into` with the piece's bytes [offset, offset + len(into)).

        `ranged` asks for just those bytes (HTTP Range); otherwise the whole piece is fetched
        and `into` is filled from its start (a prefix when `into` is shorter).
        """
        length = len(into)
        headers = {ORDER_LIMIT_HEADER: b64encode(limit.encode())}
        if ranged:
            headers["Range"] = f"bytes={offset}-{offset + length - 1}"
        url = _piece_url(address, limit.piece_id)
        watch = _Watch(self._config)
        try:
            async with watch.deadline:
                watch.start(sending=False)
                async with self._client().get(
                    url,
                    headers=headers,
                    allow_redirects=False,
                    ssl=transport_security(address, limit.node_id),
                ) as response:
                    watch.answered()
                    if response.status not in (200, 206):
                        raise await _error(response)
                    if response.status == 200 and offset:
                        # A farmer that ignores Range sends the whole piece: skip to the offset.
                        await _skip(response.content, offset, watch)
                    await _read_exactly(response.content, into, watch)
        except aiohttp.ClientError as exc:
            raise _connection_error(exc) from exc
        except TimeoutError as exc:
            raise watch.error() from exc

    async def audit(self, address: str, limit: OrderLimit, leaf_index: int) -> Audited:
        """Ask for leaf `leaf_index` of the piece and the farmer's signed proof of it (judge it
        with `metadisk.core.audit.judge` against the root the farmer signed on upload)."""
        headers = {ORDER_LIMIT_HEADER: b64encode(limit.encode())}
        body = AuditRequest(leaf_index=leaf_index).model_dump_json().encode()
        headers["Content-Type"] = "application/json"
        url = _piece_url(address, limit.piece_id, PIECE_AUDIT)
        raw = await self._small_call("POST", url, headers, body, 200, limit.node_id)
        answer = _parse(AuditAnswer, raw, "audit answer")
        try:
            return Audited(answer.leaf, AuditResponse.decode(answer.response))
        except DecodeError as exc:
            problem = f"malformed audit response: {exc}"
            raise PieceTransferError(problem, code="bad-response") from exc

    async def delete(self, address: str, limit: OrderLimit) -> bool:
        """Delete the piece; False if the farmer does not have it (never had, or deleted)."""
        headers = {ORDER_LIMIT_HEADER: b64encode(limit.encode())}
        url = _piece_url(address, limit.piece_id)
        try:
            await self._small_call("DELETE", url, headers, None, 204, limit.node_id)
        except PieceTransferError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def node_info(self, address: str, node_id: NodeId | None = None) -> NodeInfo:
        """Who the farmer at `address` says it is (``GET /v1/node``).

        A TLS farmer must prove it is `node_id`; a plain HTTP one only says so in its card.
        """
        url = address.rstrip("/") + NODE_INFO
        raw = await self._small_call("GET", url, {}, None, 200, node_id)
        return _parse(NodeInfo, raw, "node card")

    async def retain(self, address: str, request: RetainRequest) -> None:
        """Send a signed retain request (``POST /v1/retain``); returns once the farmer took it
        (202): it collects in the background. The body may be tens of MiB: it goes out in chunks,
        each pushing the stall deadline back, like a PUT's."""
        url = address.rstrip("/") + RETAIN
        watch = _Watch(self._config)
        try:
            async with watch.deadline:
                watch.start(sending=True)
                body = _WatchedBody(memoryview(request.encode()), watch)
                async with self._client().post(
                    url,
                    data=body,
                    allow_redirects=False,
                    ssl=transport_security(address, request.node_id),
                ) as response:
                    watch.answered()
                    if response.status != 202:
                        raise await _error(response)
                    raw = await _small(response)
        except aiohttp.ClientError as exc:
            raise _connection_error(exc) from exc
        except TimeoutError as exc:
            raise watch.error() from exc
        _parse(RetainAccepted, raw, "retain answer")

    async def _small_call(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        expected: int,
        node_id: NodeId | None,
    ) -> bytes:
        watch = _Watch(self._config)
        try:
            async with watch.deadline:
                watch.start(sending=False)
                async with self._client().request(
                    method,
                    url,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    ssl=transport_security(url, node_id),
                ) as response:
                    watch.answered()
                    if response.status != expected:
                        raise await _error(response)
                    return await _small(response)
        except aiohttp.ClientError as exc:
            raise _connection_error(exc) from exc
        except TimeoutError as exc:
            raise watch.error() from exc


class _Watch:
    """One request's deadline, pushed back each time bytes move (see the module docstring).

    Phases: ``waiting`` (connecting and, but for a PUT's body, the wait for the answer to
    begin), ``sending`` (a PUT's body), ``answer`` (a PUT's body is out: the farmer stores and
    fsyncs it), ``reading`` (the answer's body). Running out of time while waiting for an
    answer is ``timeout``; while bytes were flowing, ``stalled``.
    """

    __slots__ = ("_config", "_loop", "deadline", "phase")

    def __init__(self, config: PieceClientConfig) -> None:
        self._config = config
        self._loop = asyncio.get_running_loop()
        self.deadline = asyncio.timeout(None)
        self.phase = "waiting"

    def _push(self, seconds: float) -> None:
        self.deadline.reschedule(self._loop.time() + seconds)

    def start(self, *, sending: bool) -> None:
        config = self._config
        # A PUT's first chunk is written as soon as the connection is up; anything else waits
        # for its answer to begin.
        wait = config.stall_timeout if sending else config.first_byte_timeout
        self._push(config.connect_timeout + wait)

    def sent(self) -> None:
        """A chunk of a PUT's body went into the socket."""
        if self.phase != "reading":  # a farmer may refuse before it has read the whole body
            self.phase = "sending"
        self._push(self._config.stall_timeout)

    def body_done(self) -> None:
        if self.phase != "reading":
            self.phase = "answer"
            self._push(self._config.answer_timeout)

    def answered(self) -> None:
        """The answer's status line and headers arrived."""
        self.phase = "reading"
        self._push(self._config.stall_timeout)

    def read(self) -> None:
        self._push(self._config.stall_timeout)

    def error(self) -> PieceTransferError:
        config = self._config
        if self.phase in ("sending", "reading"):
            stalled = f"farmer stalled: no byte moved for {config.stall_timeout:g} s"
            return PieceTransferError(stalled, code="stalled")
        if self.phase == "answer":
            waited = config.answer_timeout
        else:
            waited = config.connect_timeout + config.first_byte_timeout
        return PieceTransferError(f"farmer did not answer within {waited:g} s", code="timeout")


class _WatchedBody(aiohttp.payload.Payload):
    """A PUT's (or retain request's) body written in chunks, each one reported to the
    request's `_Watch`.

    aiohttp drains the socket after each chunk, so a farmer that stops reading shows as no
    more chunks: the watch's deadline is no longer pushed back and the request ends stalled.
    """

    _value: memoryview

    def __init__(self, data: memoryview, watch: _Watch) -> None:
        super().__init__(data, content_type="application/octet-stream")
        self._size = len(data)
        self._watch = watch

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a piece is binary")

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        view = self._value if content_length is None else self._value[:content_length]
        for start in range(0, len(view), WRITE_CHUNK):
            await writer.write(view[start : start + WRITE_CHUNK])
            self._watch.sent()
        self._watch.body_done()


def _piece_url(address: str, piece_id: bytes, route: str = PIECE) -> str:
    return address.rstrip("/") + route.format(piece_id=piece_id.hex())


async def _small(response: aiohttp.ClientResponse) -> bytes:
    try:
        return await read_capped(response.content, MAX_SMALL_ANSWER)
    except BodyTooLarge as exc:
        raise PieceTransferError(str(exc), code="bad-response") from exc


def _parse(kind: type[M], raw: bytes, what: str) -> M:
    try:
        return kind.model_validate_json(raw)
    except ValidationError as exc:
        problem = describe_invalid(exc.errors(), most=1)
        raise PieceTransferError(f"malformed {what}: {problem}", code="bad-response") from exc


async def _read_exactly(stream: aiohttp.StreamReader, into: memoryview, watch: _Watch) -> None:
    pos, size = 0, len(into)
    while pos < size:
        chunk = await stream.readany()
        watch.read()
        if not chunk:
            raise PieceTransferError(
                f"piece ended after {pos} of {size} bytes", code="bad-response"
            )
        end = pos + len(chunk)
        if end > size:
            chunk = chunk[: size - pos]  # a whole piece when we asked for a prefix: keep ours
            end = size
        into[pos:end] = chunk
        pos = end


async def _skip(stream: aiohttp.StreamReader, count: int, watch: _Watch) -> None:
    while count > 0:
        chunk = await stream.read(min(count, 1 << 20))
        watch.read()
        if not chunk:
            raise PieceTransferError("piece ended before the requested range", code="bad-response")
        count -= len(chunk)


async def _error(response: aiohttp.ClientResponse) -> PieceTransferError:
    """The farmer's error envelope as a `PieceTransferError`, else ``bad-response``."""
    try:
        raw = await read_capped(response.content, MAX_ERROR_BODY)
    except (aiohttp.ClientError, asyncio.IncompleteReadError, BodyTooLarge):
        raw = b""
    detail = parse_error(raw)
    if detail is None:
        return PieceTransferError(
            f"farmer answered HTTP {response.status}", code="bad-response", status=response.status
        )
    return PieceTransferError(detail.message, code=detail.code, status=response.status)


def _connection_error(exc: aiohttp.ClientError) -> PieceTransferError:
    if isinstance(exc, WrongNodeIdentity):
        return PieceTransferError(f"refused: {exc}", code="wrong-node-identity")
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return PieceTransferError(f"farmer timed out: {exc}", code="timeout")
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, socket.gaierror):
        return PieceTransferError(f"cannot resolve farmer: {exc}", code="unresolvable")
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        return PieceTransferError(f"garbled answer: {exc}", code="bad-response")
    return PieceTransferError(f"cannot reach farmer: {exc}", code="connection-failed")
