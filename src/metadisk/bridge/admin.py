"""An operator's actions on a bridge's database, for `metadisk bridge migrate`, `disqualify`,
`nodes` and `health`."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from metadisk.bridge.config import BridgeConfig
from metadisk.bridge.db.engine import Database
from metadisk.bridge.db.health import HealthStore
from metadisk.bridge.db.migrate import current_revision, head_revision, upgrade
from metadisk.bridge.db.overlay import OverlayStore
from metadisk.bridge.db.repair import RepairStore
from metadisk.bridge.health.service import NodeView, node_views
from metadisk.bridge.repair.db import HealthSummary


class NotReady(Exception):
    """A database a read-only command cannot use as it is: missing, or its schema not current."""


def migrate(config: BridgeConfig) -> str | None:
    """Bring the schema up to date; the revision it is at now."""
    db = Database(config.database)
    try:
        upgrade(db)
        return current_revision(db)
    finally:
        db.close()


def disqualify(config: BridgeConfig, node_id: bytes, now: int) -> bool:
    """Disqualify a node (no new pieces, skipped for downloads); False if unknown or already."""
    db = Database(config.database)
    try:
        return OverlayStore(db).disqualify(node_id, now)
    finally:
        db.close()


def node_table(config: BridgeConfig, now: int) -> list[NodeView]:
    """Every node with its standing: scores, vetting, suspension, pieces, uptime.

    `NotReady` if there is no database yet or its schema is not this version's: reading it
    anyway would fail with SQL errors, or leave an empty SQLite file behind.
    """
    _require_file(config.database.url)
    db = Database(config.database)
    try:
        _require_schema(db)
        return node_views(HealthStore(db), config.nodes, now)
    finally:
        db.close()


def network_health(config: BridgeConfig) -> HealthSummary:
    """The repair checker's last pass and the repair queue (`NotReady` as for `node_table`)."""
    _require_file(config.database.url)
    db = Database(config.database)
    try:
        _require_schema(db)
        return RepairStore(db).summary()
    finally:
        db.close()


def _require_file(url: str) -> None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # Database says what is wrong with it
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database)
    if not path.is_file():
        raise NotReady(
            f"no bridge database at {path}: start the bridge there first, or give its "
            "--data-dir, --config or --database"
        )


def _require_schema(db: Database) -> None:
    revision, head = current_revision(db), head_revision()
    if revision is None:
        raise NotReady("the database has no bridge schema: run `metadisk bridge migrate`")
    if revision != head:
        raise NotReady(
            f"the database schema is at revision {revision}, this bridge's is {head}: "
            "run `metadisk bridge migrate`"
        )
