"""HTTP routes of the node directory, both public.

Check-ins need no token: the contact is signed by the farmer's key. A node's status by id needs
none either: a node's address is no secret (every order limit hands it to clients, and the node
announces it to the bridge to be reached), the status adds only whether and when the bridge last
reached it, and ids are 32 random-looking bytes, so the route lists nothing and cannot be used to
enumerate nodes. Operators and `metadisk up` poll it to see farmers come online. Why a ping-back
failed is one coarse code, never an error's text: since anyone may check in with any address,
detailed answers ("connection refused", the HTTP status) would make the bridge a port scanner.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from metadisk.bridge.http import B64_PATTERN, COMMON_ERRORS, HEX_PATTERN, decode_hex
from metadisk.bridge.overlay.pinger import PingFailure
from metadisk.bridge.overlay.service import OverlayService
from metadisk.core.identity import NodeId


class Checkin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contact: str = Field(
        max_length=4096, pattern=B64_PATTERN, description="base64url of a signed NodeContact"
    )


class CheckinOut(BaseModel):
    node_id: str = Field(description="hex")
    online: bool = Field(description="whether the ping-back to the address found this node")


class NodeStatusOut(BaseModel):
    node_id: str = Field(description="hex")
    address: str = Field(description="the base URL it last checked in with")
    online: bool = Field(description="pinged back within the online window and not disqualified")
    last_seen: int = Field(description="unix time of its last accepted check-in")
    last_ping_ok: int | None = Field(description="unix time of the last ping-back that found it")
    last_ping_error: PingFailure | None = Field(
        description="why the last ping-back failed, if it did: `unreachable` (connection refused, "
        "reset or no route), `timeout`, `http-error` (a status other than 200), `bad-answer` (not "
        "the node's JSON), `wrong-node` (another node's id), `unresolvable` (the host name does "
        "not resolve)"
    )


NODE_ID = PathParam(min_length=64, max_length=64, pattern=HEX_PATTERN, description="hex node id")


def router(service: OverlayService, clock: Callable[[], int]) -> APIRouter:
    api = APIRouter(prefix="/v1/nodes", tags=["nodes"], responses=COMMON_ERRORS)

    @api.post("/checkin")
    async def checkin(body: Checkin) -> CheckinOut:
        """A farmer announces itself; the bridge verifies it and pings its address back."""
        result = await service.checkin(body.contact, clock())
        return CheckinOut(node_id=result.node_id.hex(), online=result.online)

    @api.get("/{node_id}")
    async def node_status(node_id: str = NODE_ID) -> NodeStatusOut:
        """One node's address and whether the bridge counts it online (404 if never seen)."""
        raw = decode_hex(node_id, "node_id", 32)
        found = await service.status(NodeId(raw), clock())
        return NodeStatusOut(
            node_id=found.node_id.hex(),
            address=found.address,
            online=found.online,
            last_seen=found.last_seen,
            last_ping_ok=found.last_ping_ok,
            last_ping_error=found.last_ping_error,
        )

    return api
