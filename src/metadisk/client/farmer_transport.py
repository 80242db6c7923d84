"""How the client talks to farmers, and what it learns about them.

The transfer pipelines only ever call a `FarmerTransport`, so unit tests plug in an in-memory
transport, and integration tests use `HttpFarmerTransport` over the data plane's one client
(`metadisk.wire.dataplane.PieceClient`) against real farmer processes. Every failure becomes a
`PieceError` whose code is the farmer's code, or one of:

- ``connection-failed``: no connection (refused, reset: a dead farmer);
- ``unresolvable``: the farmer's host name does not resolve;
- ``timeout``: no connection, or no answer, within the transport's timeouts (a hung farmer: its
  kernel still accepts connections, nothing reads them);
- ``stalled``: a transfer under way that moved no byte for ``stall_timeout``;
- ``bad-response``: an answer that is not what the contract says.

The pipelines add their own: ``bad-receipt`` (a receipt that does not match the piece),
``bad-piece`` (bytes that fail their hash) and ``slow`` (given up on: far slower than the
segment's other pieces, see `LongTail`).

What the client learns: `Outcomes` records how each piece transfer of a segment went, as the
bridge's `PieceOutcome`s (reported with the segment), and feeds `Suspects`, one client's short
memory of farmers that hung, stalled, refused connections or lagged far behind. An upload
counts a piece sent to a suspect as lagging from the start (replaced at once if the segment
needs it), and downloads fetch from suspects last, so a hung farmer costs a transfer one wait,
not one per segment.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

# Their home before config; tests and callers still import them from here.
from metadisk.client.config import ABANDON_LAGGARDS as ABANDON_LAGGARDS
from metadisk.client.config import REPLACE_LAGGARDS as REPLACE_LAGGARDS
from metadisk.client.config import LongTail as LongTail
from metadisk.client.config import TransportConfig as TransportConfig
from metadisk.client.errors import PieceError
from metadisk.core.errors import CoreError, SignatureError
from metadisk.core.identity import NodeId
from metadisk.core.messages import OrderLimit, PieceReceipt
from metadisk.runtime.logs import event
from metadisk.wire.api.objects import MAX_LATENCY_MS, PieceOutcome, PieceOutcomeKind
from metadisk.wire.dataplane import PieceClient, PieceTransferError

# Pieces that failed at one farmer while the transfer went on elsewhere (`routed_around`).
log = logging.getLogger("metadisk.client.transfers")


@dataclass(frozen=True, slots=True)
class PieceTarget:
    """One PUT order limit for one piece and the farmer it is addressed to."""

    number: int  # piece number in the segment, 0 .. n-1
    limit: OrderLimit
    address: str  # farmer's data-plane base URL
    public_key: bytes  # farmer's Ed25519 key: its receipts must verify under it


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


async def put_piece(
    transport: FarmerTransport, target: PieceTarget, data: memoryview, piece_hash: bytes
) -> PieceReceipt:
    """Store one piece at `target`; its receipt, checked (`check_receipt`)."""
    receipt = await transport.put_piece(target.address, target.limit, piece_hash, data)
    check_receipt(receipt, target, piece_hash, len(data))
    return receipt


def check_receipt(receipt: PieceReceipt, target: PieceTarget, piece_hash: bytes, size: int) -> None:
    """Accept a receipt only if it is signed by the farmer for exactly the piece we sent."""
    limit = target.limit
    problems = [
        ("serial", receipt.serial == limit.serial),
        ("node", receipt.node_id == limit.node_id),
        ("piece id", receipt.piece_id == limit.piece_id),
        ("size", receipt.size == size),
        ("piece hash", receipt.piece_hash == piece_hash),
    ]
    wrong = [name for name, ok in problems if not ok]
    if wrong:
        raise PieceError(
            f"receipt does not match the piece: {', '.join(wrong)}", code="bad-receipt"
        )
    try:
        receipt.verify_signature(target.public_key)
    except SignatureError as exc:
        raise PieceError(f"receipt signature: {exc}", code="bad-receipt") from exc


def check_target(target: PieceTarget, n: int) -> None:
    """Refuse (``bad-target``) an order limit the client must not send a piece under."""
    if not 0 <= target.number < n:
        raise PieceError(f"piece number {target.number} outside 0..{n - 1}", code="bad-target")
    if not target.limit.action.is_put:
        raise PieceError("order limit is not for an upload", code="bad-target")
    try:
        ok = NodeId.from_public_key(target.public_key) == target.limit.node_id
    except CoreError:
        ok = False
    if not ok:
        raise PieceError("farmer key does not match the order limit's node", code="bad-target")


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


# Failures that say the farmer is not there or not keeping up, rather than that it refused this
# one request: the farmers `Suspects` remembers.
SUSPICIOUS = frozenset({"connection-failed", "unresolvable", "timeout", "stalled", "slow"})


class Suspects:
    """One client's memory of farmers that hung, stalled, refused connections or lagged.

    A farmer stays suspect for `ttl` seconds after its last such failure, and stops being one as
    soon as a transfer with it succeeds. Shared by every upload and download of a client (an
    `AsyncProject`), so the second segment, and the next object, do not wait on the same hung
    farmer again; bounded to `most` farmers (the oldest forgotten first).
    """

    def __init__(
        self,
        ttl: float = 120.0,
        *,
        most: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._most = most
        self._clock = clock
        self._until: OrderedDict[NodeId, tuple[float, str]] = OrderedDict()

    def add(self, node: NodeId, code: str) -> None:
        self._until.pop(node, None)
        self._until[node] = (self._clock() + self._ttl, code)
        while len(self._until) > self._most:
            self._until.popitem(last=False)

    def clear(self, node: NodeId) -> None:
        self._until.pop(node, None)

    def why(self, node: NodeId) -> str | None:
        """The code a suspect farmer last failed with; None if it is not (or no longer) one."""
        found = self._until.get(node)
        if found is None:
            return None
        until, code = found
        if until <= self._clock():
            del self._until[node]
            return None
        return code

    def __contains__(self, node: object) -> bool:
        return isinstance(node, NodeId) and self.why(node) is not None

    def __len__(self) -> int:
        return sum(1 for node in list(self._until) if self.why(node) is not None)


class Outcomes:
    """How each piece transfer of one segment went: `PieceOutcome`s for the bridge, and what
    this client's `Suspects` should remember (a transfer that succeeds clears its farmer)."""

    def __init__(self, suspects: Suspects | None = None) -> None:
        self.suspects = suspects
        self.items: list[PieceOutcome] = []
        self.latencies: list[float] = []  # seconds, of the transfers that succeeded

    def _add(
        self, number: int, node: NodeId, kind: PieceOutcomeKind, started: float, code: str
    ) -> float:
        took = max(0.0, time.monotonic() - started)
        millis = min(MAX_LATENCY_MS, round(took * 1000))
        self.items.append(
            PieceOutcome(
                piece_number=number, node_id=node, outcome=kind, latency_ms=millis, code=code
            )
        )
        return took

    def success(self, number: int, node: NodeId, started: float) -> None:
        self.latencies.append(self._add(number, node, "success", started, ""))
        if self.suspects is not None:
            self.suspects.clear(node)

    def failure(self, number: int, node: NodeId, started: float, code: str) -> None:
        """A transfer that failed with `code`; ``bad-piece`` is reported as such."""
        kind: PieceOutcomeKind = "bad-piece" if code == "bad-piece" else "failed"
        self._add(number, node, kind, started, code[:64])
        if self.suspects is not None and code in SUSPICIOUS:
            self.suspects.add(node, code)

    def slow(self, number: int, node: NodeId, started: float, *, laggard: bool) -> None:
        """A transfer cancelled because enough pieces came from others first; a `laggard` (far
        slower than the rest) also makes its farmer a suspect."""
        self._add(number, node, "slow", started, "slow" if laggard else "")
        if self.suspects is not None and laggard:
            self.suspects.add(node, "slow")
