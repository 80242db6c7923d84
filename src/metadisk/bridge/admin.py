"""An operator's actions on a bridge's database, for `metadisk bridge migrate`, `disqualify` and
`nodes`."""

from __future__ import annotations

from metadisk.bridge.config import BridgeConfig
from metadisk.bridge.db.engine import Database
from metadisk.bridge.db.health import HealthStore
from metadisk.bridge.db.migrate import current_revision, upgrade
from metadisk.bridge.db.overlay import OverlayStore
from metadisk.bridge.health.service import NodeView, node_views


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
    """Every node with its standing: scores, vetting, suspension, pieces, uptime."""
    db = Database(config.database)
    try:
        return node_views(HealthStore(db), config.nodes, now)
    finally:
        db.close()
