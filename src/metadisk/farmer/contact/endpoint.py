"""``GET /v1/node``: who this node is, public and unauthenticated, for the bridge to ping back.

The card carries the free space too: a bridge's uptime checker reads it on its own schedule, so
a node that filled up stops being chosen for pieces before its next check-in says so.
"""

from __future__ import annotations

from aiohttp import web

import metadisk
from metadisk.core.identity import Identity
from metadisk.farmer.contact.service import ContactService
from metadisk.wire.dataplane.contract import NODE_INFO, NodeInfo


class NodeEndpoint:
    def __init__(self, identity: Identity, contact: ContactService) -> None:
        self._identity = identity
        self._contact = contact

    def routes(self) -> list[web.RouteDef]:
        return [web.get(NODE_INFO, self.node, allow_head=False)]

    async def node(self, request: web.Request) -> web.Response:
        card = NodeInfo(
            node_id=self._identity.node_id,
            public_key=self._identity.public_key,
            version=metadisk.__version__,
            address=self._contact.address,
            free=self._contact.free,
        )
        return web.Response(body=card.model_dump_json(), content_type="application/json")
