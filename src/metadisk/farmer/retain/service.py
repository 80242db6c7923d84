"""Garbage collection: a bridge's signed `RetainRequest` names, with a Bloom filter, the pieces
it wants kept; this node moves that bridge's other pieces stored before the request's
``created_before`` to the trash. That cleans up what deletes missed (a delete dropped while the
node was down), pieces of abandoned uploads and surplus pieces of finished ones.

Why it is safe:

- A Bloom filter never says "no" for a piece the bridge added, so a piece the bridge keeps is
  never moved. False positives only keep an unwanted piece until a later request (the bridge
  picks a new seed each time).
- Only pieces stored before ``created_before`` go, by the stored-at time in the piece's footer:
  the time this node signed in the piece's receipt, which the bridge holds too, so both sides
  compare the same number. (Not the file's mtime: it is the end of the upload rather than the
  time the receipt states, and copying or restoring a data dir may change it.) A piece without a
  readable footer is left alone. The bridge must choose ``created_before`` early enough that
  every piece it did not know of when it built the filter started uploading after it (and allow
  for clock skew); this node compares ``stored_at < created_before`` exactly.
- Moved pieces go to the trash, kept for ``trash_grace``: a bad filter can still be undone.
- A request is taken only from a trusted bridge, signed by it, for this node, issued within
  `CLOCK_SKEW` of this node's clock and not older than one already taken from that bridge.

Requests are checked on arrival, the newest per bridge is kept in memory (the bridge sends one
each cycle) and the ``retain`` chore runs it in the background soon after: a walk over the
bridge's 256 piece directories, one directory's names at a time, testing each id against the
filter off the event loop and trashing the unlisted ones in batches of `BATCH`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass

from metadisk.core.bloom import BloomFilter
from metadisk.core.errors import DecodeError, SignatureError
from metadisk.core.identity import NodeId
from metadisk.core.messages import CLOCK_SKEW, RetainRequest
from metadisk.farmer.errors import BadRequest, Conflict, Forbidden
from metadisk.farmer.pieces.service import PieceService
from metadisk.farmer.pieces.store import FAN_OUT
from metadisk.farmer.usage.service import Collection, UsageService
from metadisk.runtime.chore import Chore

log = logging.getLogger("metadisk.farmer.retain")

BATCH = 500  # unlisted pieces checked and moved together
DIRECTORIES = 16**FAN_OUT
# The chore runs on each request's arrival; its timed runs only retry a collection that failed.
RETRY_INTERVAL = 600.0


@dataclass(frozen=True, slots=True)
class Accepted:
    """What `RetainService.accept` did with a request."""

    created_before: int
    queued: bool  # False: the same request (same issued_at) already ran; nothing queued


@dataclass(frozen=True, slots=True)
class _Queued:
    issued_at: int
    created_before: int
    keep: BloomFilter


class RetainService:
    """Takes the bridges' retain requests and runs them (the ``retain`` chore's cycle)."""

    def __init__(
        self,
        *,
        node_id: NodeId,
        pieces: PieceService,
        usage: UsageService,
        trusted_bridges: Mapping[NodeId, bytes],
        clock: Callable[[], float],
    ) -> None:
        self._node_id = node_id
        self._pieces = pieces
        self._usage = usage
        self._trusted = dict(trusted_bridges)
        self._clock = clock
        self._queued: dict[bytes, _Queued] = {}  # per bridge, the newest request not yet run
        self._newest: dict[bytes, int] = {}  # per bridge, issued_at of the newest request taken
        self._applied: dict[bytes, int] = {}  # per bridge, issued_at of the last one run
        self._chore: Chore | None = None
        self._triggers: set[asyncio.Task[object]] = set()

    def attach(self, chore: Chore) -> None:
        """The chore that runs `collect`: triggered whenever a request is queued."""
        self._chore = chore

    @property
    def queued(self) -> int:
        """Bridges whose request waits to run."""
        return len(self._queued)

    async def accept(self, data: bytes) -> Accepted:
        """Check an encoded request and queue it; a `FarmerError` with its code if refused:
        ``malformed``, ``untrusted-bridge``, ``bad-signature``, ``wrong-node``,
        ``stale-request``, in that order."""
        try:
            request = RetainRequest.decode(data)
        except DecodeError as exc:
            raise BadRequest(f"not a retain request: {exc}", code="malformed") from exc
        key = self._trusted.get(request.bridge_id)
        if key is None:
            raise Forbidden("retain request from a bridge not trusted", code="untrusted-bridge")
        # hashing tens of MiB: off the event loop
        keep = await asyncio.to_thread(_verified_filter, request, key)
        if request.node_id != self._node_id:
            raise Forbidden("retain request is for another node", code="wrong-node")
        if isinstance(keep, DecodeError):
            raise BadRequest(f"the filter is not a Bloom filter: {keep}", code="malformed")
        if request.created_before > request.issued_at:
            raise BadRequest("created_before is after issued_at", code="malformed")
        bridge = request.bridge_id.raw
        now = int(self._clock())
        if abs(now - request.issued_at) > CLOCK_SKEW:
            raise Conflict(
                f"retain request issued at {request.issued_at}, this node's clock says {now}",
                code="stale-request",
            )
        newest = self._newest.get(bridge)
        if newest is not None and request.issued_at < newest:
            raise Conflict(
                f"a newer retain request (issued at {newest}) was already taken",
                code="stale-request",
            )
        self._newest[bridge] = request.issued_at
        if self._applied.get(bridge) == request.issued_at and bridge not in self._queued:
            return Accepted(request.created_before, queued=False)
        self._queued[bridge] = _Queued(request.issued_at, request.created_before, keep)
        self._trigger()
        return Accepted(request.created_before, queued=True)

    def _trigger(self) -> None:
        chore = self._chore
        if chore is None or not chore.running:
            return  # the chore's next run takes it
        task = asyncio.create_task(chore.trigger_and_wait())
        self._triggers.add(task)  # a reference, or the task may be collected mid-way
        task.add_done_callback(_forget(self._triggers))

    async def collect(self) -> int:
        """Run every queued request; returns how many pieces went to the trash. A failed one
        stays queued (unless a newer one came meanwhile) for the chore's next run."""
        collected = 0
        while self._queued:
            bridge = next(iter(self._queued))
            queued = self._queued.pop(bridge)
            try:
                checked, moved = await self.walk(bridge, queued.keep, queued.created_before)
            except BaseException:
                self._queued.setdefault(bridge, queued)
                raise
            self._applied[bridge] = queued.issued_at
            self._usage.record_collection(bridge, Collection(int(self._clock()), checked, moved))
            level = logging.WARNING if moved > checked // 2 and moved > 100 else logging.INFO
            log.log(
                level,
                "garbage collection for bridge %s: %d pieces checked, %d moved to the trash "
                "(stored before %d and not in the filter)",
                bridge.hex()[:16],
                checked,
                moved,
                queued.created_before,
            )
            collected += moved
        return collected

    async def walk(
        self, bridge: bytes, keep: Container[bytes], created_before: int
    ) -> tuple[int, int]:
        """Move `bridge`'s pieces stored before `created_before` and not in `keep` to the
        trash; returns (pieces checked, pieces moved)."""
        checked = moved = 0
        list_ids = self._pieces.store.piece_ids
        for directory in range(DIRECTORIES):
            ids, unlisted = await asyncio.to_thread(_unlisted, list_ids, bridge, directory, keep)
            checked += ids
            for start in range(0, len(unlisted), BATCH):
                moved += await self._pieces.trash_pieces(
                    bridge, unlisted[start : start + BATCH], stored_before=created_before
                )
        return checked, moved


def _verified_filter(request: RetainRequest, key: bytes) -> BloomFilter | DecodeError:
    try:
        request.verify_signature(key)
    except SignatureError as exc:
        raise Forbidden("retain request signature is invalid", code="bad-signature") from exc
    try:
        return request.bloom_filter()
    except DecodeError as exc:
        return exc  # refused after the node id is checked


def _unlisted(
    list_ids: Callable[[bytes, int], list[bytes]],
    bridge: bytes,
    directory: int,
    keep: Container[bytes],
) -> tuple[int, list[bytes]]:
    ids = list_ids(bridge, directory)
    return len(ids), [piece_id for piece_id in ids if piece_id not in keep]


def _forget(tasks: set[asyncio.Task[object]]) -> Callable[[asyncio.Task[object]], None]:
    def done(task: asyncio.Task[object]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()  # the chore logged it already; nothing "never retrieved"

    return done
