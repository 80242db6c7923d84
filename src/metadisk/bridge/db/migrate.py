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
    if db.is_sqlite:
        _upgrade_sqlite(db, revision)
        return

    def work(conn: Connection) -> None:
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        command.upgrade(alembic_config(conn), revision)

    db.write(work)


def _upgrade_sqlite(db: Database, revision: str) -> None:
    """SQLite alters a table by copying it into a new one and dropping the old (Alembic's batch
    mode). With foreign keys on, dropping ``piece_sets`` cascaded into ``pieces`` and emptied it,
    so migrations run with them off (a pragma SQLite ignores inside a transaction, hence set
    before it begins), and the result is checked before it commits."""
    with db.engine.connect() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.execute("PRAGMA foreign_keys=OFF")
        try:
            conn.execution_options(metadisk_write=True)
            with conn.begin():
                command.upgrade(alembic_config(conn), revision)
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left rows with broken references: {broken[:5]}")
        finally:
            driver.execute("PRAGMA foreign_keys=ON")


def current_revision(db: Database) -> str | None:
    return db.read(lambda conn: MigrationContext.configure(conn).get_current_revision())


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
