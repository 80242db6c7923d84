"""``GET /v1/bridge``: who this bridge is, for farmers and clients setting up."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from metadisk.core.encoding import b64encode
from metadisk.core.identity import Identity


class BridgeInfo(BaseModel):
    node_id: str = Field(description="hex; the bridge_id in every order limit it signs")
    public_key: str = Field(description="base64url Ed25519 key that signs order limits")
    difficulty: int = Field(description="proof-of-work bits a farmer's node id needs")
    version: str


def router(identity: Identity, difficulty: int, version: str) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["bridge"])
    info = BridgeInfo(
        node_id=identity.node_id.hex(),
        public_key=b64encode(identity.public_key),
        difficulty=difficulty,
        version=version,
    )

    @api.get("/bridge")
    async def bridge() -> BridgeInfo:
        return info

    return api
