"""Connecting to the database and running transactions with the right locking and retries.

SQLite (the embedded default) runs in WAL mode with foreign keys on. Readers never block; writers
start with ``BEGIN IMMEDIATE`` so that a transaction never upgrades from reader to writer (which
fails at once with "database is locked" instead of waiting), and one lock per process queues
writers in-process instead of letting SQLite's busy handler sleep them in steps.

PostgreSQL runs at READ COMMITTED; transactions that lose a race (serialization failure, deadlock,
or the unique index on visible object keys) are retried from the start.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from metadisk.bridge.config import DatabaseConfig
from metadisk.runtime.files import private_file, tighten_sqlite

T = TypeVar("T")

RETRIES = 20
_RETRY_CONSTRAINTS = ("uq_objects_committed_key",)


class Database:
    """An engine plus `read` and `write` transactions; the only door to the database."""

    def __init__(self, config: DatabaseConfig) -> None:
        self.url = _normalize_url(config.url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            _private_sqlite_file(self.url)
        self.engine = _make_engine(self.url, config)
        self._write_lock = threading.Lock() if self.is_sqlite else contextlib.nullcontext()

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in a write transaction, retried from the start when it loses a race."""
        for attempt in range(RETRIES):
            try:
                with self._write_lock, self.engine.connect() as conn:
                    conn.execution_options(metadisk_write=True)
                    with conn.begin():
                        return work(conn)
            except DBAPIError as exc:
                if attempt == RETRIES - 1 or not _retryable(exc):
                    raise
            # Jittered, growing backoff so that racing transactions do not meet again in lockstep.
            time.sleep(random.uniform(0, 0.005 * min(attempt + 1, 10)))
        raise AssertionError("unreachable")

    def read(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in a read-only transaction (a consistent snapshot on both engines)."""
        with self.engine.connect() as conn, conn.begin():
            return work(conn)

    def pool_use(self) -> dict[str, int]:
        """Connections of this process: checked out, idle in the pool, and overflow."""
        pool = self.engine.pool
        if not isinstance(pool, QueuePool):
            return {}
        return {
            "in_use": pool.checkedout(),
            "idle": pool.checkedin(),
            "overflow": max(0, pool.overflow()),
        }

    def close(self) -> None:
        self.engine.dispose()


def _normalize_url(url: str) -> str:
    # psycopg 3 is the driver we ship; plain postgresql:// would pick psycopg2.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _private_sqlite_file(url: str) -> None:
    """Create the database file 0600 before SQLite does (SQLite would make it 0644, and gives
    its WAL and shared-memory files the database's mode), and tighten one found looser: it holds
    every account's password hash and API key's wrapped secret."""
    try:
        name = make_url(url).database
    except ArgumentError:
        return  # create_engine says what is wrong with it
    if name in (None, "", ":memory:") or name.startswith("file:"):
        return
    path = Path(name)
    if path.parent.is_dir():
        private_file(path)
        tighten_sqlite(path)


def _make_engine(url: str, config: DatabaseConfig) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        synchronous = config.sqlite_synchronous.upper()
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"invalid sqlite_synchronous {config.sqlite_synchronous!r}")

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
            # Take transactions out of pysqlite's hands: we emit BEGIN ourselves, below.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            write = conn.get_execution_options().get("metadisk_write", False)
            # Straight to the driver: SQLAlchemy's execution path costs more than BEGIN itself.
            conn.connection.driver_connection.execute(  # type: ignore[union-attr]
                "BEGIN IMMEDIATE" if write else "BEGIN"
            )

        return engine
    if url.startswith("postgresql"):
        return create_engine(
            url,
            pool_size=config.pool_size,
            max_overflow=config.pool_size * 4,
            pool_pre_ping=True,
        )
    raise ValueError(f"unsupported database URL {url.split(':', 1)[0]!r}: use sqlite or postgresql")


def _retryable(exc: DBAPIError) -> bool:
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in ("40001", "40P01"):
        return True
    if sqlstate == "23505":
        diag = getattr(orig, "diag", None)
        return getattr(diag, "constraint_name", None) in _RETRY_CONSTRAINTS
    message = str(orig).lower()
    return "database is locked" in message or "database table is locked" in message
