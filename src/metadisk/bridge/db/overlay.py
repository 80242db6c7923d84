"""The node directory in SQL."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, fields

from sqlalchemy import exists, func, select, update

from metadisk.bridge.db import tables as t
from metadisk.bridge.db._shared import upsert
from metadisk.bridge.db.engine import Database
from metadisk.bridge.overlay.db import Candidate, NodeRecord

_n = t.nodes.c
_p = t.pieces.c
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
    "offline_since",
)


_RECORD_FIELDS = [f.name for f in fields(NodeRecord)]


class OverlayStore:
    """Implements `metadisk.bridge.overlay.db.OverlayDB`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def node(self, node_id: bytes) -> NodeRecord | None:
        query = select(*(t.nodes.c[name] for name in _RECORD_FIELDS)).where(_n.node_id == node_id)
        row = self._db.read(lambda conn: conn.execute(query).first())
        if row is None:
            return None
        values = row._asdict()
        return NodeRecord(**{name: values[name] for name in _RECORD_FIELDS})

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
        self,
        min_free: int,
        online_since: int,
        exclude: Collection[bytes],
        limit: int,
    ) -> list[Candidate]:
        contained = select(t.audit_containment.c.node_id)
        query = select(
            _n.node_id,
            _n.public_key,
            _n.address,
            _n.last_net,
            _n.vetted_at,
            _n.perf_success,
            _n.perf_latency_ms,
        ).where(
            _n.last_ping_ok_at >= online_since,
            _n.offline_since.is_(None),
            _n.disqualified_at.is_(None),
            _n.suspended_at.is_(None),
            _n.free >= min_free,
            _n.node_id.not_in(contained),
            _n.exit_started_at.is_(None),  # leaving (or left): no new pieces
        )
        if exclude:
            query = query.where(_n.node_id.not_in(list(exclude)))
        query = query.order_by(func.random()).limit(limit)
        rows = self._db.read(lambda conn: conn.execute(query).all())
        return [
            Candidate(
                r.node_id,
                r.public_key,
                r.address,
                r.last_net,
                vetted=r.vetted_at is not None,
                perf_success=r.perf_success,
                perf_latency_ms=r.perf_latency_ms,
            )
            for r in rows
        ]

    def holding(self, node_ids: Collection[bytes], count: int) -> set[bytes]:
        # A walk of at most `count` entries of each node's pieces index, not a full count.
        held = exists(select(_p.node_id).where(_p.node_id == _n.node_id).limit(1).offset(count - 1))
        query = select(_n.node_id).where(_n.node_id.in_(list(node_ids)), held)
        return set(self._db.read(lambda conn: conn.scalars(query).all()))

    def disqualify(self, node_id: bytes, now: int) -> bool:
        statement = (
            update(t.nodes)
            .where(_n.node_id == node_id, _n.disqualified_at.is_(None))
            .values(disqualified_at=now)
        )
        return bool(self._db.write(lambda conn: conn.execute(statement).rowcount))
