"""`PieceDeleter`'s lanes, with an in-memory queue and farmers played by a fake `PieceClient`.

Nothing here waits on a timer for its verdict: a hung farmer is a request that answers only when
the test says so (its timeout), so a cycle that waited for it before finishing the others' deletes
would never end, and the test's own bound fails it. Real farmers and databases:
tests/bridge/test_deletes.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import pytest

from metadisk.bridge.config import ChoresConfig
from metadisk.bridge.deletion.chore import PARALLEL, PER_NODE, DeletionReport, PieceDeleter
from metadisk.bridge.deletion.db import PieceDelete
from metadisk.bridge.orders.service import OrderSigner
from metadisk.core.identity import Identity
from metadisk.core.messages import Action, OrderLimit
from metadisk.wire.dataplane import PieceClient, PieceTransferError

START = 1_800_000_000


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> int:
        return self.now


@dataclass
class Row:
    node: bytes
    piece: bytes
    attempts: int = 0
    next_attempt_at: int = START


class Queue:
    """The `DeletionDB` protocol in memory (the SQL one: tests/bridge/test_deletes.py)."""

    def __init__(self, nodes: dict[bytes, str | None], offline: Sequence[bytes] = ()) -> None:
        self.nodes = nodes
        self.offline = set(offline)
        self.rows: dict[int, Row] = {}
        self.claims: list[list[int]] = []
        self._next_id = 1
        self._lock = threading.Lock()
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()

    def _touch(self) -> None:
        self._loop.call_soon_threadsafe(self._changed.set)  # called in the chore's threads

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until `condition` holds (checked after each change to the queue)."""
        while not condition():
            self._changed.clear()
            await self._changed.wait()

    def add(self, node: bytes, count: int) -> None:
        for _ in range(count):
            self.rows[self._next_id] = Row(node, self._next_id.to_bytes(32, "big"))
            self._next_id += 1

    def claim(self, due: int, until: int, limit: int) -> list[PieceDelete]:
        with self._lock:
            ready = sorted(
                (r.next_attempt_at, i) for i, r in self.rows.items() if r.next_attempt_at <= due
            )[:limit]
            taken = []
            for _, row_id in ready:
                row = self.rows[row_id]
                row.next_attempt_at = until
                address = self.nodes.get(row.node)
                taken.append(
                    PieceDelete(
                        row_id, row.node, row.piece, address, row.attempts, row.node in self.offline
                    )
                )
            self.claims.append([item.id for item in taken])
            self._touch()
            return taken

    def done(self, ids: Sequence[int]) -> None:
        with self._lock:
            for row_id in ids:
                del self.rows[row_id]
            self._touch()

    def retry_later(self, ids: Sequence[int], now: int, max_attempts: int) -> int:
        with self._lock:
            dropped = 0
            for row_id in ids:
                row = self.rows[row_id]
                if row.attempts + 1 >= max_attempts:
                    del self.rows[row_id]
                    dropped += 1
                else:
                    row.next_attempt_at = now + min(3600, 10 << row.attempts)
                    row.attempts += 1
            self._touch()
            return dropped

    def release(self, ids: Sequence[int], at: int) -> None:
        with self._lock:
            for row_id in ids:
                self.rows[row_id].next_attempt_at = at
            self._touch()

    def pending(self) -> int:
        return len(self.rows)

    def left(self, node: bytes) -> list[Row]:
        with self._lock:
            return [row for row in self.rows.values() if row.node == node]


Behaviour = Callable[[OrderLimit], Awaitable[bool]]


class Farmers(PieceClient):
    """Farmers by address: each answers a DELETE as its behaviour says; requests are counted."""

    def __init__(self) -> None:
        super().__init__()
        self.behaviours: dict[str, Behaviour] = {}
        self.sent: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.most_at_once: Counter[str] = Counter()
        self.most_in_flight = 0
        self.before_answer: Counter[str] = Counter()  # requests sent before its first answer
        self.answered: set[str] = set()

    async def delete(self, address: str, limit: OrderLimit) -> bool:
        assert limit.action == Action.DELETE
        self.sent[address] += 1
        if address not in self.answered:
            self.before_answer[address] += 1
        self.in_flight[address] += 1
        self.most_at_once[address] = max(self.most_at_once[address], self.in_flight[address])
        self.most_in_flight = max(self.most_in_flight, sum(self.in_flight.values()))
        try:
            result = await self.behaviours[address](limit)
            self.answered.add(address)
            return result
        except PieceTransferError as exc:
            if exc.status is not None:
                self.answered.add(address)
            raise
        finally:
            self.in_flight[address] -= 1


async def deletes(limit: OrderLimit) -> bool:
    await asyncio.sleep(0.001)
    return True


async def answers_500(limit: OrderLimit) -> bool:
    raise PieceTransferError("disk on fire", code="internal", status=500)


async def refuses(limit: OrderLimit) -> bool:
    raise PieceTransferError("cannot reach farmer", code="connection-failed")


def node(number: int) -> bytes:
    return bytes([number]) * 32


def address(number: int) -> str:
    return f"http://127.0.0.{number}:7777"


def deleter(
    queue: Queue, farmers: Farmers, clock: Clock, *, batch: int = 100, timeout: float = 10.0
) -> tuple[PieceDeleter, Counter[str]]:
    outcomes: Counter[str] = Counter()

    def observe(outcome: str, count: int = 1) -> None:
        outcomes[outcome] += count

    chores = ChoresConfig(delete_batch=batch, delete_timeout=timeout)
    signer = OrderSigner(Identity.generate(), 3600)
    return PieceDeleter(queue, signer, farmers, chores, clock, observe), outcomes


# The chore's own timeout, with a hung farmer: far beyond `bounded`, so that a cycle that waits for
# the hung farmer cannot be rescued by it.
HUNG = 300.0


async def bounded(cycle: Awaitable[DeletionReport]) -> DeletionReport:
    """The cycle, failed if it takes long: only a cycle waiting on a hung farmer would."""
    async with asyncio.timeout(30):
        return await cycle


async def test_healthy_farmers_finish_while_a_hung_one_is_still_waiting() -> None:
    clock = Clock()
    healthy = [1, 2, 3, 4]
    queue = Queue({node(n): address(n) for n in [*healthy, 5]})
    for _ in range(40):  # interleaved, as deletes of whole segments are queued
        for n in [*healthy, 5]:
            queue.add(node(n), 1)
    farmers = Farmers()
    for n in healthy:
        farmers.behaviours[address(n)] = deletes
    settled = asyncio.Event()

    async def hung(limit: OrderLimit) -> bool:
        # Answers (with its timeout) only once every healthy farmer's delete is settled.
        await queue.until(lambda: not any(queue.left(node(n)) for n in healthy))
        settled.set()
        raise PieceTransferError("farmer did not answer within 8 s", code="timeout")

    farmers.behaviours[address(5)] = hung
    chore, outcomes = deleter(queue, farmers, clock, batch=25, timeout=HUNG)
    report = await bounded(chore.cycle())

    assert settled.is_set()
    assert report == DeletionReport(deleted=160, failed=40, dropped=0)
    assert farmers.sent[address(5)] == 1  # one request: the rest never left
    assert all(farmers.sent[address(n)] == 40 for n in healthy)
    left = queue.left(node(5))
    assert len(left) == 40
    assert {(row.attempts, row.next_attempt_at) for row in left} == {(1, START + 10)}
    assert outcomes == Counter(deleted=160, failed=40, dropped=0)
    assert len(queue.claims) > 5  # claims went on while the hung request waited


async def test_a_farmer_is_asked_once_until_it_answers_then_a_few_at_once() -> None:
    clock = Clock()
    queue = Queue({node(n): address(n) for n in range(1, 11)})
    for n in range(1, 11):
        queue.add(node(n), 60)
    farmers = Farmers()
    for n in range(1, 11):
        farmers.behaviours[address(n)] = deletes
    chore, _ = deleter(queue, farmers, clock)
    report = await bounded(chore.cycle())

    assert report == DeletionReport(deleted=600, failed=0, dropped=0)
    assert queue.pending() == 0
    assert set(farmers.before_answer.values()) == {1}
    assert max(farmers.most_at_once.values()) <= PER_NODE
    assert farmers.most_in_flight <= PARALLEL


async def test_a_farmer_that_answers_with_errors_gets_every_delete() -> None:
    """An answer, even an error, says the farmer is there: each piece gets its attempt."""
    clock = Clock()
    queue = Queue({node(1): address(1), node(2): address(2)})
    queue.add(node(1), 12)
    queue.add(node(2), 12)
    farmers = Farmers()
    farmers.behaviours[address(1)] = answers_500
    farmers.behaviours[address(2)] = refuses
    chore, _ = deleter(queue, farmers, clock, batch=5)
    report = await bounded(chore.cycle())

    assert report == DeletionReport(deleted=0, failed=24, dropped=0)
    assert farmers.sent[address(1)] == 12
    assert farmers.sent[address(2)] == 1  # a refused connection: the rest wait
    assert {row.attempts for row in queue.left(node(1)) + queue.left(node(2))} == {1}


async def test_offline_and_unknown_nodes_are_not_asked() -> None:
    clock = Clock()
    queue = Queue({node(1): address(1), node(2): address(2), node(3): None}, offline=[node(2)])
    for n in (1, 2, 3):
        queue.add(node(n), 7)
    farmers = Farmers()
    farmers.behaviours[address(1)] = deletes
    chore, outcomes = deleter(queue, farmers, clock, batch=4)
    report = await bounded(chore.cycle())

    assert report == DeletionReport(deleted=7, failed=14, dropped=0)
    assert set(farmers.sent) == {address(1)}
    assert {row.attempts for row in queue.left(node(2)) + queue.left(node(3))} == {1}
    assert outcomes == Counter(deleted=7, failed=14, dropped=0)


async def test_each_delete_is_tried_once_a_cycle_however_long_it_runs() -> None:
    """A failed delete's backoff may pass while the cycle still runs: it waits for the next."""
    clock = Clock()
    queue = Queue({node(1): address(1)})
    queue.add(node(1), 10)
    farmers = Farmers()

    async def slow_500(limit: OrderLimit) -> bool:
        clock.now += 20  # past the first backoff (10 s), well inside the lease (330 s)
        raise PieceTransferError("busy", code="internal", status=500)

    farmers.behaviours[address(1)] = slow_500
    chore, _ = deleter(queue, farmers, clock, batch=3, timeout=100)
    report = await bounded(chore.cycle())

    assert report == DeletionReport(deleted=0, failed=10, dropped=0)
    assert farmers.sent[address(1)] == 10
    assert {row.attempts for row in queue.left(node(1))} == {1}


async def test_a_delete_whose_lease_runs_out_is_not_sent() -> None:
    clock = Clock()
    queue = Queue({node(1): address(1)})
    queue.add(node(1), 5)
    farmers = Farmers()

    async def slow(limit: OrderLimit) -> bool:
        clock.now += 55  # the lease is 60 s; the next request could not be answered within it
        return True

    farmers.behaviours[address(1)] = slow
    chore, _ = deleter(queue, farmers, clock, batch=5, timeout=10)
    report = await bounded(chore.cycle())

    assert report == DeletionReport(deleted=1, failed=0, dropped=0)
    assert farmers.sent[address(1)] == 1
    left = queue.left(node(1))
    assert {(row.attempts, row.next_attempt_at) for row in left} == {(0, START + 60)}


async def test_a_hung_farmer_holds_two_batches_and_gives_the_rest_back() -> None:
    clock = Clock()
    queue = Queue({node(1): address(1)})
    queue.add(node(1), 30)
    farmers = Farmers()

    async def hung(limit: OrderLimit) -> bool:
        # Until the cycle has claimed every row and found nothing more.
        await queue.until(lambda: len(queue.claims) > 1 and not queue.claims[-1])
        raise PieceTransferError("farmer did not answer within 8 s", code="timeout")

    farmers.behaviours[address(1)] = hung
    chore, _ = deleter(queue, farmers, clock, batch=5, timeout=HUNG)
    report = await bounded(chore.cycle())

    assert report == DeletionReport(deleted=0, failed=10, dropped=0)
    assert farmers.sent[address(1)] == 1
    left = Counter((row.attempts, row.next_attempt_at) for row in queue.left(node(1)))
    assert left == Counter({(1, START + 10): 10, (0, START + 1): 20})


@pytest.mark.parametrize("farmers_hung", [1, 3])
async def test_hung_farmers_at_the_head_of_the_queue_hold_nobody_back(farmers_hung: int) -> None:
    """A hung farmer's backlog comes due first (it failed before): the others' deletes behind it
    still go out in the same cycle, before its timeout."""
    clock = Clock()
    hung_nodes = list(range(1, farmers_hung + 1))
    healthy = list(range(10, 14))
    queue = Queue({node(n): address(n) for n in [*hung_nodes, *healthy]})
    for n in hung_nodes:
        queue.add(node(n), 150)
    for n in healthy:
        queue.add(node(n), 25)
    farmers = Farmers()
    for n in healthy:
        farmers.behaviours[address(n)] = deletes

    async def hung(limit: OrderLimit) -> bool:
        await queue.until(lambda: not any(queue.left(node(n)) for n in healthy))
        raise PieceTransferError("farmer stalled", code="stalled")

    for n in hung_nodes:
        farmers.behaviours[address(n)] = hung
    chore, _ = deleter(queue, farmers, clock, batch=20, timeout=HUNG)
    report = await bounded(chore.cycle())

    assert report.deleted == 100
    assert all(farmers.sent[address(n)] == 1 for n in hung_nodes)
    for n in hung_nodes:  # each held two batches (failed); the rest went back unsent
        assert Counter(row.attempts for row in queue.left(node(n))) == {1: 40, 0: 110}


async def test_deletes_that_finish_while_the_queue_is_written_are_settled() -> None:
    """Slow writes: the last requests end while the cycle is settling earlier ones."""
    clock = Clock()
    queue = Queue({node(n): address(n) for n in (1, 2)})
    queue.add(node(1), 3)
    queue.add(node(2), 3)
    farmers = Farmers()

    async def slow(limit: OrderLimit) -> bool:
        await asyncio.sleep(0.05)
        return True

    farmers.behaviours[address(1)] = slow
    farmers.behaviours[address(2)] = slow
    slow_done = queue.done

    def done(ids: Sequence[int]) -> None:
        time.sleep(0.15)  # longer than a request: the others end meanwhile
        slow_done(ids)

    queue.done = done  # type: ignore[method-assign]
    chore, _ = deleter(queue, farmers, clock)
    report = await bounded(chore.cycle())

    assert report == DeletionReport(deleted=6, failed=0, dropped=0)
    assert queue.pending() == 0


async def test_deletes_that_finish_while_the_queue_is_written_do_not_wait_for_a_hung_farmer() -> (
    None
):
    clock = Clock()
    queue = Queue({node(1): address(1), node(2): address(2)})
    for _ in range(6):
        queue.add(node(1), 1)
        queue.add(node(2), 1)
    farmers = Farmers()

    async def slow(limit: OrderLimit) -> bool:
        await asyncio.sleep(0.03)
        return True

    async def hung(limit: OrderLimit) -> bool:
        await queue.until(lambda: not queue.left(node(1)))
        raise PieceTransferError("farmer did not answer within 8 s", code="timeout")

    farmers.behaviours[address(1)] = slow
    farmers.behaviours[address(2)] = hung
    slow_done = queue.done

    def done(ids: Sequence[int]) -> None:
        time.sleep(0.05)  # longer than a request: others end meanwhile
        slow_done(ids)

    queue.done = done  # type: ignore[method-assign]
    chore, _ = deleter(queue, farmers, clock, timeout=HUNG)
    report = await bounded(chore.cycle())

    assert report == DeletionReport(deleted=6, failed=6, dropped=0)
