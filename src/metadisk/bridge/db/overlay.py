"""The node directory in SQL."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict

from sqlalchemy import func, select, update

from metadisk.bridge.db import tables as t
from metadisk.bridge.db._shared import upsert
from metadisk.bridge.db.engine import Database
from metadisk.bridge.overlay.db import Candidate, NodeRecord

_n = t.nodes.c
# Columns a check-in refreshes; created_at and disqualified_at survive it.
_CONTACT_COLUMNS = (
    "public_key",
    "address",
    "last_net",
    "allocated",
    "free",
    "version",
    "contact_timestamp",
    "last_contact_at",
    "last_ping_ok_at",
    "last_ping_error",
)


class OverlayStore:
    """Implements `metadisk.bridge.overlay.db.OverlayDB`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def node(self, node_id: bytes) -> NodeRecord | None:
        query = select(t.nodes).where(_n.node_id == node_id)
        row = self._db.read(lambda conn: conn.execute(query).first())
        return None if row is None else NodeRecord(**row._asdict())

    def save_contact(self, record: NodeRecord) -> None:
        values = asdict(record)
        self._db.write(
            lambda conn: upsert(
                conn,
                t.nodes,
                values,
                ["node_id"],
                {name: values[name] for name in _CONTACT_COLUMNS},
            )
        )

    def candidates(
        self, min_free: int, online_since: int, exclude: Collection[bytes], limit: int
    ) -> list[Candidate]:
        query = select(_n.node_id, _n.public_key, _n.address, _n.last_net).where(
            _n.last_ping_ok_at >= online_since,
            _n.disqualified_at.is_(None),
            _n.free >= min_free,
        )
        if exclude:
            query = query.where(_n.node_id.not_in(list(exclude)))
        query = query.order_by(func.random()).limit(limit)
        rows = self._db.read(lambda conn: conn.execute(query).all())
        return [Candidate(r.node_id, r.public_key, r.address, r.last_net) for r in rows]

    def disqualify(self, node_id: bytes, now: int) -> bool:
        statement = (
            update(t.nodes)
            .where(_n.node_id == node_id, _n.disqualified_at.is_(None))
            .values(disqualified_at=now)
        )
        return bool(self._db.write(lambda conn: conn.execute(statement).rowcount))
