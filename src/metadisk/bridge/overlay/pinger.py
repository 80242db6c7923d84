"""Asking a farmer who it is: ``GET {address}/v1/node`` through the data plane's `PieceClient`.

A failed ping-back is reported as one code of `PING_FAILURES`, never as the exception's text: the
code is public (the node status route), and text such as "Connection refused" or the HTTP status
a host answered would turn the bridge into a port scanner whose results anyone can read. The
detail goes only to the bridge's own log.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from metadisk.core.identity import NodeId
from metadisk.wire.api.nodes import PingFailure
from metadisk.wire.dataplane import PieceClient, PieceTransferError


class Pinger(Protocol):
    async def __call__(self, address: str, wait: float, node_id: NodeId) -> str:
        """The node id (hex) the farmer at `address` reports; `PingFailed` if it cannot.

        A TLS farmer must also prove, in its handshake, that it holds `node_id`'s key.
        """
        ...


class PingFailed(Exception):
    """A ping-back that did not get a node id: `code` may be shown to anyone, `detail` may not."""

    def __init__(self, code: PingFailure, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code: PingFailure = code
        self.detail = detail


class HTTPPinger:
    """Pings over the bridge's `PieceClient` (one pooled session for every farmer call)."""

    def __init__(self, pieces: PieceClient) -> None:
        self._pieces = pieces

    async def __call__(self, address: str, wait: float, node_id: NodeId) -> str:
        try:
            async with asyncio.timeout(wait):
                card = await self._pieces.node_info(address, node_id)
        except TimeoutError as exc:
            raise PingFailed("timeout", "no answer in time") from exc
        except PieceTransferError as exc:
            raise PingFailed(failure_code(exc), f"{exc.code}: {exc}") from exc
        return card.node_id.hex()


def failure_code(exc: PieceTransferError) -> PingFailure:
    """The public code for a call to a farmer that failed (see the module docstring)."""
    if exc.status is not None:
        return "http-error"  # answered with a status other than 200
    if exc.code == "timeout":
        return "timeout"
    if exc.code == "unresolvable":
        return "unresolvable"  # the name stopped resolving between the check-in and the ping
    if exc.code == "bad-response":
        return "bad-answer"  # something answered, but not the node's JSON
    if exc.code == "wrong-node-identity":
        return "wrong-node"  # a TLS peer holding another key
    return "unreachable"
