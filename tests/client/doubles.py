"""Test doubles for the pipeline tests: the bridge's half of a transfer, and in-memory farmers.

`PipelineBridge` stands in for the bridge *only* in pipeline tests: it signs real order limits
with a real bridge identity (farmers check them), derives piece ids as the bridge does, records
committed segments and hands out GET order limits with the recorded piece hashes.

`MemoryFarmers` is a `FarmerTransport` for unit tests: it keeps pieces in a dict, runs core's
real order-limit checks and signs real receipts, and lets a test decide per request what a
farmer does (fail, hang, corrupt) through a handler.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field

from metadisk.client.download import PieceSource, SegmentInfo
from metadisk.client.errors import PieceError
from metadisk.client.farmer_transport import PieceTarget
from metadisk.client.upload import CommittedSegment
from metadisk.core.erasure import RedundancyScheme
from metadisk.core.identity import Identity, NodeId
from metadisk.core.merkle import digest_piece
from metadisk.core.messages import (
    Action,
    OrderLimit,
    OrderLimitRejected,
    PieceReceipt,
    check_order_limit,
    derive_piece_id,
)
from metadisk.wire.api.objects import PieceOutcome


@dataclass(frozen=True)
class Farmer:
    """What the bridge knows of a farmer."""

    node_id: NodeId
    address: str
    public_key: bytes


@dataclass
class PipelineBridge:
    """The bridge's half of uploads and downloads for one object, as a test double."""

    farmers: list[Farmer]
    scheme: RedundancyScheme
    identity: Identity = field(default_factory=Identity.generate)
    spares: int = 2
    committed: dict[int, CommittedSegment] = field(default_factory=dict)
    roots: dict[int, bytes] = field(default_factory=dict)
    placements: dict[int, dict[int, Farmer]] = field(default_factory=dict)
    replaced: list[tuple[int, list[int]]] = field(default_factory=list)
    downloads: list[tuple[int, list[int]]] = field(default_factory=list)  # (index, exclude)
    reports: list[tuple[int, tuple[PieceOutcome, ...]]] = field(default_factory=list)
    download_order: Callable[[list[PieceSource]], list[PieceSource]] | None = None

    def limit(self, farmer: Farmer, piece_id: bytes, action: Action, size: int) -> OrderLimit:
        now = int(time.time())
        return OrderLimit(
            serial=os.urandom(16),
            bridge_id=self.identity.node_id,
            node_id=farmer.node_id,
            piece_id=piece_id,
            action=action,
            limit=size,
            issued_at=now,
            expires_at=now + 3600,
        ).signed_by(self.identity)

    def _target(self, index: int, number: int, farmer: Farmer, size: int) -> PieceTarget:
        piece_id = derive_piece_id(self.roots[index], farmer.node_id, number)
        self.placements.setdefault(index, {})[number] = farmer
        return PieceTarget(
            number,
            self.limit(farmer, piece_id, Action.PUT, size),
            farmer.address,
            farmer.public_key,
        )

    async def begin_segment(self, index: int, ciphertext_size: int) -> Sequence[PieceTarget]:
        self.roots[index] = os.urandom(32)
        self.placements[index] = {}
        size = -(-ciphertext_size // self.scheme.k) + 64
        return [
            self._target(index, number, self.farmers[number], size)
            for number in range(self.scheme.n)
        ]

    async def replace_pieces(
        self, index: int, failed: Sequence[PieceTarget]
    ) -> Sequence[PieceTarget]:
        self.replaced.append((index, [t.number for t in failed]))
        used = {f.node_id for f in self.placements[index].values()}
        spare = [f for f in self.farmers if f.node_id not in used]
        return [
            self._target(index, target.number, farmer, target.limit.limit)
            for target, farmer in zip(failed, spare, strict=False)
        ]

    def report_segment(self, index: int, outcomes: Sequence[PieceOutcome]) -> None:
        self.reports.append((index, tuple(outcomes)))

    async def commit_segment(self, segment: CommittedSegment) -> None:
        for number, receipt in segment.receipts.items():
            farmer = self.placements[segment.index][number]
            receipt.verify_signature(farmer.public_key)  # as the bridge does
        self.committed[segment.index] = segment

    def segments(self) -> list[SegmentInfo]:
        return [
            SegmentInfo(s.index, s.plaintext_size, s.ciphertext_size, s.encrypted_key)
            for s in sorted(self.committed.values(), key=lambda s: s.index)
        ]

    async def download_segment(
        self, index: int, exclude: Collection[int] = ()
    ) -> Sequence[PieceSource]:
        self.downloads.append((index, sorted(exclude)))
        segment = self.committed[index]
        sources = []
        for number, receipt in sorted(segment.receipts.items()):
            if number in exclude:
                continue
            farmer = self.placements[index][number]
            limit = self.limit(farmer, receipt.piece_id, Action.GET, receipt.size)
            sources.append(PieceSource(number, limit, farmer.address, receipt.piece_hash))
        if self.download_order is not None:
            return self.download_order(sources)
        return sources[: self.scheme.k + self.spares]


@dataclass
class Request:
    """One request a `MemoryFarmers` transport received."""

    method: str
    address: str
    limit: OrderLimit
    offset: int = 0
    length: int = 0
    ranged: bool = False


Handler = Callable[[Request], Awaitable[None]]


class MemoryFarmers:
    """A `FarmerTransport` over in-memory farmers with real order-limit checks and receipts.

    `handler` runs first for every request and may raise `PieceError`, sleep or hang;
    `corrupt` flips a byte of a stored piece. `requests` records every request.
    """

    def __init__(self, count: int, bridge_identity: Identity) -> None:
        self.identities = [Identity.generate() for _ in range(count)]
        self.farmers = [
            Farmer(identity.node_id, f"mem://farmer-{i}", identity.public_key)
            for i, identity in enumerate(self.identities)
        ]
        self._by_address = {f.address: i for i, f in enumerate(self.farmers)}
        self._trusted = {bridge_identity.node_id: bridge_identity.public_key}
        self.pieces: dict[tuple[str, bytes], bytes] = {}
        self.requests: list[Request] = []
        self.handler: Handler | None = None
        self.cancelled = 0
        self.closed = False

    async def _run_handler(self, request: Request) -> None:
        self.requests.append(request)
        if self.handler is not None:
            try:
                await self.handler(request)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise

    def _check(self, address: str, limit: OrderLimit, actions: set[Action]) -> Identity:
        identity = self.identities[self._by_address[address]]
        try:
            check_order_limit(
                limit,
                trusted_bridges=self._trusted,
                node_id=identity.node_id,
                piece_id=limit.piece_id,
                actions=actions,
                now=int(time.time()),
            )
        except OrderLimitRejected as exc:
            raise PieceError(str(exc), code=exc.code, status=403) from exc
        return identity

    async def put_piece(
        self, address: str, limit: OrderLimit, piece_hash: bytes, data: memoryview
    ) -> PieceReceipt:
        await self._run_handler(Request("PUT", address, limit, 0, len(data)))
        identity = self._check(address, limit, {Action.PUT, Action.PUT_REPAIR})
        piece = bytes(data)
        digest = digest_piece(piece)
        if digest.piece_hash != piece_hash:
            raise PieceError("hash mismatch", code="hash-mismatch", status=400)
        self.pieces[(address, limit.piece_id)] = piece
        return PieceReceipt(
            limit.serial,
            identity.node_id,
            limit.piece_id,
            len(piece),
            digest.piece_hash,
            int(time.time()),
        ).signed_by(identity)

    async def get_piece(
        self,
        address: str,
        limit: OrderLimit,
        into: memoryview,
        *,
        offset: int = 0,
        ranged: bool = False,
    ) -> None:
        await self._run_handler(Request("GET", address, limit, offset, len(into), ranged))
        self._check(address, limit, {Action.GET, Action.GET_REPAIR})
        piece = self.pieces.get((address, limit.piece_id))
        if piece is None:
            raise PieceError("no such piece", code="not-found", status=404)
        if not ranged and (offset or len(piece) != len(into)):
            raise PieceError("size differs", code="bad-response")
        chunk = piece[offset : offset + len(into)]
        if len(chunk) != len(into):
            raise PieceError("range outside the piece", code="range-not-satisfiable", status=416)
        into[:] = chunk

    def corrupt(self, address: str, piece_id: bytes) -> None:
        piece = bytearray(self.pieces[(address, piece_id)])
        piece[len(piece) // 2] ^= 0xFF
        self.pieces[(address, piece_id)] = bytes(piece)

    async def aclose(self) -> None:
        self.closed = True
