"""Sends queued piece deletes to farmers through the data plane's `PieceClient`.

Each request carries a DELETE order limit signed by the bridge. A deleted piece, or one the farmer
does not have (it never had it, or already deleted it), settles the delete; any other outcome
counts a failed attempt and backs off, and after `delete_max_attempts` failed attempts the delete
is dropped and the piece left to garbage collection by filters.

A farmer that hangs or is gone must not slow the deletes to the others, so each farmer has a lane
of its own in a cycle: one request at first, up to `PER_NODE` at a time after it has answered.
The first failure to reach it (timeout, stalled, connection failed, unresolvable) marks it failing
for the rest of the cycle, and its other claimed deletes count a failed attempt without being
sent: a hung farmer costs one request and one timeout per cycle, while claiming and sending go on
for the others. A farmer the bridge already knows to be offline is failing from the start. A lane
holds two batches at most: beyond that (a hung farmer's share, until its timeout), deletes go
back to the queue unsent, with no attempt counted.

Rows are claimed with a lease (and ``SKIP LOCKED`` on PostgreSQL), so any number of workers can run
this chore on one database without sending a delete twice while its lease holds. A cycle claims
only rows that were due when it began, so it tries each delete at most once, and a failed one
waits for its backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from metadisk.bridge.config import ChoresConfig
from metadisk.bridge.deletion.db import DeletionDB, PieceDelete
from metadisk.bridge.orders.service import OrderSigner
from metadisk.core.identity import NodeId
from metadisk.core.messages import Action
from metadisk.wire.dataplane import PieceClient, PieceTransferError

log = logging.getLogger(__name__)

PARALLEL = 32  # requests in flight, all farmers together
PER_NODE = 4  # requests in flight to one farmer, once it has answered in this cycle
# A lane's rows beyond this do not count as work in hand when deciding whether to claim more: a
# farmer slower than the rest gets its share of the queue without holding the others back.
WINDOW = 4 * PER_NODE
# Seconds the next claim waits for a first answer when no farmer in hand has answered yet: long
# enough for a healthy farmer's first answer, short enough that hung ones cost little.
FIRST_ANSWER = 0.05
# Failures that say the farmer cannot be reached, not that this piece failed: the farmer's other
# deletes wait for a later cycle.
UNREACHABLE = frozenset({"timeout", "stalled", "connection-failed", "unresolvable"})

Outcome = Literal["deleted", "missing", "failed", "unreachable"]


@dataclass(frozen=True, slots=True)
class DeletionReport:
    deleted: int  # settled: deleted, or the farmer did not have the piece
    failed: int  # failed attempts counted, dropped ones included
    dropped: int


class DeletionObserver(Protocol):
    """Told each delete's outcome: ``deleted``, ``missing``, ``failed`` or ``dropped``."""

    def __call__(self, outcome: str, count: int = 1) -> None: ...


@dataclass(eq=False, slots=True)
class _Lane:
    """One farmer's deletes in one cycle."""

    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    held: int = 0  # claimed rows not finished with
    answered: bool = False
    failing: bool = False


@dataclass(eq=False, slots=True)
class _Run:
    """One cycle's lanes, and the settlements not yet written."""

    started: int
    lanes: dict[bytes, _Lane] = field(default_factory=dict)
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(PARALLEL))
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # a lane's row finished
    answered: bool = False  # some farmer has answered in this cycle
    done: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    deleted_total: int = 0
    failed_total: int = 0
    dropped_total: int = 0

    @property
    def unsettled(self) -> bool:
        return bool(self.done or self.failed or self.released)


class PieceDeleter:
    """One cycle of the piece deletion chore: claim, send farmer by farmer, settle."""

    def __init__(
        self,
        db: DeletionDB,
        signer: OrderSigner,
        pieces: PieceClient,
        config: ChoresConfig,
        clock: Callable[[], int],
        observe: DeletionObserver = lambda outcome, count=1: None,
    ) -> None:
        self._clock = clock
        self._observe = observe
        self._db = db
        self._signer = signer
        self._pieces = pieces
        self._config = config

    async def cycle(self) -> DeletionReport:
        run = _Run(started=self._clock())
        lease = int(self._config.delete_timeout * 3) + 30
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                await self._room(run)
                await self._settle(run)
                until = self._clock() + lease
                limit = self._config.delete_batch
                batch = await asyncio.to_thread(self._db.claim, run.started, until, limit)
                if not batch:
                    break
                for item in batch:
                    if (admitted := self._admit(run, item)) is not None:
                        task = asyncio.create_task(self._one(run, *admitted, item, until))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
            # Settle what finished before each wait, including while settling: the last wait may
            # be a hung farmer's timeout.
            while tasks:
                await self._settle(run)
                if tasks and not run.unsettled:
                    await asyncio.wait(set(tasks), return_when=asyncio.FIRST_COMPLETED)
            await self._settle(run)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return DeletionReport(run.deleted_total, run.failed_total, run.dropped_total)

    async def _room(self, run: _Run) -> None:
        """Until the farmers in hand have room for another batch.

        Only farmers that answered in this cycle count: a hung one's rows wait in its lane
        while claiming goes on for the others. Until any farmer has answered in this cycle, the
        next batch waits for a first answer, or `FIRST_ANSWER` seconds at most.
        """
        while True:
            lanes = [lane for lane in run.lanes.values() if lane.held and not lane.failing]
            answered = [lane for lane in lanes if lane.answered]
            if not lanes or (run.answered and not answered):
                return
            if answered:
                in_hand = sum(min(lane.held, WINDOW) for lane in answered)
                if in_hand < min(self._config.delete_batch, WINDOW * len(answered)):
                    return
            run.changed.clear()
            try:
                async with asyncio.timeout(None if answered else FIRST_ANSWER):
                    await run.changed.wait()
            except TimeoutError:
                return

    def _admit(self, run: _Run, item: PieceDelete) -> tuple[_Lane, str] | None:
        """The lane and address to send `item` to; None when it is settled or given back."""
        lane = run.lanes.setdefault(item.node_id, _Lane())
        if item.address is None or item.offline:
            lane.failing = True
        if lane.failing or item.address is None:
            run.failed.append(item.id)  # an attempt that cannot be made now
            return None
        if lane.held >= 2 * self._config.delete_batch:
            # More than this farmer has taken so far in this cycle: back to the queue, so a hung
            # farmer does not hoard the rows of its share until its first timeout.
            run.released.append(item.id)
            return None
        lane.held += 1
        return lane, item.address

    async def _one(
        self, run: _Run, lane: _Lane, address: str, item: PieceDelete, until: int
    ) -> None:
        try:
            async with lane.gate:
                if lane.failing:
                    run.failed.append(item.id)
                    return
                if self._clock() + self._config.delete_timeout > until:
                    # Its lease ends before an answer could come: left to the next claimer.
                    return
                async with run.slots:
                    outcome = await self._send(item, address)
                if outcome == "unreachable":
                    lane.failing = True
                elif not lane.answered:
                    lane.answered = run.answered = True
                    for _ in range(PER_NODE - 1):
                        lane.gate.release()
                if outcome in ("deleted", "missing"):
                    run.done.append(item.id)
                else:
                    run.failed.append(item.id)
        finally:
            lane.held -= 1
            run.changed.set()

    async def _send(self, item: PieceDelete, address: str) -> Outcome:
        now = self._clock()
        limit = self._signer.sign(NodeId(item.node_id), item.piece_id, Action.DELETE, 0, now)
        try:
            async with asyncio.timeout(self._config.delete_timeout):
                deleted = await self._pieces.delete(address, limit)
        except PieceTransferError as exc:
            log.info("piece delete at %s failed: %s (%s)", address, exc.code, exc)
            return "unreachable" if exc.code in UNREACHABLE else "failed"
        except TimeoutError:
            log.info("piece delete at %s failed: timeout", address)
            return "unreachable"
        outcome: Outcome = "deleted" if deleted else "missing"
        self._observe(outcome)
        return outcome

    async def _settle(self, run: _Run) -> None:
        """Write what the lanes finished since the last call."""
        done, run.done = run.done, []
        failed, run.failed = run.failed, []
        released, run.released = run.released, []
        if done:
            await asyncio.to_thread(self._db.done, done)
            run.deleted_total += len(done)
        if released:
            # Due again just after this cycle began: not claimed again by it, but at once by
            # the next cycle or another worker.
            await asyncio.to_thread(self._db.release, released, run.started + 1)
        if failed:
            dropped = await asyncio.to_thread(
                self._db.retry_later, failed, self._clock(), self._config.delete_max_attempts
            )
            self._observe("failed", len(failed) - dropped)
            self._observe("dropped", dropped)
            run.failed_total += len(failed)
            run.dropped_total += dropped
