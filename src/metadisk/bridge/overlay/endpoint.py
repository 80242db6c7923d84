"""HTTP routes of the node directory, both public; bodies are `metadisk.wire.api.nodes`.

Check-ins need no token: the contact is signed by the farmer's key. A node's status by id needs
none either: a node's address is no secret (every order limit hands it to clients, and the node
announces it to the bridge to be reached), the status adds only whether and when the bridge last
reached it, and ids are 32 random-looking bytes, so the route lists nothing and cannot be used to
enumerate nodes. Operators and `metadisk up` poll it to see farmers come online. Why the last
ping-back failed is shown only to the node itself and to operators (`OverlayService.reader`).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Header
from fastapi import Path as PathParam

from metadisk.bridge.http import COMMON_ERRORS
from metadisk.bridge.overlay.service import OverlayService
from metadisk.core.identity import NodeId
from metadisk.wire.api import nodes as w
from metadisk.wire.api import routes
from metadisk.wire.fields import HEX_PATTERN

NODE_ID = PathParam(min_length=64, max_length=64, pattern=HEX_PATTERN, description="hex node id")


def router(service: OverlayService, clock: Callable[[], int]) -> APIRouter:
    api = APIRouter(tags=["nodes"], responses=COMMON_ERRORS)

    @api.post(routes.CHECKIN)
    async def checkin(body: w.Checkin) -> w.CheckinResult:
        """A farmer announces itself; the bridge verifies it and pings its address back."""
        result = await service.checkin(body.contact, clock())
        return w.CheckinResult(node_id=result.node_id, online=result.online)

    @api.get(routes.NODE)
    async def node_status(node_id: str = NODE_ID, authorization: str = Header("")) -> w.NodeStatus:
        """One node's address and whether the bridge counts it online (404 if never seen); why
        its last ping-back failed only for ``Authorization: Node <base64url NodeQuery>`` signed
        by the node (purpose ``standing``) or ``Bearer <admin token>``."""
        wanted = NodeId.from_hex(node_id)
        now = clock()
        found = await service.status(wanted, now, service.reader(authorization, wanted, now))
        return w.NodeStatus(
            node_id=found.node_id,
            address=found.address,
            online=found.online,
            last_seen=found.last_seen,
            last_ping_ok=found.last_ping_ok,
            last_ping_error=found.last_ping_error,
        )

    return api
