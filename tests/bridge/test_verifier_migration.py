"""Migration 0005 (the passphrase verifier) keeps every project, key and bucket, and leaves
old projects without a verifier; downgrading drops only the column."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Connection, MetaData, inspect, text

from metadisk.bridge.db.engine import Database
from metadisk.bridge.db.migrate import alembic_config, current_revision, upgrade
from tests.bridge.test_migrations import _filled, db  # noqa: F401  (the fixture)


def _seed(conn: Connection) -> None:
    tables = MetaData()
    tables.reflect(conn)
    for name, given in [
        ("users", {"id": "u"}),
        ("projects", {"id": "p", "owner_id": "u"}),
        ("api_keys", {"key_id": "k", "project_id": "p"}),
        ("buckets", {"project_id": "p", "name": "b"}),
    ]:
        table = tables.tables[name]
        conn.execute(table.insert().values(_filled(table, given)))


def _counts(database: Database) -> list[int]:
    def work(conn: Connection) -> list[int]:
        return [
            conn.execute(text(f"SELECT COUNT(*) FROM {name}")).scalar_one()
            for name in ("users", "projects", "api_keys", "buckets")
        ]

    return database.read(work)


def test_old_projects_are_kept_without_a_verifier(db: Database) -> None:  # noqa: F811
    upgrade(db, "0004")
    db.write(_seed)
    upgrade(db, "0005")
    assert current_revision(db) == "0005"
    assert _counts(db) == [1, 1, 1, 1]
    query = text("SELECT passphrase_verifier FROM projects WHERE id = 'p'")
    assert db.read(lambda conn: conn.execute(query).scalar()) is None

    db.write(lambda conn: command.downgrade(alembic_config(conn), "0004"))
    assert _counts(db) == [1, 1, 1, 1]
    columns = db.read(lambda conn: [c["name"] for c in inspect(conn).get_columns("projects")])
    assert "passphrase_verifier" not in columns
    assert "salt" in columns
