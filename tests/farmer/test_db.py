"""The metadata database: deferred journal cleanups ride along with other transactions."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from metadisk.farmer.db import FarmerDB
from metadisk.farmer.pieces.db import JournalEntry, Move

BRIDGE = bytes([2]) * 32


def stored_move(name: str, size: int) -> Move:
    return Move(BRIDGE, bytes(32), f"tmp/{name}", f"pieces/{name}", stored=size, pieces=1)


async def test_deferred_cleanup_joins_the_next_transaction(tmp_path: Path) -> None:
    db = FarmerDB(tmp_path / "farmer.db")
    await db.open()
    try:
        move = stored_move("a", 10)
        row = await db.begin_put(bytes([1]) * 16, 100, 0, move)
        db.finish_moves_later([JournalEntry(row, move)])
        assert await db.journal() == []  # this call's transaction applied it first
        assert (await db.usage())[BRIDGE].stored == 10
        move = stored_move("b", 5)
        row = await db.begin_put(bytes([2]) * 16, 100, 0, move)
        db.finish_moves_later([JournalEntry(row, move)])
    finally:
        await db.close()  # applies what is still deferred
    db = FarmerDB(tmp_path / "farmer.db")
    await db.open()
    try:
        assert await db.journal() == []
        assert (await db.usage())[BRIDGE].stored == 15
    finally:
        await db.close()


async def test_deferred_cleanup_runs_on_its_own_when_idle(tmp_path: Path) -> None:
    db = FarmerDB(tmp_path / "farmer.db")
    await db.open()
    try:
        move = stored_move("a", 7)
        row = await db.begin_put(bytes([1]) * 16, 100, 0, move)
        db.finish_moves_later([JournalEntry(row, move)])
        # no other call comes: the database thread wakes up by itself, within DEFER seconds;
        # watched through a second connection, since any call of ours would apply it
        async with asyncio.timeout(30):
            while journal_rows(tmp_path / "farmer.db"):  # noqa: ASYNC110 - nothing to wait on
                await asyncio.sleep(0.05)
    finally:
        await db.close()


def journal_rows(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        count: int = conn.execute("SELECT COUNT(*) FROM journal").fetchone()[0]
        return count
