"""How the client talks to farmers: the `FarmerTransport` seam and its aiohttp implementation.

The transfer pipelines only ever call a `FarmerTransport`, so unit tests plug in an in-memory
transport, and integration tests use `HttpFarmerTransport` against real farmer processes. The wire
protocol is the farmer's data plane (``docs/farmer.md``)::

    PUT /v1/pieces/{piece_id_hex}    X-Metadisk-Order-Limit, X-Metadisk-Piece-Hash, Content-Length
                                     -> 201 {"receipt": b64url(PieceReceipt)}
    GET /v1/pieces/{piece_id_hex}    X-Metadisk-Order-Limit [, Range: bytes=a-b] -> 200 / 206 bytes
    errors                           -> {"error": {"code": ..., "message": ...}}

Every failure becomes a `PieceError` whose code is the farmer's code, or one of
``connection-failed``, ``timeout``, ``bad-response`` when the farmer did not answer properly.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from metadisk.client.errors import PieceError
from metadisk.core.encoding import b64decode, b64encode
from metadisk.core.errors import DecodeError
from metadisk.core.messages import OrderLimit, PieceReceipt

ORDER_LIMIT_HEADER = "X-Metadisk-Order-Limit"
PIECE_HASH_HEADER = "X-Metadisk-Piece-Hash"
_MAX_ERROR_BODY = 64 * 1024


class FarmerTransport(Protocol):
    """Moves one piece to or from one farmer; raises `PieceError` on any failure."""

    async def put_piece(
        self, address: str, limit: OrderLimit, piece_hash: bytes, data: memoryview
    ) -> PieceReceipt:
        """Store `data` under `limit`; return the farmer's receipt (not yet verified)."""
        ...

    async def get_piece(
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
        and `into` must be its size.
        """
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Timeouts (seconds) and connection limits of `HttpFarmerTransport`.

    There is no total timeout: a piece of any size may take long on a slow link, and the
    pipelines cancel stragglers themselves. `read_timeout` bounds a silent farmer instead.
    """

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_connections: int = 512  # above n of any profile: one segment opens n at once


class HttpFarmerTransport:
    """`FarmerTransport` over one pooled aiohttp session (keep-alive across segments).

    Example::

        transport = HttpFarmerTransport()
        receipt = await transport.put_piece(address, limit, piece_hash, memoryview(piece))
        await transport.aclose()
    """

    def __init__(self, config: TransportConfig | None = None) -> None:
        self._config = config or TransportConfig()
        self._session: aiohttp.ClientSession | None = None

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
            )
        return self._session

    async def put_piece(
        self, address: str, limit: OrderLimit, piece_hash: bytes, data: memoryview
    ) -> PieceReceipt:
        headers = {
            ORDER_LIMIT_HEADER: b64encode(limit.encode()),
            PIECE_HASH_HEADER: b64encode(piece_hash),
            "Content-Type": "application/octet-stream",
        }
        url = _piece_url(address, limit)
        try:
            async with self._client().put(url, data=data, headers=headers) as response:
                if response.status != 201:
                    raise await _error(response)
                body = await response.read()
        except aiohttp.ClientError as exc:
            raise _connection_error(exc) from exc
        except TimeoutError as exc:
            raise PieceError("farmer did not answer in time", code="timeout") from exc
        try:
            text = json.loads(body)["receipt"]
            if not isinstance(text, str):
                raise TypeError("receipt is not text")
            return PieceReceipt.decode(b64decode(text))
        except (ValueError, KeyError, TypeError, DecodeError) as exc:
            raise PieceError(f"malformed receipt: {exc}", code="bad-response") from exc

    async def get_piece(
        self,
        address: str,
        limit: OrderLimit,
        into: memoryview,
        *,
        offset: int = 0,
        ranged: bool = False,
    ) -> None:
        length = len(into)
        headers = {ORDER_LIMIT_HEADER: b64encode(limit.encode())}
        if ranged:
            headers["Range"] = f"bytes={offset}-{offset + length - 1}"
        try:
            async with self._client().get(_piece_url(address, limit), headers=headers) as response:
                if response.status not in (200, 206):
                    raise await _error(response)
                if response.status == 200 and offset:
                    # A farmer that ignores Range sends the whole piece: skip to the offset.
                    await _skip(response.content, offset)
                await _read_exactly(response.content, into)
        except aiohttp.ClientError as exc:
            raise _connection_error(exc) from exc
        except TimeoutError as exc:
            raise PieceError("farmer did not answer in time", code="timeout") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _piece_url(address: str, limit: OrderLimit) -> str:
    return f"{address.rstrip('/')}/v1/pieces/{limit.piece_id.hex()}"


async def _read_exactly(stream: aiohttp.StreamReader, into: memoryview) -> None:
    pos, size = 0, len(into)
    while pos < size:
        chunk = await stream.readany()
        if not chunk:
            raise PieceError(f"piece ended after {pos} of {size} bytes", code="bad-response")
        end = pos + len(chunk)
        if end > size:
            chunk = chunk[: size - pos]  # a whole piece when we asked for a prefix: keep ours
            end = size
        into[pos:end] = chunk
        pos = end


async def _skip(stream: aiohttp.StreamReader, count: int) -> None:
    while count > 0:
        chunk = await stream.read(min(count, 1 << 20))
        if not chunk:
            raise PieceError("piece ended before the requested range", code="bad-response")
        count -= len(chunk)


async def _error(response: aiohttp.ClientResponse) -> PieceError:
    """The farmer's JSON error as a `PieceError`, or ``bad-response`` if it sent something else."""
    try:
        raw = await response.content.read(_MAX_ERROR_BODY)
        error = json.loads(raw)["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError, aiohttp.ClientError, asyncio.IncompleteReadError):
        return PieceError(
            f"farmer answered HTTP {response.status}", code="bad-response", status=response.status
        )
    return PieceError(message, code=code, status=response.status)


def _connection_error(exc: aiohttp.ClientError) -> PieceError:
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return PieceError(f"farmer timed out: {exc}", code="timeout")
    return PieceError(f"cannot reach farmer: {exc}", code="connection-failed")
