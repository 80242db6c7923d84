"""The queue of piece deletes (`DeletionStore`) on a real database (SQLite file, or PostgreSQL)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from metadisk.bridge.config import (
    DatabaseConfig,
    sqlite_url,
)
from metadisk.bridge.db import tables as t
from metadisk.bridge.db._shared import queue_deletes
from metadisk.bridge.db.deletion import DeletionStore, backoff
from metadisk.bridge.db.engine import Database
from metadisk.bridge.db.migrate import upgrade
from metadisk.devnet.postgres import postgres_database
from tests.bridge.conftest import ENGINES, postgres_url_or_skip

NOW = 1_800_000_000


@pytest.fixture(params=ENGINES)
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    with postgres_database(postgres_url_or_skip()) as url:
        yield url


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
