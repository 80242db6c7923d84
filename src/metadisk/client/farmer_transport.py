"""How the client talks to farmers: the `FarmerTransport` seam and its implementation over the
data plane's one client (`metadisk.wire.dataplane.PieceClient`).

The transfer pipelines only ever call a `FarmerTransport`, so unit tests plug in an in-memory
transport, and integration tests use `HttpFarmerTransport` against real farmer processes. Every
failure becomes a `PieceError` whose code is the farmer's code, or one of ``connection-failed``,
``unresolvable``, ``timeout``, ``bad-response`` when the farmer did not answer properly.
"""

from __future__ import annotations

import logging
from typing import Protocol

from metadisk.client.errors import PieceError
from metadisk.core.messages import OrderLimit, PieceReceipt
from metadisk.runtime.logs import event
from metadisk.wire.dataplane import PieceClient, PieceClientConfig, PieceTransferError

# Pieces that failed at one farmer while the transfer went on elsewhere (`routed_around`).
log = logging.getLogger("metadisk.client.transfers")

TransportConfig = PieceClientConfig


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


class HttpFarmerTransport:
    """`FarmerTransport` over one `PieceClient` (one pooled session, keep-alive across segments).

    Example::

        transport = HttpFarmerTransport()
        receipt = await transport.put_piece(address, limit, piece_hash, memoryview(piece))
        await transport.aclose()
    """

    def __init__(self, config: TransportConfig | None = None) -> None:
        self._pieces = PieceClient(config)

    async def put_piece(
        self, address: str, limit: OrderLimit, piece_hash: bytes, data: memoryview
    ) -> PieceReceipt:
        try:
            return await self._pieces.put(address, limit, piece_hash, data)
        except PieceTransferError as exc:
            raise _piece_error(exc) from exc

    async def get_piece(
        self,
        address: str,
        limit: OrderLimit,
        into: memoryview,
        *,
        offset: int = 0,
        ranged: bool = False,
    ) -> None:
        try:
            await self._pieces.get(address, limit, into, offset=offset, ranged=ranged)
        except PieceTransferError as exc:
            raise _piece_error(exc) from exc

    async def aclose(self) -> None:
        await self._pieces.aclose()


def routed_around(
    transfer: str, number: int, limit: OrderLimit, address: str, exc: PieceError
) -> None:
    """Log a piece that failed at one farmer (the transfer goes on without it), with its code.

    A piece that does not match its hash is a warning: the farmer's copy is corrupt or forged.
    Anything else (a farmer down, slow or full) is routine on a network of strangers' disks.
    """
    level = logging.WARNING if exc.code in ("bad-piece", "bad-receipt") else logging.INFO
    event(
        log,
        level,
        "routed around a farmer",
        transfer=transfer,
        piece=number,
        node=limit.node_id.hex()[:16],
        address=address,
        code=exc.code,
    )


def _piece_error(exc: PieceTransferError) -> PieceError:
    return PieceError(exc.message, code=exc.code, status=exc.status or 0)
