"""The repairer: rebuilds the missing pieces of queued piece sets, on ciphertext only.

For each set it claims (least healthy first), it downloads k retrievable pieces under GET_REPAIR
order limits (a few more at once, so one slow or bad farmer costs no second round), checks each
against the hash its farmer signed, rebuilds pieces for the missing piece numbers with the
set's Reed-Solomon code, and uploads them under PUT_REPAIR order limits to new nodes: one per
/24 network (unless the bridge runs on one host) and never a node that already holds a piece of
the set. Receipts are verified, then the set's rows are swapped in one transaction that checks
nothing changed underneath (`RepairDB.commit_repair`): a set deleted meanwhile, or a piece moved
by a graceful exit, gets its new pieces queued for deletion instead.

The repairer holds no key: pieces are erasure-coded ciphertext, and so are the ones it makes.
Bytes moved are throttled to `[repair] bandwidth` across all repairs of the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from metadisk.bridge.config import RepairConfig
from metadisk.bridge.errors import BridgeError
from metadisk.bridge.orders.service import OrderSigner
from metadisk.bridge.repair.db import Holder, NewPiece, PlannedTransfer, RepairDB, RepairJob
from metadisk.core.erasure import RedundancyScheme
from metadisk.core.errors import CoreError
from metadisk.core.identity import NodeId
from metadisk.core.merkle import digest_piece, verify_piece
from metadisk.core.messages import Action, OrderLimit, PieceReceipt, derive_piece_id
from metadisk.runtime.logs import event
from metadisk.runtime.throttle import Throttle
from metadisk.wire.dataplane import PieceClient, PieceTransferError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Target:
    """A node chosen for a rebuilt piece."""

    node_id: bytes
    public_key: bytes
    address: str
    last_net: str


class Selector(Protocol):
    """Chooses up to `count` nodes for new pieces (`OverlayService.select`'s policy); raises
    `BridgeError` when none is eligible."""

    def __call__(
        self,
        count: int,
        piece_size: int,
        now: int,
        exclude: Collection[bytes],
        exclude_nets: Collection[str],
    ) -> Sequence[Target]: ...


class RepairFailed(Exception):
    """This attempt cannot finish; the set is tried again later."""


HEDGE_AFTER = 1.0  # seconds before spare downloads start beside k that have not all come

# What a farmer says when it lost or damaged a piece it signed for.
_BAD = frozenset({"not-found", "corrupt-piece"})


class Repairer:
    """One cycle of the repair chore: claim queued sets, repair up to `concurrency` at once."""

    def __init__(
        self,
        db: RepairDB,
        signer: OrderSigner,
        pieces: PieceClient,
        select: Selector,
        config: RepairConfig,
        clock: Callable[[], int],
        online_window: int,
        *,
        observe: Callable[[str, int], None] = lambda outcome, count: None,
    ) -> None:
        self._db = db
        self._signer = signer
        self._pieces = pieces
        self._select = select
        self._config = config
        self._clock = clock
        self._online_window = online_window
        self._observe = observe  # outcomes, and bytes moved ("downloaded", "uploaded")
        self._throttle = Throttle(config.bandwidth, burst=max(config.bandwidth, 1 << 20))

    async def cycle(self) -> int:
        """Repair what is due; returns how many sets were repaired."""
        config = self._config
        lease = int(max(600.0, config.repair_interval * 4))
        repaired = 0

        async def lane() -> None:
            # Each lane claims its next set as soon as it is free: least healthy first, and no
            # set waits for a slow one claimed beside it.
            nonlocal repaired
            while roots := await asyncio.to_thread(self._db.claim_repairs, self._clock(), lease, 1):
                repaired += await self.repair(roots[0])

        await asyncio.gather(*(lane() for _ in range(config.concurrency)))
        return repaired

    async def repair(self, root: bytes) -> bool:
        """Repair one set; False if it needed none or this attempt failed."""
        now = self._clock()
        job = await asyncio.to_thread(self._db.repair_job, root, now - self._online_window)
        if job is None or job.healthy > job.m:
            # deleted, or healed meanwhile (nodes came back, an exit moved its pieces)
            await asyncio.to_thread(self._db.queue_repairs, [], [root], now)
            self._observe("not-needed", 1)
            return False
        try:
            return await self._repair(job, now)
        except Exception as exc:  # one set's trouble must not stop the lanes repairing others
            if not isinstance(exc, RepairFailed):
                log.exception("repair of piece set %s broke", root.hex()[:16])
            delay = int(self._config.repair_interval * 2 ** min(job.attempts, 8))
            await asyncio.to_thread(
                self._db.retry_later, root, self._clock(), delay, self._config.max_attempts
            )
            self._observe("failed", 1)
            event(
                log,
                logging.WARNING,
                f"repair of piece set {root.hex()[:16]} failed: {exc}",
                root_piece_id=root,
                healthy=job.healthy,
                attempts=job.attempts + 1,
            )
            return False

    async def _repair(self, job: RepairJob, now: int) -> bool:
        scheme = RedundancyScheme(job.k, job.m, job.o, job.n)
        fetched, bad = await self._download(job)
        if bad:
            # The farmer signed for other bytes: replace its piece now, and audit it soon.
            await asyncio.to_thread(self._db.report_bad, job.root_piece_id, bad, self._clock())
        taken = {h.piece_number for h in job.holders if h.healthy and h.piece_number not in bad}
        rows = {h.piece_number: h for h in job.holders}
        # Numbers whose piece was found bad first (the checker would count them healthy), then
        # those nobody holds, then those on unhealthy nodes (their rows go, if they are taken).
        free = (
            sorted(bad)
            + [i for i in range(job.n) if i not in rows]
            + [i for i in sorted(rows) if i not in taken and i not in bad]
        )
        need = job.o - len(taken)
        count = min(need + self._config.upload_spares, len(free))
        nets = {h.last_net for h in job.holders if h.healthy}
        try:
            targets = await asyncio.to_thread(
                self._select, count, job.piece_size, now, {h.node_id for h in job.holders}, nets
            )
        except BridgeError as exc:
            raise RepairFailed(f"no node for new pieces ({exc})") from exc
        numbers = free[: len(targets)]
        if not numbers:
            raise RepairFailed("no node for new pieces")
        segment_size = job.piece_size * job.k
        rebuilt = await asyncio.to_thread(
            scheme.codec().reconstruct, fetched, segment_size, numbers
        )
        fetched.clear()
        limits = [
            self._signer.sign(
                NodeId(t.node_id),
                derive_piece_id(job.root_piece_id, NodeId(t.node_id), number),
                Action.PUT_REPAIR,
                job.piece_size,
                now,
            )
            for t, number in zip(targets, numbers, strict=False)
        ]
        planned = [
            PlannedTransfer(lim.serial, number, lim.node_id.raw, lim.piece_id, lim.expires_at)
            for lim, number in zip(limits, numbers, strict=True)
        ]
        await asyncio.to_thread(self._db.plan_transfers, job.root_piece_id, planned)
        uploads = [
            self._upload(target, limit, number, bytes(rebuilt[number]), rows.get(number))
            for target, limit, number in zip(targets, limits, numbers, strict=False)
        ]
        rebuilt.clear()
        results = await _first(uploads, need)
        stored = [piece for piece in results if piece is not None]
        dropped = [p.serial for p, r in zip(planned, results, strict=True) if r is None]
        result = await asyncio.to_thread(
            self._db.commit_repair,
            job.root_piece_id,
            stored,
            dropped,
            self._clock(),
            self._clock() - self._online_window,
        )
        if result.kept == 0:
            raise RepairFailed(f"no rebuilt piece was stored ({len(dropped)} uploads failed)")
        self._observe("repaired", 1)
        event(
            log,
            logging.INFO,
            f"repaired piece set {job.root_piece_id.hex()[:16]}: {job.healthy} -> "
            f"{result.healthy} healthy pieces",
            root_piece_id=job.root_piece_id,
            before=job.healthy,
            after=result.healthy,
            uploaded=result.kept,
            discarded=result.discarded,
        )
        return True

    async def _download(self, job: RepairJob) -> tuple[dict[int, bytes], dict[int, bytes]]:
        """k verified pieces (number -> bytes), healthy holders first, and the pieces found
        not to match their hash (number -> node id); `RepairFailed` if the retrievable ones
        cannot give k."""
        sources = sorted(
            (h for h in job.holders if h.retrievable and h.address is not None),
            key=lambda h: (not h.healthy, h.piece_number),
        )
        if len(sources) < job.k:
            raise RepairFailed(f"{len(sources)} retrievable pieces, {job.k} needed")
        fetched: dict[int, bytes] = {}
        bad: dict[int, bytes] = {}
        queue = list(sources)
        running: set[asyncio.Task[tuple[Holder, bytes | Exception | None]]] = set()
        # k at first, each failure replaced at once; the spares only as hedges, once the k have
        # not all come within HEDGE_AFTER (started at once, farmers served 40% more bytes).
        loop = asyncio.get_running_loop()
        width, hedge_at = job.k, loop.time() + HEDGE_AFTER
        try:
            while len(fetched) < job.k:
                while queue and len(running) + len(fetched) < width:
                    running.add(asyncio.create_task(self._fetch(queue.pop(0), job.piece_size)))
                if not running:
                    raise RepairFailed(f"only {len(fetched)} of {job.k} pieces could be fetched")
                wait = None if width > job.k else max(0.0, hedge_at - loop.time())
                done, running = await asyncio.wait(
                    running, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    width = job.k + self._config.download_spares
                for task in done:
                    holder, data = task.result()
                    if isinstance(data, bytes):
                        fetched[holder.piece_number] = data
                    elif data is not None:
                        bad[holder.piece_number] = holder.node_id
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running)
        return dict(list(fetched.items())[: job.k]), bad

    async def _fetch(
        self, holder: Holder, piece_size: int
    ) -> tuple[Holder, bytes | Exception | None]:
        """The piece's bytes; None if it could not be fetched; the error if it is bad."""
        assert holder.address is not None
        limit = self._signer.sign(
            NodeId(holder.node_id), holder.piece_id, Action.GET_REPAIR, holder.size, self._clock()
        )
        buffer = bytearray(holder.size)
        await self._throttle.take(holder.size)
        try:
            await self._pieces.get(holder.address, limit, memoryview(buffer))
            await asyncio.to_thread(verify_piece, buffer, holder.piece_hash)
        except PieceTransferError as exc:
            _skipped(holder, exc.code)
            return holder, (exc if exc.code in _BAD else None)
        except CoreError as exc:
            _skipped(holder, "hash-mismatch")
            return holder, exc
        self._observe("downloaded", holder.size)
        return holder, bytes(buffer)

    async def _upload(
        self,
        target: Target,
        limit: OrderLimit,
        number: int,
        data: bytes,
        replaced: Holder | None,
    ) -> NewPiece | None:
        digest = await asyncio.to_thread(digest_piece, data)
        await self._throttle.take(len(data))
        try:
            receipt = await self._pieces.put(target.address, limit, digest.piece_hash, data)
            _check_receipt(receipt, limit, target.public_key, digest.piece_hash, len(data))
        except PieceTransferError as exc:
            _skipped_target(target, exc.code)
            return None
        except CoreError as exc:
            _skipped_target(target, f"bad-receipt: {exc}")
            return None
        self._observe("uploaded", len(data))
        return NewPiece(
            serial=limit.serial,
            piece_number=number,
            node_id=target.node_id,
            piece_id=limit.piece_id,
            size=receipt.size,
            piece_hash=receipt.piece_hash,
            stored_at=receipt.stored_at,
            receipt=receipt.encode(),
            replaces=None if replaced is None else replaced.node_id,
        )


def _check_receipt(
    receipt: PieceReceipt, limit: OrderLimit, public_key: bytes, piece_hash: bytes, size: int
) -> None:
    """`CoreError` unless `receipt` is the target's signed word for exactly this piece."""
    receipt.verify_signature(public_key)
    if (receipt.serial, receipt.node_id, receipt.piece_id) != (
        limit.serial,
        limit.node_id,
        limit.piece_id,
    ):
        raise CoreError("receipt answers another order limit")
    if receipt.piece_hash != piece_hash or receipt.size != size:
        raise CoreError("receipt is for other bytes")


def _skipped(holder: Holder, code: str) -> None:
    event(
        log,
        logging.INFO,
        f"repair skipped piece {holder.piece_number} at {holder.address}: {code}",
        node_id=holder.node_id,
        code=code,
    )


def _skipped_target(target: Target, code: str) -> None:
    event(
        log,
        logging.INFO,
        f"repair upload to {target.address} failed: {code}",
        node_id=target.node_id,
        code=code,
    )


async def _first(uploads: Sequence[Awaitable[NewPiece | None]], need: int) -> list[NewPiece | None]:
    """Run `uploads` (in order of preference) until `need` succeed, then cancel the rest (the
    spares are for the long tail, not extra pieces); each one's result, None if it failed or
    was cancelled."""
    tasks = [asyncio.ensure_future(upload) for upload in uploads]
    stored = 0
    pending = set(tasks)
    try:
        while pending and stored < need:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            stored += sum(1 for task in done if task.result() is not None)
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
    return [None if task.cancelled() else task.result() for task in tasks]
