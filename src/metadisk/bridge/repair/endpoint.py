"""HTTP route of repair: the operators' view of piece-set health (admin token)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from metadisk.bridge.http import COMMON_ERRORS, Runner, admin_authorization
from metadisk.bridge.repair.db import HealthSummary
from metadisk.bridge.repair.status import RepairStatus
from metadisk.wire.api import nodes as w
from metadisk.wire.api import routes


def router(status: RepairStatus, run: Runner) -> APIRouter:
    api = APIRouter(tags=["health"], responses=COMMON_ERRORS)

    @api.get(routes.ADMIN_HEALTH)
    async def network_health(authorization: str = Depends(admin_authorization)) -> w.NetworkHealth:
        """Piece sets injured, lost and queued for repair (``Authorization: Bearer <admin
        token>``)."""
        return health_out(await run(lambda: status.summary(authorization)))

    return api


def health_out(summary: HealthSummary) -> w.NetworkHealth:
    return w.NetworkHealth(
        checked_at=summary.checked_at,
        piece_sets=summary.piece_sets,
        injured=summary.injured,
        lost=summary.lost,
        repaired=summary.repaired,
        queue=[w.QueuedSets(healthy=h, sets=n) for h, n in sorted(summary.queued.items())],
    )
