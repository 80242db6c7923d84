"""``GET /v1/node``: who this node is, public and unauthenticated, for the bridge to ping back."""

from __future__ import annotations

from aiohttp import web

import metadisk
from metadisk.core.encoding import b64encode
from metadisk.core.identity import Identity
from metadisk.farmer.contact.service import ContactService


class NodeEndpoint:
    def __init__(self, identity: Identity, contact: ContactService) -> None:
        self._identity = identity
        self._contact = contact

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v1/node", self.node, allow_head=False)]

    async def node(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "node_id": self._identity.node_id.hex(),
                "public_key": b64encode(self._identity.public_key),
                "version": metadisk.__version__,
                "address": self._contact.address,
            }
        )
