"""HTTP routes of network health: a farmer's own standing (signed query, no token) and the
operators' node table (admin token); bodies are `metadisk.wire.api.nodes`."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends

from metadisk.bridge.health.service import HealthService, NodeView
from metadisk.bridge.http import COMMON_ERRORS, Runner, admin_authorization, public
from metadisk.bridge.overlay.endpoint import NODE_ID
from metadisk.core.identity import NodeId
from metadisk.wire.api import nodes as w
from metadisk.wire.api import routes


def router(service: HealthService, clock: Callable[[], int], run: Runner) -> APIRouter:
    api = APIRouter(tags=["health"], responses=COMMON_ERRORS)

    @api.post(routes.NODE_STANDING, openapi_extra=public(signed="NodeQuery"))
    async def standing(body: w.StandingQuery) -> w.NodeStanding:
        """A farmer's own standing: scores, vetting, suspension, uptime (signed NodeQuery)."""
        return standing_out(await run(lambda: service.standing(body.query, clock())))

    @api.get(routes.ADMIN_NODES)
    async def node_table(authorization: str = Depends(admin_authorization)) -> w.NodeTable:
        """Every node with its standing (``Authorization: Bearer <admin token>``)."""
        views = await run(lambda: service.table(authorization, clock()))
        return w.NodeTable(nodes=[standing_out(view) for view in views])

    @api.get(routes.ADMIN_NODE_EVIDENCE)
    async def node_evidence(
        node_id: str = NODE_ID, authorization: str = Depends(admin_authorization)
    ) -> w.EvidenceList:
        """A node's failed audits with what it signed (``Authorization: Bearer <admin token>``)."""
        raw = bytes.fromhex(node_id)
        kept = await run(lambda: service.evidence(authorization, raw))
        return w.EvidenceList(
            evidence=[
                w.AuditEvidence(
                    outcome=e.outcome,
                    reason=e.reason,
                    order_limit=e.order_limit,
                    receipt=e.receipt,
                    response=e.response,
                    leaf=e.leaf,
                    created_at=e.created_at,
                )
                for e in kept
            ]
        )

    return api


def standing_out(view: NodeView) -> w.NodeStanding:
    return w.NodeStanding(
        node_id=NodeId(view.node_id),
        address=view.address,
        online=view.online,
        vetted=view.vetted,
        audit_score=view.audit_score,
        unknown_score=view.unknown_score,
        online_score=view.online_score,
        audits=view.audits,
        audits_passed=view.audits_passed,
        suspended=view.suspended,
        disqualified=view.disqualified,
        contained=view.contained,
        pieces=view.pieces,
        success_rate=view.success_rate,
        latency_ms=view.latency_ms,
        last_seen=view.last_seen,
        created_at=view.created_at,
        uptime=view.uptime,
        exit=view.exit,
    )
