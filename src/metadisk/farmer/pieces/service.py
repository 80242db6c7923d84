"""The piece service: order-limit checks, uploads, downloads, audits, deletes, TTLs and trash.

Every file operation runs on a private thread pool; the event loop only parses, checks and moves
bytes between the socket and those threads. The trash (`metadisk.farmer.pieces.trash`) is
emptied after its grace period, or early when an upload would not fit without it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterable, Callable, Collection, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from metadisk.core.identity import Identity, NodeId
from metadisk.core.merkle import PieceDigest, leaf_hash, prove
from metadisk.core.messages import (
    Action,
    AuditResponse,
    OrderLimit,
    OrderLimitRejected,
    PieceReceipt,
    check_order_limit,
)
from metadisk.farmer.config import DISK_RESERVE
from metadisk.farmer.errors import (
    BadRequest,
    Conflict,
    CorruptPiece,
    Forbidden,
    InsufficientStorage,
    LengthRequired,
    NotFound,
    disk_full_is_507,
)
from metadisk.farmer.metrics import FarmerMetrics
from metadisk.farmer.pieces.db import JournalEntry, Move, PieceDB
from metadisk.farmer.pieces.protocol import RangeSpec
from metadisk.farmer.pieces.store import (
    Download,
    OpenPiece,
    PieceInfo,
    PieceStore,
    TempPiece,
    trailer_size,
)
from metadisk.farmer.pieces.trash import Trash
from metadisk.farmer.usage.service import UsageService

log = logging.getLogger("metadisk.farmer.pieces")

P = ParamSpec("P")
T = TypeVar("T")

PUT_ACTIONS = frozenset(action for action in Action if action.is_put)
GET_ACTIONS = frozenset(action for action in Action if action.is_get)
AUDIT_ACTIONS = frozenset({Action.AUDIT})
DELETE_ACTIONS = frozenset({Action.DELETE})
WRITE_BATCH = 1 << 20  # hand the disk thread ~1 MiB at a time: few thread hops, little memory
# pieces this big bypass the page cache (see `TempPiece`); smaller ones cost more in extra
# system calls than the cache costs them
DIRECT_MIN = 256 << 10
_BATCH = 500
# serials of recent uploads, kept in memory to refuse a replay before its body arrives; older
# ones are refused by the database when the replay commits (same 409, after the body)
RECENT_SERIALS = 1 << 16


class PieceService:
    """Stores and serves pieces for the trusted bridges, within the allocation."""

    def __init__(
        self,
        *,
        identity: Identity,
        store: PieceStore,
        db: PieceDB,
        usage: UsageService,
        trusted_bridges: Mapping[NodeId, bytes],
        allocated: int,
        trash_grace: float,
        clock: Callable[[], float],
        direct_io: bool = False,
        io_threads: int = 16,
        metrics: FarmerMetrics | None = None,
    ) -> None:
        self.identity = identity
        self.store = store
        self._db = db
        self._usage = usage
        self._trusted = dict(trusted_bridges)
        self.allocated = allocated
        self._trash_grace = trash_grace
        self._clock = clock
        self._direct_io = direct_io  # O_DIRECT for pieces of DIRECT_MIN and up
        self._io = ThreadPoolExecutor(io_threads, thread_name_prefix="farmer-io")
        self.metrics = metrics or FarmerMetrics()
        self._reserved = 0
        self._uploading_serials: set[bytes] = set()
        self._uploading_pieces: set[tuple[bytes, bytes]] = set()
        # bytes served per GET order limit, so one limit cannot download more than it allows
        self._served: dict[bytes, tuple[int, int]] = {}
        self._recent_serials: dict[bytes, int] = {}  # serial -> its order limit's expiry
        self._trash = Trash(store, self.apply_moves, self.metrics)

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._io, lambda: fn(*args, **kwargs)
        )

    # -- life cycle

    async def start(self) -> None:
        """Repair what a crash left: finish journaled moves, then drop partial uploads."""
        entries = await self._db.journal()
        exists = await self._run(lambda: [self.store.exists(e.move.src) for e in entries])
        done = [e for e, still_there in zip(entries, exists, strict=True) if not still_there]
        undone = [e for e, still_there in zip(entries, exists, strict=True) if still_there]
        if entries:
            await self._db.finish_moves(done, undone)
            log.info("recovered journal: %d moves done, %d undone", len(done), len(undone))
        bridges = [bridge.raw for bridge in self._trusted]
        removed = await self._run(self.store.prepare, bridges)
        if removed:
            log.info("removed %d partial uploads", removed)
        await self._usage.load()
        self._trash.start()

    async def close(self) -> None:
        # bookkeeping the I/O threads queued stays in the database's queue, which its close
        # drains after this
        await asyncio.to_thread(self._io.shutdown, wait=True)
        await self._trash.close()

    @property
    def free(self) -> int:
        """What the node can still accept: the trash counts as free, being emptied on demand."""
        return max(0, self.allocated - self._usage.used - self._reserved)

    def _short(self) -> int:
        """Bytes the allocation lacks for what is stored, trashed and reserved (<= 0: none)."""
        return self._usage.used + self._usage.trash + self._reserved - self.allocated

    def _now(self) -> int:
        return int(self._clock())

    def authorize(self, limit: OrderLimit, piece_id: bytes, actions: Collection[Action]) -> None:
        """Forbidden, with core's code, unless `limit` allows one of `actions` right now."""
        try:
            check_order_limit(
                limit,
                trusted_bridges=self._trusted,
                node_id=self.identity.node_id,
                piece_id=piece_id,
                actions=actions,
                now=self._now(),
            )
        except OrderLimitRejected as exc:
            raise Forbidden(str(exc), code=exc.code) from exc

    # -- upload

    async def put(
        self,
        limit: OrderLimit,
        piece_id: bytes,
        piece_hash: bytes,
        content_length: int | None,
        body: AsyncIterable[bytes],
    ) -> PieceReceipt:
        """Store a piece streamed from `body` and return the signed receipt."""
        self.authorize(limit, piece_id, PUT_ACTIONS)
        if content_length is None:
            raise LengthRequired("uploads need a Content-Length")
        if content_length > limit.limit:
            raise BadRequest(
                f"piece of {content_length} bytes exceeds the order limit's {limit.limit}",
                code="over-limit",
            )
        key = (limit.bridge_id.raw, piece_id)
        if limit.serial in self._uploading_serials or limit.serial in self._recent_serials:
            raise Conflict("order limit serial already in use", code="serial-reused")
        if key in self._uploading_pieces:
            raise Conflict("piece is being uploaded", code="piece-exists")
        needed = content_length + trailer_size(content_length)
        if needed > self.free:  # a refusal: nothing is reserved until bytes arrive
            raise InsufficientStorage(f"no room for {needed} bytes in the allocation")
        self._uploading_serials.add(limit.serial)
        self._uploading_pieces.add(key)
        temp = self.store.new_temp()
        try:
            return await self._put(limit, piece_id, piece_hash, content_length, body, temp)
        finally:
            self._reserved -= temp.reserved
            self._uploading_serials.discard(limit.serial)
            self._uploading_pieces.discard(key)

    async def _room(self) -> None:
        """Make what is reserved fit the allocation by emptying trash; 507 if that cannot."""
        await self._trash.make_room(self._short, "allocation")
        if self._short() > 0:
            raise InsufficientStorage("no room left in the allocation for this piece")

    async def _put(
        self,
        limit: OrderLimit,
        piece_id: bytes,
        piece_hash: bytes,
        size: int,
        body: AsyncIterable[bytes],
        temp: TempPiece,
    ) -> PieceReceipt:
        """Receive (the event loop), then land the piece in one I/O-thread call, then sign."""
        bridge = limit.bridge_id.raw
        rel = self.store.piece_rel(bridge, piece_id)
        needed = size + trailer_size(size)
        now = self._now()
        try:
            try:
                tail = await self._receive(temp, rel, needed, body, size, limit)
                temp.reserved += needed - size  # the trailer
                self._reserved += needed - size
                if self._short() > 0:
                    await self._room()
            finally:
                self._usage.record_in(bridge, temp.received)
        except BaseException:
            await self._run(temp.discard)
            raise
        landing = asyncio.get_running_loop().run_in_executor(
            self._io, self._land, temp, rel, needed, tail, size, piece_hash, limit, now
        )
        try:
            move, digest = await asyncio.shield(landing)
        except asyncio.CancelledError:
            # the I/O thread carries on with the file whatever happens here: wait for it, so a
            # piece that did land is accounted for (the client just never hears about it)
            await asyncio.wait([landing])
            if not landing.cancelled() and landing.exception() is None:
                self._landed(limit, landing.result()[0])
            raise
        self._landed(limit, move)
        self.metrics.pieces_stored.inc()
        self.metrics.stored_bytes.inc(digest.size)
        receipt = PieceReceipt(
            serial=limit.serial,
            node_id=self.identity.node_id,
            piece_id=piece_id,
            size=digest.size,
            piece_hash=digest.piece_hash,
            stored_at=now,
        )
        return receipt.signed_by(self.identity)

    def _landed(self, limit: OrderLimit, move: Move) -> None:
        self._usage.apply(move)
        serials = self._recent_serials
        serials[limit.serial] = limit.expires_at
        if len(serials) > RECENT_SERIALS:
            del serials[next(iter(serials))]  # the oldest: the database still refuses it

    # These run on the I/O threads. The file appears with the first write, and the last batch is
    # written, checked, sealed, journaled and renamed in one call (`_land`): one thread hop per
    # piece after the body, however small the piece.

    def _land(
        self,
        temp: TempPiece,
        rel: str,
        needed: int,
        tail: list[bytes],
        size: int,
        piece_hash: bytes,
        limit: OrderLimit,
        now: int,
    ) -> tuple[Move, PieceDigest]:
        """Finish, check and store an upload: the three fsyncs a receipt needs (data, the
        journal and serial, the rename) cost two waits, since the first two run at once.

        On failure nothing is left behind: no temp file, no journal row, no spent serial
        (unless the failure came after the piece became visible, see `commit`)."""
        try:
            digest = disk_full_is_507(self._finish)(temp, rel, needed, tail, size, piece_hash)
            info = PieceInfo.of(digest, now, limit.piece_expires_at)
            move = Move(
                limit.bridge_id.raw, limit.piece_id, temp.name, rel, stored=info.disk_size, pieces=1
            )
            # the database thread commits serial, TTL and journal row (one WAL fsync, shared
            # with other uploads) while this thread fsyncs the data
            journaled = self._db.begin_put_soon(
                limit.serial, limit.expires_at, limit.piece_expires_at, move
            )
        except BaseException:
            temp.discard()
            raise
        try:
            disk_full_is_507(temp.seal)(digest, info)
        except BaseException:
            if journaled.exception() is None:  # waits; an exception means no row was written
                # forget the move before removing its source, or recovery would count it as done
                entry = JournalEntry(journaled.result(), move)
                self._db.finish_moves_soon([], [entry]).result()
            temp.discard()
            raise
        try:
            entry = JournalEntry(journaled.result(), move)  # Conflict if the serial was used
        except BaseException:
            temp.discard()
            raise
        try:
            disk_full_is_507(self.store.commit)(temp, rel)
        except BaseException:
            self._db.finish_moves_soon([], [entry]).result()
            temp.discard()
            raise
        # The piece is durable and visible: the receipt can go now. The journal row is cleared
        # with the counters' update later (a crash before that replays it at the next start).
        self._db.finish_moves_later([entry])
        return move, digest

    def _write(
        self, temp: TempPiece, rel: str, needed: int, chunks: list[bytes], *, last: bool = False
    ) -> None:
        if not temp.opened:
            self._create(temp, rel, needed)
        temp.write(chunks, last=last)

    def _create(self, temp: TempPiece, rel: str, needed: int) -> None:
        if self.store.exists(rel):
            raise Conflict("piece already stored", code="piece-exists")
        if self._disk_short(needed) > 0:
            # this I/O thread waits while the event loop empties trash (on a thread of its own)
            self._trash.make_room_blocking(lambda: self._disk_short(needed), "disk")
            if self._disk_short(needed) > 0:
                raise InsufficientStorage("the disk is full")
        temp.open(direct=self._direct_io and needed >= DIRECT_MIN)

    def _disk_short(self, needed: int) -> int:
        stat = os.statvfs(self.store.tmp_dir)
        return needed + DISK_RESERVE - stat.f_bavail * stat.f_frsize

    def _finish(
        self,
        temp: TempPiece,
        rel: str,
        needed: int,
        tail: list[bytes],
        size: int,
        piece_hash: bytes,
    ) -> PieceDigest:
        self._write(temp, rel, needed, tail, last=True)
        if temp.written != size:
            raise BadRequest("body shorter than Content-Length", code="incomplete-body")
        digest = temp.digest()
        if digest.piece_hash != piece_hash:
            raise BadRequest("piece does not match its declared hash", code="hash-mismatch")
        return digest

    async def _receive(
        self,
        temp: TempPiece,
        rel: str,
        needed: int,
        body: AsyncIterable[bytes],
        size: int,
        limit: OrderLimit,
    ) -> list[bytes]:
        """Stream `body` into `temp`, refusing it the moment it passes `size`; returns the last
        chunks, not yet written."""
        loop = asyncio.get_running_loop()
        write = disk_full_is_507(self._write)
        pending: asyncio.Future[None] | None = None
        batch: list[bytes] = []
        batched = 0
        try:
            async for chunk in body:
                count = len(chunk)
                temp.received += count
                if temp.received > size:
                    raise BadRequest(
                        f"body exceeds {size} bytes (order limit {limit.limit})", code="over-limit"
                    )
                temp.reserved += count  # an upload holds what it sent, never what it promised
                self._reserved += count
                if self._short() > 0:  # it fits only without (some of) the trash, or not at all
                    await self._room()
                batch.append(chunk)
                batched += count
                if batched >= WRITE_BATCH:
                    if pending is not None:
                        await pending
                    # one write in flight while the next batch arrives from the socket
                    pending = loop.run_in_executor(self._io, write, temp, rel, needed, batch)
                    batch, batched = [], 0
            if pending is not None:
                await pending
        except BaseException:
            if pending is not None and not pending.done():
                # the write thread still uses the file: wait for it before it is discarded
                await asyncio.shield(asyncio.wait([pending]))
            raise
        return batch

    # -- download, audit, delete

    async def get(
        self, limit: OrderLimit, piece_id: bytes, byte_range: RangeSpec | None
    ) -> Download:
        """Open a piece for sending; the caller sends it and closes `Download.piece`."""
        self.authorize(limit, piece_id, GET_ACTIONS)
        piece = await self._open(limit, piece_id)
        try:
            if byte_range is None:
                offset, count = 0, piece.info.size
            else:
                offset, count = byte_range.resolve(piece.info.size)
            self._charge(limit, count)
        except BaseException:
            piece.close()
            raise
        self._usage.record_out(limit.bridge_id.raw, count)
        self.metrics.pieces_served.inc()
        self.metrics.served_bytes.inc(count)
        return Download(piece, offset, count, partial=byte_range is not None)

    def _charge(self, limit: OrderLimit, count: int) -> None:
        served, _ = self._served.get(limit.serial, (0, limit.expires_at))
        if served + count > limit.limit:
            raise BadRequest(
                f"{count} bytes would pass the order limit's {limit.limit} "
                f"({served} already served)",
                code="over-limit",
            )
        self._served[limit.serial] = (served + count, limit.expires_at)

    async def _open(self, limit: OrderLimit, piece_id: bytes) -> OpenPiece:
        piece = await self._run(
            self.store.open, self.store.piece_rel(limit.bridge_id.raw, piece_id)
        )
        expires_at = piece.info.expires_at
        if expires_at and expires_at <= self._now():
            piece.close()
            raise NotFound("piece has expired")
        return piece

    async def audit(
        self, limit: OrderLimit, piece_id: bytes, leaf_index: int
    ) -> tuple[bytes, AuditResponse]:
        """The leaf `leaf_index` of a piece, and the signed answer: its hash, size and Merkle
        proof against the root signed in the piece's receipt."""
        self.authorize(limit, piece_id, AUDIT_ACTIONS)
        piece = await self._open(limit, piece_id)
        try:
            if not 0 <= leaf_index < piece.info.leaf_count:
                raise BadRequest(
                    f"leaf index must be below {piece.info.leaf_count}", code="bad-leaf-index"
                )
            leaf, hashes = await self._run(piece.read_leaf, leaf_index)
        finally:
            piece.close()
        self._usage.record_out(limit.bridge_id.raw, len(leaf))
        self.metrics.audits.inc()
        response = AuditResponse(
            serial=limit.serial,
            node_id=self.identity.node_id,
            piece_id=piece_id,
            leaf_index=leaf_index,
            leaf_hash=leaf_hash(leaf_index, leaf),
            leaf_size=len(leaf),
            proof=prove(hashes, leaf_index).encode(),
        )
        return leaf, response.signed_by(self.identity)

    async def delete(self, limit: OrderLimit, piece_id: bytes) -> None:
        """Move a piece to the trash, where it stays for the grace period."""
        self.authorize(limit, piece_id, DELETE_ACTIONS)
        bridge = limit.bridge_id.raw
        rel = self.store.piece_rel(bridge, piece_id)
        size = await self._run(self.store.disk_size, rel)  # not the footer: corrupt ones go too
        dst = self.store.trash_rel(bridge, piece_id, self._now())
        move = Move(bridge, piece_id, src=rel, dst=dst, stored=-size, pieces=-1, trash=size)
        if not await self.apply_moves([move]):
            raise NotFound("no such piece")  # deleted meanwhile
        self.metrics.pieces_deleted.labels("deleted").inc()

    # -- graceful exit (farmer/exit)

    async def read_piece(self, bridge: bytes, piece_id: bytes) -> bytes:
        """A stored piece's bytes, to move it to another node: NotFound (or past its TTL),
        CorruptPiece."""
        rel = self.store.piece_rel(bridge, piece_id)

        def read() -> tuple[bytes, int]:
            piece = self.store.open(rel)
            try:
                return piece.read_all(), piece.info.expires_at
            finally:
                piece.close()

        data, expires_at = await self._run(read)
        if expires_at and expires_at <= self._now():
            raise NotFound("piece has expired")
        self._usage.record_out(bridge, len(data))
        return data

    # -- chores

    async def collect_expired(self) -> int:
        """Delete pieces whose TTL passed (no trash: the bridge already forgot them)."""
        now = self._now()
        removed = 0
        while True:
            batch = await self._db.expired(now, _BATCH)
            moves: list[Move] = []
            for item in batch:
                rel = self.store.piece_rel(item.bridge, item.piece_id)
                try:
                    info = await self._run(self.store.info, rel)
                    expires_at = info.expires_at
                except NotFound:
                    expires_at = 0
                except CorruptPiece:
                    expires_at = now  # useless anyway: let it go
                if not expires_at or expires_at > now:
                    # gone already, or stored again with another TTL
                    await self._db.forget_expiration(item.bridge, item.piece_id)
                    continue
                try:
                    size = await self._run(self.store.disk_size, rel)
                except NotFound:
                    continue
                moves.append(Move(item.bridge, item.piece_id, rel, None, stored=-size, pieces=-1))
            removed += await self.apply_moves(moves)
            if len(batch) < _BATCH:
                break
        self.metrics.pieces_deleted.labels("expired").inc(removed)
        await self._db.prune_serials(now)
        self._served = {s: v for s, v in self._served.items() if v[1] > now}
        self._recent_serials = {s: t for s, t in self._recent_serials.items() if t >= now}
        return removed

    async def empty_trash(self) -> int:
        """Purge trashed pieces older than the grace period."""
        return await self._trash.empty(self._now() - self._trash_grace)

    async def trash_pieces(
        self, bridge: bytes, piece_ids: Collection[bytes], *, stored_before: int
    ) -> int:
        """Move `bridge`'s pieces among `piece_ids` that were stored before `stored_before` (the
        footer's stored_at, signed in their receipts) to the trash; returns how many moved.

        For garbage collection: pieces being uploaded are skipped, and while this runs the ids
        count as being uploaded, so a piece deleted and stored again meanwhile is never taken.
        Missing and damaged pieces (no stored time to trust) are left alone."""
        keys = {(bridge, p) for p in piece_ids} - self._uploading_pieces
        self._uploading_pieces.update(keys)
        try:
            ids = [piece_id for _, piece_id in keys]
            collectable = self._trash.collectable
            moves = await self._run(collectable, bridge, ids, stored_before, self._now())
            moved = await self.apply_moves(moves)
        finally:
            self._uploading_pieces.difference_update(keys)
        self.metrics.pieces_deleted.labels("collected").inc(moved)
        return moved

    async def apply_moves(self, moves: list[Move], io: Executor | None = None) -> int:
        """Journal, perform (on `io`, default the piece I/O threads) and account file moves;
        returns how many happened."""
        if not moves:
            return 0
        ids = await self._db.begin_moves(moves)
        entries = [JournalEntry(i, m) for i, m in zip(ids, moves, strict=True)]
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(io or self._io, self._perform, moves)
        done = [e for e, ok in zip(entries, results, strict=True) if ok]
        undone = [e for e, ok in zip(entries, results, strict=True) if not ok]
        await asyncio.shield(self._db.finish_moves(done, undone))
        for entry in done:
            self._usage.apply(entry.move)
        return len(done)

    def _perform(self, moves: list[Move]) -> list[bool]:
        """Do `moves`; each directory moved into is fsynced once, before any move is reported
        done (a collection's 500 moves into one trash directory: one fsync, not 500)."""
        results = []
        for move in moves:
            try:
                if move.dst is None:
                    results.append(self.store.remove(move.src))
                    continue
                self.store.move(move.src, move.dst, sync=False)
            except FileNotFoundError:
                results.append(False)
                continue
            results.append(True)
        self.store.sync_parents(m.dst for m, ok in zip(moves, results, strict=True) if ok and m.dst)
        return results
