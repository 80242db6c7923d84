"""This node's standing at each trusted bridge, for `metadisk farmer status`.

The farmer signs a `NodeQuery` (purpose `STANDING_PURPOSE`, the bridge's id, the time now) with
its identity and POSTs it to the bridge's standing route; the bridge answers only the node whose
key signed, only for itself and only within its clock skew, so a query is no good to anyone else
for long. Bridges are asked at once, each with its own timeout: one that is down or slow costs
its own line, not the others'.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp
from pydantic import ValidationError

import metadisk
from metadisk.core.identity import Identity, NodeId
from metadisk.core.messages import NodeQuery
from metadisk.farmer.config import TrustedBridge
from metadisk.runtime.tls import bridge_ssl
from metadisk.wire.api.nodes import STANDING_PURPOSE, NodeStanding, StandingQuery
from metadisk.wire.api.routes import NODE_STANDING
from metadisk.wire.bodies import BodyTooLarge, read_capped
from metadisk.wire.errors import MAX_ERROR_BODY, parse_error

TIMEOUT = 10.0  # seconds per bridge
MAX_ANSWER = 64 * 1024  # a standing is a few hundred bytes


@dataclass(frozen=True, slots=True)
class BridgeStanding:
    """What one bridge said about this node: its standing, or why there is none.

    `code` is the bridge's error code (``node-not-found``, ``clock-skew``, ...) or one of this
    module's own: ``unreachable``, ``timeout``, ``bad-answer``.
    """

    bridge: TrustedBridge
    standing: NodeStanding | None = None
    code: str | None = None
    message: str = ""


def standing_query(identity: Identity, bridge_id: NodeId, now: int) -> NodeQuery:
    """The signed query for this node's standing at `bridge_id`."""
    return NodeQuery(
        public_key=identity.public_key,
        bridge_id=bridge_id,
        purpose=STANDING_PURPOSE,
        timestamp=now,
    ).signed_by(identity)


async def standings(
    identity: Identity,
    bridges: Sequence[TrustedBridge],
    *,
    clock: Callable[[], float] = time.time,
    per_bridge: float = TIMEOUT,
) -> list[BridgeStanding]:
    """This node's standing at each of `bridges`, in their order; never raises for a bridge."""
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=per_bridge),
        headers={"User-Agent": f"metadisk-farmer/{metadisk.__version__}"},
    ) as session:
        return list(
            await asyncio.gather(
                *(ask(session, identity, bridge, int(clock())) for bridge in bridges)
            )
        )


async def ask(
    session: aiohttp.ClientSession, identity: Identity, bridge: TrustedBridge, now: int
) -> BridgeStanding:
    """One bridge's answer about this node."""
    query = standing_query(identity, bridge.node_id, now)
    body = StandingQuery(query=query.encode()).model_dump_json().encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    try:
        async with session.post(
            bridge.url + NODE_STANDING,
            data=body,
            headers=headers,
            allow_redirects=False,
            ssl=bridge_ssl(bridge.url),
        ) as response:
            if response.status != 200:
                detail = parse_error(await read_capped(response.content, MAX_ERROR_BODY))
                if detail is None:
                    return BridgeStanding(bridge, code="bad-answer", message=_http(response))
                return BridgeStanding(bridge, code=detail.code, message=_line(detail.message))
            raw = await read_capped(response.content, MAX_ANSWER)
    except TimeoutError:
        return BridgeStanding(bridge, code="timeout", message="no answer in time")
    except aiohttp.ClientError as exc:
        return BridgeStanding(bridge, code="unreachable", message=_line(str(exc)) or repr(exc))
    except BodyTooLarge as exc:
        return BridgeStanding(bridge, code="bad-answer", message=str(exc))
    try:
        standing = NodeStanding.model_validate_json(raw)
    except ValidationError as exc:
        return BridgeStanding(bridge, code="bad-answer", message=_line(str(exc)))
    if standing.node_id != identity.node_id:
        # Never show another node's figures as ours, whatever the bridge meant.
        return BridgeStanding(bridge, code="bad-answer", message="it answered for another node")
    return BridgeStanding(bridge, standing=standing)


def _http(response: aiohttp.ClientResponse) -> str:
    return f"HTTP {response.status} {response.reason or ''}".strip()


def _line(text: str) -> str:
    parts = [part.strip() for part in text.splitlines() if part.strip()]
    return "; ".join(parts)
