"""Reading standings: a farmer's own (with a signed `NodeQuery`) and the operator's table."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from metadisk.bridge import errors
from metadisk.bridge.common import verified_query
from metadisk.bridge.config import NodesConfig
from metadisk.bridge.health.db import Evidence, HealthDB, StandingRow
from metadisk.core.identity import NodeId
from metadisk.wire.api.nodes import STANDING_PURPOSE, ExitState

UPTIME_SPAN = 30 * 24 * 3600  # seconds of uptime windows a standing counts


@dataclass(frozen=True, slots=True)
class NodeView:
    """One node's standing, as the operator and the node itself see it."""

    node_id: bytes
    address: str
    online: bool
    vetted: bool
    audit_score: float
    unknown_score: float
    online_score: float
    audits: int
    audits_passed: int
    suspended: bool
    disqualified: bool
    contained: bool
    pieces: int
    success_rate: float
    latency_ms: float
    last_seen: int | None
    created_at: int
    uptime: float | None
    exit: ExitState | None = None  # its graceful exit, if it asked for one


class HealthService:
    def __init__(
        self,
        db: HealthDB,
        nodes: NodesConfig,
        bridge_id: NodeId,
        admin_token: str,
    ) -> None:
        self._db = db
        self._nodes = nodes
        self._bridge_id = bridge_id
        self._admin_token = admin_token

    def standing(self, encoded_query: bytes, now: int) -> NodeView:
        """The standing of the node that signed `encoded_query` (purpose ``standing``)."""
        query = verified_query(
            encoded_query, STANDING_PURPOSE, self._bridge_id, now, self._nodes.contact_skew
        )
        rows = self._db.standings(now, now - UPTIME_SPAN, query.node_id.raw)
        if not rows:
            raise errors.NotFound("this node never checked in here", code="node-not-found")
        return _view(rows[0], now, self._nodes.online_window)

    def table(self, authorization: str, now: int) -> list[NodeView]:
        """Every node's standing, for an operator presenting the admin token."""
        self.check_admin(authorization)
        return self.views(now)

    def evidence(self, authorization: str, node_id: bytes) -> list[Evidence]:
        """The failed audits kept for a node, for an operator presenting the admin token."""
        self.check_admin(authorization)
        return self._db.evidence(node_id)

    def views(self, now: int) -> list[NodeView]:
        """Every node's standing (the caller has checked who asks)."""
        return node_views(self._db, self._nodes, now)

    def check_admin(self, authorization: str) -> None:
        if not self._admin_token:
            raise errors.AccessDenied(
                "the admin API is off: set [server] admin_token", code="admin-disabled"
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self._admin_token.encode()
        ):
            raise errors.Unauthenticated(
                "a valid admin token is needed", code="invalid-admin-token"
            )


def node_views(db: HealthDB, nodes: NodesConfig, now: int) -> list[NodeView]:
    """Every node's standing, oldest node first."""
    return [_view(row, now, nodes.online_window) for row in db.standings(now, now - UPTIME_SPAN)]


def _view(row: StandingRow, now: int, online_window: int) -> NodeView:
    scores = row.scores
    return NodeView(
        node_id=row.node_id,
        address=row.address,
        online=(
            scores.disqualified_at is None
            and row.offline_since is None
            and row.last_ping_ok_at is not None
            and row.last_ping_ok_at >= now - online_window
        ),
        vetted=scores.vetted_at is not None,
        audit_score=scores.audit.score,
        unknown_score=scores.unknown.score,
        online_score=scores.online.score,
        audits=scores.audits,
        audits_passed=scores.audits_passed,
        suspended=scores.suspended_at is not None,
        disqualified=scores.disqualified_at is not None,
        contained=row.contained,
        pieces=row.pieces,
        success_rate=row.perf_success,
        latency_ms=row.perf_latency_ms,
        last_seen=row.last_ping_ok_at,
        created_at=row.created_at,
        uptime=row.uptime,
        exit=row.exit,
    )
