"""``GET /v1/status``: the node's dashboard as JSON, answered on the loopback interface only.

Loopback rather than a token: the operator reads it on the machine (or through an SSH tunnel), and
there is no secret to leak or rotate. Behind a reverse proxy on the same host every caller looks
local, so do not proxy this path.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

import metadisk
from metadisk.core.identity import Identity
from metadisk.farmer.http import require_loopback
from metadisk.farmer.pieces.service import PieceService
from metadisk.farmer.usage.service import UsageService
from metadisk.wire.dataplane.contract import STATUS, NodeReport


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
        report = NodeReport.model_validate(
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
            }
        )
        return web.Response(body=report.model_dump_json(), content_type="application/json")
