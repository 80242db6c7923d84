"""Schema migrations with Alembic, run by `metadisk bridge migrate` and on every start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from metadisk.bridge.db.engine import Database

_MIGRATIONS = Path(__file__).with_name("migrations")
_PG_LOCK_ID = 0x6D64_6272  # "mdbr": serializes bridge processes migrating one database


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision` in one transaction (DDL is transactional on both engines)."""

    def work(conn: Connection) -> None:
        if not db.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        command.upgrade(alembic_config(conn), revision)

    db.write(work)


def current_revision(db: Database) -> str | None:
    return db.read(lambda conn: MigrationContext.configure(conn).get_current_revision())


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
