"""Piece deletes on a real database (SQLite file, or PostgreSQL) and to real farmer processes.

The queue (`DeletionStore`) is checked on its own first. Then the bridge's services run in this
process and send deletes to farmers that are real processes on loopback, each holding real
pieces, one of them hung with SIGSTOP (its port still accepts connections; nothing answers).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from metadisk.bridge.config import (
    BridgeConfig,
    ChoresConfig,
    DatabaseConfig,
    NodesConfig,
)
from metadisk.bridge.db import tables as t
from metadisk.bridge.db._shared import queue_deletes
from metadisk.bridge.db.deletion import DeletionStore, backoff
from metadisk.bridge.db.engine import Database
from metadisk.bridge.db.migrate import upgrade
from metadisk.bridge.deletion.chore import DeletionReport, PieceDeleter
from metadisk.bridge.peer import Bridge
from metadisk.core.identity import Identity
from metadisk.core.merkle import digest_piece
from metadisk.core.messages import Action, OrderLimit
from metadisk.devnet.farmer import FarmerProcess, prepare_farmer
from metadisk.farmer.config import TrustedBridge
from metadisk.wire.dataplane import PieceClient
from metadisk.wire.dataplane.contract import PIECE
from tests.bridge.inprocess import check_in
from tests.metrics import scrape

NOW = 1_800_000_000


# -- the queue ---------------------------------------------------------------------------------


@pytest.fixture
def db(fresh_database: str) -> Iterator[Database]:
    database = Database(DatabaseConfig(fresh_database))
    upgrade(database)
    yield database
    database.close()


def _node(db: Database, number: int, *, offline: bool = False) -> bytes:
    node_id = bytes([number]) * 32
    row = {
        "node_id": node_id,
        "public_key": node_id,
        "address": f"http://127.0.0.1:{7000 + number}",
        "last_net": "127.0.0",
        "allocated": 1 << 30,
        "free": 1 << 30,
        "version": "test",
        "contact_timestamp": NOW,
        "last_contact_at": NOW,
        "created_at": NOW,
        "offline_since": NOW if offline else None,
    }
    db.write(lambda conn: conn.execute(insert(t.nodes).values(**row)))
    return node_id


def _queue(db: Database, node_id: bytes, count: int, at: int = NOW) -> None:
    targets = [(node_id, os.urandom(32)) for _ in range(count)]
    db.write(lambda conn: queue_deletes(conn, targets, at))


def _rows(db: Database) -> dict[int, tuple[int, int]]:
    """id -> (attempts, next_attempt_at)."""
    d = t.piece_deletes.c
    query = select(d.id, d.attempts, d.next_attempt_at)
    return {r.id: (r.attempts, r.next_attempt_at) for r in db.read(lambda c: c.execute(query))}


def test_claim_takes_what_was_due_and_says_where_it_goes(db: Database) -> None:
    store = DeletionStore(db)
    online, offline = _node(db, 1), _node(db, 2, offline=True)
    _queue(db, online, 2)
    _queue(db, offline, 1)
    _queue(db, bytes(32), 1)  # a node the directory does not know
    _queue(db, online, 1, at=NOW + 100)  # not due yet

    claimed = store.claim(NOW, NOW + 60, 10)
    assert len(claimed) == 4
    by_node = {item.node_id: item for item in claimed}
    assert by_node[online].address == "http://127.0.0.1:7001" and not by_node[online].offline
    assert by_node[offline].offline
    assert by_node[bytes(32)].address is None
    # Leased until NOW + 60: nobody gets them again before, whatever the claimer's clock.
    assert store.claim(NOW + 59, NOW + 120, 10) == []
    again = store.claim(NOW + 60, NOW + 120, 10)
    assert {item.id for item in again} == {item.id for item in claimed}


def test_retry_later_backs_off_and_drops_at_the_last_attempt(db: Database) -> None:
    store = DeletionStore(db)
    node_id = _node(db, 1)
    _queue(db, node_id, 6)
    ids = sorted(_rows(db))
    d = t.piece_deletes.c
    for row_id, attempts in zip(ids, [0, 0, 1, 2, 8, 9], strict=True):
        db.write(
            lambda conn, i=row_id, a=attempts: conn.execute(
                update(t.piece_deletes).where(d.id == i).values(attempts=a)
            )
        )
    assert store.retry_later(ids, NOW, 10) == 1
    rows = _rows(db)
    assert rows == {
        ids[0]: (1, NOW + 10),
        ids[1]: (1, NOW + 10),
        ids[2]: (2, NOW + 20),
        ids[3]: (3, NOW + 40),
        ids[4]: (9, NOW + backoff(8)),
    }
    assert backoff(8) == 2560 and backoff(9) == backoff(50) == 3600


def test_release_gives_rows_back_without_an_attempt(db: Database) -> None:
    store = DeletionStore(db)
    _queue(db, _node(db, 1), 3)
    claimed = store.claim(NOW, NOW + 60, 10)
    store.release([item.id for item in claimed[:2]], NOW + 1)
    assert sorted(_rows(db).values()) == [(0, NOW + 1), (0, NOW + 1), (0, NOW + 60)]
    assert store.claim(NOW, NOW + 60, 10) == []  # not due again for the cycle that began at NOW
    assert len(store.claim(NOW + 1, NOW + 60, 10)) == 2


def test_competing_claimers_never_share_a_row(db: Database) -> None:
    store = DeletionStore(db)
    for number in range(1, 5):
        _queue(db, _node(db, number), 100)

    def claim_all() -> list[int]:
        taken: list[int] = []
        while batch := store.claim(NOW, NOW + 60, 7):
            taken += [item.id for item in batch]
        return taken

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: claim_all(), range(4)))
    every = [row_id for taken in results for row_id in taken]
    assert len(every) == len(set(every)) == 400


# -- real farmers ------------------------------------------------------------------------------

FARMERS = 5  # one hung, four healthy
PIECES = 12  # stored on each


class CountingPieces(PieceClient):
    """The real client, counting the DELETE requests it sends to each address."""

    def __init__(self) -> None:
        super().__init__()
        self.deletes: dict[str, int] = {}

    async def delete(self, address: str, limit: OrderLimit) -> bool:
        self.deletes[address] = self.deletes.get(address, 0) + 1
        return await super().delete(address, limit)


@pytest.fixture
async def bridge(fresh_database: str, tmp_path: Path) -> AsyncIterator[Bridge]:
    config = BridgeConfig(
        data_dir=tmp_path / "bridge",
        database=DatabaseConfig(fresh_database),
        nodes=NodesConfig(single_host=True, private_addresses=True, difficulty=0),
        # Small batches: one cycle needs many claims, the hung farmer's request outstanding.
        chores=ChoresConfig(delete_batch=7, delete_timeout=3),
    )
    peer = Bridge(config, Identity.generate())
    peer.migrate()
    yield peer
    await peer.aclose()


@pytest.fixture
async def farmers(bridge: Bridge, tmp_path: Path) -> AsyncIterator[list[FarmerProcess]]:
    identity = bridge.identity
    # The farmers check in with no bridge of their own (nothing listens there): this test
    # checks them in through the bridge's service, which pings each back.
    trusted = TrustedBridge(identity.node_id, identity.public_key, "http://127.0.0.1:9")
    processes = [
        FarmerProcess(*prepare_farmer(tmp_path / f"farmer-{n}", [trusted], checkin_interval=3600))
        for n in range(FARMERS)
    ]
    try:
        await asyncio.gather(*(farmer.start() for farmer in processes))
        yield processes
    finally:
        for farmer in processes:
            if farmer.running:
                os.kill(farmer.pid, signal.SIGCONT)  # harmless if it was never stopped
        await asyncio.gather(*(f.stop() for f in processes if f.running), return_exceptions=True)


async def _store_pieces(bridge: Bridge, farmer: FarmerProcess, count: int) -> list[bytes]:
    """`count` pieces on `farmer`, each put under an order limit of the bridge, as uploads are."""
    await check_in(bridge, farmer, 1 << 30)
    now = int(time.time())
    pieces = []
    for _ in range(count):
        data, piece_id = os.urandom(2000), os.urandom(32)
        limit = bridge.worker.signer.sign(
            farmer.identity.node_id, piece_id, Action.PUT, len(data), now
        )
        await bridge.worker.pieces.put(farmer.url, limit, digest_piece(data).piece_hash, data)
        pieces.append(piece_id)
    return pieces


def _piece_files(farmer: FarmerProcess) -> int:
    return sum(1 for path in farmer.data_dir.glob("pieces/*/*/*") if path.is_file())


@pytest.fixture
async def pieces() -> AsyncIterator[CountingPieces]:
    client = CountingPieces()
    yield client
    await client.aclose()


async def test_a_hung_farmer_costs_one_request_and_holds_nobody_back(
    bridge: Bridge, farmers: list[FarmerProcess], pieces: CountingPieces
) -> None:
    for chore in bridge.worker.chores:
        chore.pause()
    stored = await asyncio.gather(*(_store_pieces(bridge, f, PIECES) for f in farmers))
    hung, healthy = farmers[0], farmers[1:]
    assert all(_piece_files(farmer) == PIECES for farmer in farmers)
    # Queued as a deleted object's segments queue them, one piece on each farmer after another:
    # every claim holds rows of the hung farmer among the others'.
    targets = [
        (farmer.identity.node_id.raw, pieces_of[index])
        for index in range(PIECES)
        for farmer, pieces_of in zip(farmers, stored, strict=True)
    ]
    await asyncio.to_thread(
        bridge.db.write, lambda conn: queue_deletes(conn, targets, int(time.time()))
    )
    outcomes: dict[str, int] = {}

    def observe(outcome: str, count: int = 1) -> None:
        outcomes[outcome] = outcomes.get(outcome, 0) + count

    worker = bridge.worker
    deleter = PieceDeleter(
        worker.deletion_store, worker.signer, pieces, bridge.config.chores, worker.clock, observe
    )
    os.kill(hung.pid, signal.SIGSTOP)
    try:
        report = await deleter.cycle()
        # Every healthy farmer's pieces are gone, in this one cycle; the hung one has all its own.
        assert report == DeletionReport(deleted=len(healthy) * PIECES, failed=PIECES, dropped=0)
        assert [_piece_files(farmer) for farmer in healthy] == [0] * len(healthy)
        assert _piece_files(hung) == PIECES
        assert outcomes == {"deleted": len(healthy) * PIECES, "failed": PIECES, "dropped": 0}
        # One request to the hung farmer, however many claims the cycle made.
        assert pieces.deletes[hung.url] == 1
        assert all(pieces.deletes[farmer.url] == PIECES for farmer in healthy)
        d = t.piece_deletes.c
        query = select(d.node_id, d.attempts)
        left = await asyncio.to_thread(bridge.db.read, lambda c: c.execute(query).all())
        assert {row.node_id for row in left} == {hung.identity.node_id.raw}
        assert len(left) == PIECES and {row.attempts for row in left} == {1}
    finally:
        os.kill(hung.pid, signal.SIGCONT)

    # Awake again, it answered at most that one request (served now, or dropped with its
    # connection).
    served = await scrape(hung.url)
    assert served.total("metadisk_http_requests_total", route=PIECE, method="DELETE") <= 1

    # Its deletes come round again (made due at once here, not after their backoff), and settle.
    await asyncio.to_thread(
        bridge.db.write,
        lambda conn: conn.execute(update(t.piece_deletes).values(next_attempt_at=0)),
    )
    again = await deleter.cycle()
    assert (again.deleted, again.failed) == (PIECES, 0)
    assert _piece_files(hung) == 0
    assert worker.deletion_store.pending() == 0
