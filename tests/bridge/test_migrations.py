"""The Alembic migrations build exactly the schema in `bridge/db/tables.py`, on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, MetaData, Table, text

from metadisk.bridge.config import DatabaseConfig, sqlite_url
from metadisk.bridge.db.engine import Database
from metadisk.bridge.db.migrate import alembic_config, current_revision, head_revision, upgrade
from metadisk.bridge.db.tables import metadata
from metadisk.devnet.postgres import postgres_database
from tests.bridge.conftest import ENGINES, postgres_url_or_skip


@pytest.fixture(params=ENGINES)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(DatabaseConfig(sqlite_url(tmp_path)))
        yield database
        database.close()
        return
    with postgres_database(postgres_url_or_skip()) as url:
        database = Database(DatabaseConfig(url))
        yield database
        database.close()


def test_migrations_match_the_tables(db: Database) -> None:
    assert current_revision(db) is None
    upgrade(db)
    assert current_revision(db) == head_revision()
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_downgrade_and_upgrade_again(db: Database) -> None:
    upgrade(db)
    db.write(lambda conn: command.downgrade(alembic_config(conn), "base"))
    assert current_revision(db) is None
    upgrade(db)  # and again, idempotent
    upgrade(db)
    assert current_revision(db) == head_revision()


def test_upgrading_keeps_every_row_of_tables_that_are_rebuilt(db: Database) -> None:
    """0003 rebuilds ``piece_sets`` on SQLite (batch mode: copy, drop, rename); with foreign keys
    on, the drop cascaded into ``pieces`` and an upgraded bridge forgot every stored piece."""
    upgrade(db, "0002")
    root = b"r" * 32

    def seed(conn: Connection) -> None:
        tables = MetaData()
        tables.reflect(conn)
        chain = [
            ("users", {"id": "u"}),
            ("projects", {"id": "p", "owner_id": "u"}),
            ("buckets", {"project_id": "p", "name": "b"}),
            ("objects", {"stream_id": "s", "project_id": "p", "bucket": "b"}),
            ("segments", {"stream_id": "s", "index": 0, "root_piece_id": root}),
            ("piece_sets", {"root_piece_id": root}),
            ("pieces", {"root_piece_id": root, "piece_number": 0}),
            # a set no segment uses: 0003 drops it, and its piece with it
            ("piece_sets", {"root_piece_id": b"o" * 32}),
            ("pieces", {"root_piece_id": b"o" * 32, "piece_number": 0}),
        ]
        for name, given in chain:
            table = tables.tables[name]
            conn.execute(table.insert().values(_filled(table, given)))

    db.write(seed)
    upgrade(db)
    kept = db.read(lambda conn: conn.execute(text("SELECT root_piece_id FROM pieces")).all())
    assert [bytes(row[0]) for row in kept] == [root]


def _filled(table: Table, given: dict[str, object]) -> dict[str, object]:
    """A row of `table`: `given`, and a value of the right type in every other required column
    (the ids of the chain are given as text and turned into bytes where the column is binary)."""
    row: dict[str, object] = {}
    for column in table.columns:
        kind = column.type.python_type
        if column.name in given:
            value = given[column.name]
            row[column.name] = (
                value.encode().ljust(16, b"-")
                if kind is bytes and isinstance(value, str)
                else value
            )
        elif not column.nullable and column.server_default is None:
            row[column.name] = {int: 1, str: "x", bytes: b"x" * 16, bool: False}[kind]
    return row
