"""Test helpers: a stand-in bridge that signs order limits, and small data-plane calls."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from metadisk.core.bloom import BloomFilter
from metadisk.core.encoding import b64decode, b64encode
from metadisk.core.identity import Identity, NodeId
from metadisk.core.merkle import digest_piece
from metadisk.core.messages import Action, OrderLimit, PieceReceipt, RetainRequest
from metadisk.farmer.config import FarmerConfig, TrustedBridge

# Nothing listens on the discard port: check-ins fail fast and quietly.
NOWHERE = "http://127.0.0.1:9"


@dataclass
class Bridge:
    """A bridge identity that issues order limits, as the real bridge would."""

    identity: Identity
    url: str = NOWHERE

    @classmethod
    def new(cls, url: str = NOWHERE) -> Bridge:
        return cls(Identity.generate(), url)

    @property
    def trusted(self) -> TrustedBridge:
        return TrustedBridge(self.identity.node_id, self.identity.public_key, self.url)

    def retain(
        self,
        node_id: NodeId | str,
        keep: list[bytes],
        *,
        created_before: float,
        issued_at: float | None = None,
        rate: float = 1e-6,
    ) -> RetainRequest:
        """A signed retain request keeping `keep`, with a new random seed like the bridge's."""
        if isinstance(node_id, str):
            node_id = NodeId.from_hex(node_id)
        bloom = BloomFilter.sized(len(keep), rate, seed=os.urandom(32))
        for piece in keep:
            bloom.add(piece)
        return RetainRequest(
            bridge_id=self.identity.node_id,
            node_id=node_id,
            created_before=int(created_before),
            issued_at=int(time.time() if issued_at is None else issued_at),
            filter=bloom.encode(),
        ).signed_by(self.identity)

    def limit(
        self,
        node_id: NodeId | str,
        piece_id: bytes,
        action: Action,
        *,
        limit: int = 1 << 30,
        now: float | None = None,
        ttl: int = 3600,
        piece_expires_at: int = 0,
        serial: bytes | None = None,
    ) -> OrderLimit:
        now = int(time.time() if now is None else now)
        if isinstance(node_id, str):
            node_id = NodeId.from_hex(node_id)
        return OrderLimit(
            serial=serial or os.urandom(16),
            bridge_id=self.identity.node_id,
            node_id=node_id,
            piece_id=piece_id,
            action=action,
            limit=limit,
            issued_at=now,
            expires_at=now + ttl,
            piece_expires_at=piece_expires_at,
        ).signed_by(self.identity)


def piece_id() -> bytes:
    return os.urandom(32)


def order_header(limit: OrderLimit) -> dict[str, str]:
    return {"X-Metadisk-Order-Limit": b64encode(limit.encode())}


def put_headers(limit: OrderLimit, data: bytes) -> dict[str, str]:
    return {
        **order_header(limit),
        "X-Metadisk-Piece-Hash": b64encode(digest_piece(data).piece_hash),
    }


async def error_code(response: aiohttp.ClientResponse) -> str:
    body: Any = await response.json()
    return str(body["error"]["code"])


async def put(
    session: aiohttp.ClientSession,
    url: str,
    bridge: Bridge,
    node_id: str,
    data: bytes,
    pid: bytes | None = None,
    **limit_args: Any,
) -> tuple[bytes, PieceReceipt]:
    """Upload `data`; returns the piece id and the checked receipt."""
    pid = pid or piece_id()
    limit = bridge.limit(node_id, pid, Action.PUT, **limit_args)
    async with session.put(
        f"{url}/v1/pieces/{pid.hex()}", data=data, headers=put_headers(limit, data)
    ) as response:
        assert response.status == 201, await response.text()
        body = await response.json()
    receipt = PieceReceipt.decode(b64decode(body["receipt"]))
    return pid, receipt


async def get(
    session: aiohttp.ClientSession,
    url: str,
    bridge: Bridge,
    node_id: str,
    pid: bytes,
    headers: dict[str, str] | None = None,
    **limit_args: Any,
) -> tuple[int, bytes, aiohttp.ClientResponse]:
    limit = bridge.limit(node_id, pid, Action.GET, **limit_args)
    async with session.get(
        f"{url}/v1/pieces/{pid.hex()}", headers={**order_header(limit), **(headers or {})}
    ) as response:
        return response.status, await response.read(), response


START = 1_800_000_000.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def make_config(
    tmp_path: Path, bridge: TrustedBridge, *, allocated: int = 64 << 20, **settings: object
) -> FarmerConfig:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return FarmerConfig(
        data_dir=data_dir,
        allocated=allocated,
        bridges=(bridge,),
        checkin_interval=3600,
        tls=False,
        trash_grace=3600,
        **settings,  # type: ignore[arg-type]
    )
