"""``GET /v1/bridge``: who this bridge is, for farmers and clients setting up."""

from __future__ import annotations

from fastapi import APIRouter

from metadisk.bridge.http import error_responses, public
from metadisk.core.identity import Identity
from metadisk.wire.api import routes
from metadisk.wire.api.nodes import BridgeInfo


def router(identity: Identity, difficulty: int, version: str) -> APIRouter:
    api = APIRouter(tags=["bridge"])
    info = BridgeInfo(
        node_id=identity.node_id,
        public_key=identity.public_key,
        difficulty=difficulty,
        version=version,
    )

    @api.get(routes.BRIDGE_INFO, responses=error_responses(413), openapi_extra=public())
    async def bridge() -> BridgeInfo:
        return info

    return api
