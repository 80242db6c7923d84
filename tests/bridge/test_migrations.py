"""The Alembic migrations build exactly the schema in `bridge/db/tables.py`, on both engines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

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
