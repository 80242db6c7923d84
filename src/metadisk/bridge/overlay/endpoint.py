"""HTTP route of farmer check-ins (public: the contact is signed by the farmer's key)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from metadisk.bridge.http import B64_PATTERN, COMMON_ERRORS
from metadisk.bridge.overlay.service import OverlayService


class Checkin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contact: str = Field(
        max_length=4096, pattern=B64_PATTERN, description="base64url of a signed NodeContact"
    )


class CheckinOut(BaseModel):
    node_id: str = Field(description="hex")
    online: bool = Field(description="whether the ping-back to the address found this node")


def router(service: OverlayService, clock: Callable[[], int]) -> APIRouter:
    api = APIRouter(prefix="/v1/nodes", tags=["nodes"], responses=COMMON_ERRORS)

    @api.post("/checkin")
    async def checkin(body: Checkin) -> CheckinOut:
        """A farmer announces itself; the bridge verifies it and pings its address back."""
        result = await service.checkin(body.contact, clock())
        return CheckinOut(node_id=result.node_id.hex(), online=result.online)

    return api
