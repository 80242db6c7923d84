"""``GET /v1/status``: the node's dashboard as JSON, answered on the loopback interface only.

Loopback rather than a token: the operator reads it on the machine (or through an SSH tunnel), and
there is no secret to leak or rotate. Behind a reverse proxy on the same host every caller looks
local, so do not proxy this path.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

import metadisk
from metadisk.core.identity import Identity
from metadisk.farmer.http import require_loopback
from metadisk.farmer.pieces.service import PieceService
from metadisk.farmer.usage.service import DAY, UsageService
from metadisk.wire.dataplane.contract import STATUS, NodeReport

REPORT_DAYS = 30


def iso_day(day: int) -> str:
    """YYYY-MM-DD of a day number (days since 1970-01-01, UTC)."""
    return time.strftime("%Y-%m-%d", time.gmtime(day * DAY))


class StatusEndpoint:
    def __init__(
        self,
        *,
        identity: Identity,
        pieces: PieceService,
        usage: UsageService,
        address: Callable[[], str],
        uptime: Callable[[], float],
    ) -> None:
        self._identity = identity
        self._pieces = pieces
        self._usage = usage
        self._address = address
        self._uptime = uptime

    def routes(self) -> list[web.RouteDef]:
        return [web.get(STATUS, self.status, allow_head=False)]

    async def status(self, request: web.Request) -> web.Response:
        require_loopback(request)
        report = await self.report()
        return web.Response(body=report.model_dump_json(), content_type="application/json")

    async def report(self) -> NodeReport:
        """The node's figures now (the dashboard shows the same)."""
        days = await self._usage.days(REPORT_DAYS)
        return NodeReport.model_validate(
            {
                "node_id": self._identity.node_id.hex(),
                "version": metadisk.__version__,
                "address": self._address(),
                "allocated": self._pieces.allocated,
                "used": self._usage.used,
                "trash": self._usage.trash,
                "free": self._pieces.free,
                "pieces": self._usage.pieces,
                "uptime": round(self._uptime(), 3),
                "bridges": self._usage.snapshot(),
                "days": [
                    {
                        "day": iso_day(d.day),
                        "bandwidth_in": d.bandwidth_in,
                        "bandwidth_out": d.bandwidth_out,
                    }
                    for d in days
                ],
            }
        )
