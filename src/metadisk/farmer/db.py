"""The farmer's metadata database: stdlib SQLite in WAL mode, owned by one thread, group commit.

Why SQLite and one thread: the metadata is small (serials, TTLs, counters, a journal of moves in
flight; piece bytes and Merkle leaves live in the piece files), every operation is a few row
reads or writes, and sqlite3 blocks, so it must stay off the event loop. One dedicated thread owns
the connection: calls queue up, no locking is needed, the loop never waits on disk.

Group commit: the thread takes every call waiting in the queue (up to `MAX_BATCH`) and runs them
in one transaction, each inside its own savepoint so one failing call (a reused serial) does not
undo the others, then commits once. A call that makes a promise to a peer (a serial used, a move
about to happen) is ``durable``: its batch commits with ``synchronous=FULL``, one WAL fsync for
all of them (~0.3-4 ms here, depending on the disk's load), and no caller hears back before that
commit. Other batches commit with ``NORMAL`` and become durable with the next FULL commit or
checkpoint, which is safe because the journal makes each of them repeatable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from metadisk.farmer.errors import Conflict
from metadisk.farmer.pieces.db import Expiring, JournalEntry, Move
from metadisk.farmer.usage.db import BridgeUsage, DayBandwidth
from metadisk.runtime.files import private_file, tighten_sqlite

T = TypeVar("T")

log = logging.getLogger("metadisk.farmer.db")

MAX_BATCH = 256
# how long a deferred journal cleanup (`finish_moves_later`) may wait for a transaction to join
DEFER = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS serials (
    serial BLOB PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS serials_expires ON serials (expires_at);
CREATE TABLE IF NOT EXISTS expirations (
    bridge BLOB NOT NULL,
    piece_id BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (bridge, piece_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS expirations_at ON expirations (expires_at);
CREATE TABLE IF NOT EXISTS usage (
    bridge BLOB PRIMARY KEY,
    stored INTEGER NOT NULL DEFAULT 0,
    pieces INTEGER NOT NULL DEFAULT 0,
    trash INTEGER NOT NULL DEFAULT 0,
    bandwidth_in INTEGER NOT NULL DEFAULT 0,
    bandwidth_out INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS bandwidth_days (
    day INTEGER NOT NULL,
    bridge BLOB NOT NULL,
    bandwidth_in INTEGER NOT NULL DEFAULT 0,
    bandwidth_out INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, bridge)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY,
    bridge BLOB NOT NULL,
    piece_id BLOB NOT NULL,
    src TEXT NOT NULL,
    dst TEXT,
    stored INTEGER NOT NULL,
    pieces INTEGER NOT NULL,
    trash INTEGER NOT NULL
);
"""


@dataclass(slots=True)
class _Call:
    fn: Callable[[sqlite3.Connection], Any]
    durable: bool
    # the caller's event loop, or None for a caller on another thread (a piece I/O thread),
    # whose concurrent future the database thread settles directly: no hop through a loop
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[Any] | concurrent.futures.Future[Any]


class FarmerDB:
    """Implements `pieces.db.PieceDB` and `usage.db.UsageDB` over one SQLite file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._full = False
        self._deferred: list[JournalEntry] = []  # see `finish_moves_later`
        self._deferred_lock = threading.Lock()

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(
            target=self._serve, args=(loop, opened), name="farmer-db", daemon=True
        )
        self._thread.start()
        await opened

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)  # after every call already queued
            await asyncio.to_thread(thread.join)

    async def _call(self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = False) -> T:
        if self._thread is None:
            raise RuntimeError("database is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Call(fn, durable, loop, future))
        return await future

    def _submit(
        self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = False
    ) -> concurrent.futures.Future[T]:
        """Queue a call from any thread; the database thread settles the returned future."""
        if self._thread is None:
            raise RuntimeError("database is not open")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put(_Call(fn, durable, None, future))
        return future

    # -- the database thread

    def _serve(self, loop: asyncio.AbstractEventLoop, opened: asyncio.Future[None]) -> None:
        try:
            # 0600 before SQLite opens it (its WAL and shm files take its mode): it lists every
            # piece this node holds.
            tighten_sqlite(private_file(self._path))
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
        except BaseException as exc:
            loop.call_soon_threadsafe(_settle, opened, False, exc)
            return
        loop.call_soon_threadsafe(_settle, opened, True, None)
        try:
            stopping = False
            while not stopping:
                try:
                    # Always a timeout: `finish_moves_later` does not wake this thread, so an
                    # idle thread must look for deferred cleanups at least every DEFER seconds.
                    call = self._queue.get(timeout=DEFER)
                except queue.Empty:
                    if self._deferred:
                        self._run_batch(conn, [])  # deferred cleanups found nothing to ride with
                    continue
                if call is None:
                    break
                batch = [call]
                while len(batch) < MAX_BATCH:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stopping = True
                        break
                    batch.append(more)
                self._run_batch(conn, batch)
            if self._deferred:
                self._run_batch(conn, [])
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Call]) -> None:
        durable = any(call.durable for call in batch)
        results: list[tuple[bool, Any]] = []
        try:
            if durable != self._full:  # may only change outside a transaction
                conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self._full = durable
            conn.execute("BEGIN IMMEDIATE")
            with self._deferred_lock:
                deferred, self._deferred = self._deferred, []
            if deferred:
                conn.execute("SAVEPOINT call")
                try:
                    _finish_moves(conn, deferred, [])
                except Exception as exc:
                    # the rows stay in the journal, and the next start replays them
                    conn.execute("ROLLBACK TO call")
                    log.warning("journal cleanup failed: %s", exc)
                conn.execute("RELEASE call")
            for call in batch:
                conn.execute("SAVEPOINT call")
                try:
                    results.append((True, call.fn(conn)))
                except Exception as exc:
                    conn.execute("ROLLBACK TO call")
                    results.append((False, exc))
                conn.execute("RELEASE call")
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            results = [(False, exc)] * len(batch)
        for call, (ok, value) in zip(batch, results, strict=True):
            if call.loop is None:
                _settle(call.future, ok, value)
            else:
                call.loop.call_soon_threadsafe(_settle, call.future, ok, value)

    # -- PieceDB

    async def serial_used(self, serial: bytes) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT 1 FROM serials WHERE serial = ?", (serial,)).fetchone()
            return row is not None

        return await self._call(run)

    async def begin_put(
        self, serial: bytes, serial_expires_at: int, piece_expires_at: int, move: Move
    ) -> int:
        return await asyncio.wrap_future(
            self.begin_put_soon(serial, serial_expires_at, piece_expires_at, move)
        )

    def begin_put_soon(
        self, serial: bytes, serial_expires_at: int, piece_expires_at: int, move: Move
    ) -> concurrent.futures.Future[int]:
        def run(conn: sqlite3.Connection) -> int:
            try:
                conn.execute(
                    "INSERT INTO serials (serial, expires_at) VALUES (?, ?)",
                    (serial, serial_expires_at),
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict("order limit serial already used", code="serial-reused") from exc
            if piece_expires_at:
                conn.execute(
                    "INSERT OR REPLACE INTO expirations (bridge, piece_id, expires_at)"
                    " VALUES (?, ?, ?)",
                    (move.bridge, move.piece_id, piece_expires_at),
                )
            return _journal(conn, move)

        return self._submit(run, durable=True)

    async def begin_moves(self, moves: list[Move]) -> list[int]:
        def run(conn: sqlite3.Connection) -> list[int]:
            return [_journal(conn, move) for move in moves]

        return await self._call(run, durable=True)

    async def finish_moves(self, done: list[JournalEntry], undone: list[JournalEntry]) -> None:
        await asyncio.wrap_future(self.finish_moves_soon(done, undone))

    def finish_moves_soon(
        self, done: list[JournalEntry], undone: list[JournalEntry]
    ) -> concurrent.futures.Future[None]:
        return self._submit(lambda conn: _finish_moves(conn, done, undone))

    def finish_moves_later(self, done: list[JournalEntry]) -> None:
        """`finish_moves(done, [])` for moves nobody waits on (stored pieces, receipt sent): it
        joins the next transaction the database thread runs for any caller, at most `DEFER`
        seconds from now, instead of waking the thread for one of its own. Until then the rows
        stay in the journal, which is safe: a crash replays them at the next start."""
        if self._thread is None:
            raise RuntimeError("database is not open")
        with self._deferred_lock:
            self._deferred.extend(done)

    async def journal(self) -> list[JournalEntry]:
        def run(conn: sqlite3.Connection) -> list[JournalEntry]:
            rows = conn.execute(
                "SELECT id, bridge, piece_id, src, dst, stored, pieces, trash FROM journal"
                " ORDER BY id"
            ).fetchall()
            return [JournalEntry(row[0], Move(*row[1:])) for row in rows]

        return await self._call(run)

    async def expired(self, now: int, limit: int) -> list[Expiring]:
        def run(conn: sqlite3.Connection) -> list[Expiring]:
            rows = conn.execute(
                "SELECT bridge, piece_id FROM expirations WHERE expires_at <= ?"
                " ORDER BY expires_at LIMIT ?",
                (now, limit),
            ).fetchall()
            return [Expiring(bridge, piece_id) for bridge, piece_id in rows]

        return await self._call(run)

    async def forget_expiration(self, bridge: bytes, piece_id: bytes) -> None:
        await self._call(lambda conn: _forget_expiration(conn, bridge, piece_id))

    async def prune_serials(self, now: int) -> int:
        def run(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM serials WHERE expires_at < ?", (now,)).rowcount

        return await self._call(run)

    # -- UsageDB

    async def usage(self) -> dict[bytes, BridgeUsage]:
        def run(conn: sqlite3.Connection) -> dict[bytes, BridgeUsage]:
            rows = conn.execute(
                "SELECT bridge, stored, pieces, trash, bandwidth_in, bandwidth_out FROM usage"
            ).fetchall()
            return {row[0]: BridgeUsage(*row[1:]) for row in rows}

        return await self._call(run)

    async def add_bandwidth(self, deltas: dict[tuple[int, bytes], tuple[int, int]]) -> None:
        totals: dict[bytes, list[int]] = {}
        for (_, bridge), (bw_in, bw_out) in deltas.items():
            total = totals.setdefault(bridge, [0, 0])
            total[0] += bw_in
            total[1] += bw_out

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO usage (bridge, bandwidth_in, bandwidth_out) VALUES (?, ?, ?)"
                " ON CONFLICT (bridge) DO UPDATE SET"
                " bandwidth_in = bandwidth_in + excluded.bandwidth_in,"
                " bandwidth_out = bandwidth_out + excluded.bandwidth_out",
                [(bridge, bw_in, bw_out) for bridge, (bw_in, bw_out) in totals.items()],
            )
            conn.executemany(
                "INSERT INTO bandwidth_days (day, bridge, bandwidth_in, bandwidth_out)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (day, bridge) DO UPDATE SET"
                " bandwidth_in = bandwidth_in + excluded.bandwidth_in,"
                " bandwidth_out = bandwidth_out + excluded.bandwidth_out",
                [(day, bridge, i, o) for (day, bridge), (i, o) in deltas.items()],
            )

        await self._call(run)

    async def bandwidth_days(self, since: int) -> list[DayBandwidth]:
        def run(conn: sqlite3.Connection) -> list[DayBandwidth]:
            rows = conn.execute(
                "SELECT day, SUM(bandwidth_in), SUM(bandwidth_out) FROM bandwidth_days"
                " WHERE day >= ? GROUP BY day ORDER BY day",
                (since,),
            ).fetchall()
            return [DayBandwidth(*row) for row in rows]

        return await self._call(run)


def _settle(
    future: asyncio.Future[Any] | concurrent.futures.Future[Any], ok: bool, value: Any
) -> None:
    if future.done():  # the caller gave up waiting (cancelled)
        return
    try:
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    except (asyncio.InvalidStateError, concurrent.futures.InvalidStateError):
        pass  # a concurrent future cancelled between the check and now: nobody is waiting


def _finish_moves(
    conn: sqlite3.Connection, done: list[JournalEntry], undone: list[JournalEntry]
) -> None:
    for entry in done:
        move = entry.move
        conn.execute(
            "INSERT INTO usage (bridge, stored, pieces, trash) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (bridge) DO UPDATE SET stored = stored + excluded.stored,"
            " pieces = pieces + excluded.pieces, trash = trash + excluded.trash",
            (move.bridge, move.stored, move.pieces, move.trash),
        )
        if move.pieces < 0:  # the piece left the store: its TTL no longer applies
            _forget_expiration(conn, move.bridge, move.piece_id)
    for entry in undone:
        if entry.move.pieces > 0:  # an upload that never landed: no TTL to keep
            _forget_expiration(conn, entry.move.bridge, entry.move.piece_id)
    conn.executemany("DELETE FROM journal WHERE id = ?", [(e.id,) for e in [*done, *undone]])


def _journal(conn: sqlite3.Connection, move: Move) -> int:
    cursor = conn.execute(
        "INSERT INTO journal (bridge, piece_id, src, dst, stored, pieces, trash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (move.bridge, move.piece_id, move.src, move.dst, move.stored, move.pieces, move.trash),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _forget_expiration(conn: sqlite3.Connection, bridge: bytes, piece_id: bytes) -> None:
    conn.execute("DELETE FROM expirations WHERE bridge = ? AND piece_id = ?", (bridge, piece_id))
