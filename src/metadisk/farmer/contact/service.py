"""Check-ins: tell each trusted bridge, with a signed `NodeContact`, where and how big this node is.

``POST {bridge}/v1/nodes/checkin`` with a `Checkin` body (the signed contact); any 200 is
success. A bridge that fails is retried with exponential backoff (5 s doubling, capped at the
check-in interval); the first failure is logged as a warning, repeats only at debug level.
A bridge this node has left (a graceful exit that ended there) is no longer checked in with.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

import metadisk
from metadisk.core.identity import Identity, NodeId
from metadisk.core.messages import NodeContact
from metadisk.farmer.config import TrustedBridge
from metadisk.runtime.chore import NextRun
from metadisk.runtime.tls import bridge_ssl
from metadisk.wire.api.nodes import Checkin
from metadisk.wire.api.routes import CHECKIN
from metadisk.wire.bodies import BodyTooLarge, read_capped
from metadisk.wire.errors import MAX_ERROR_BODY, parse_error

log = logging.getLogger("metadisk.farmer.contact")

FIRST_RETRY = 5.0


@dataclass(frozen=True, slots=True)
class Space:
    allocated: int
    free: int


class CheckinFailed(Exception):
    """One bridge did not accept a check-in."""


class ContactService:
    """Builds this node's signed contact and delivers it to every trusted bridge."""

    def __init__(
        self,
        *,
        identity: Identity,
        bridges: tuple[TrustedBridge, ...],
        address: Callable[[], str],
        space: Callable[[], Space],
        clock: Callable[[], float],
        interval: float,
        timeout: float,
    ) -> None:
        self._identity = identity
        self._bridges = bridges
        self._address = address
        self._space = space
        self._clock = clock
        self._interval = interval
        self._timeout = timeout
        self._failures: dict[str, int] = {bridge.url: 0 for bridge in bridges}
        # unix time of the last check-in each bridge accepted (the dashboard shows it)
        self.last_checkin: dict[NodeId, int] = {}
        self._session: aiohttp.ClientSession | None = None
        # Bridges this node left (its graceful exit ended there): no more check-ins. Set by the
        # peer, from the exit's saved state.
        self.skip: Callable[[NodeId], bool] = lambda bridge_id: False

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            headers={"User-Agent": f"metadisk-farmer/{metadisk.__version__}"},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def address(self) -> str:
        return self._address()

    @property
    def free(self) -> int:
        """Bytes this node can still accept, as its contact and its card tell bridges."""
        return self._space().free

    def contact(self) -> NodeContact:
        space = self._space()
        return NodeContact(
            public_key=self._identity.public_key,
            address=self._address(),
            allocated=space.allocated,
            free=space.free,
            version=metadisk.__version__,
            timestamp=int(self._clock()),
        ).signed_by(self._identity)

    async def checkin(self) -> NextRun | None:
        """Check in with every bridge at once; asks for an earlier next run if one failed."""
        body = Checkin(contact=self.contact().encode()).model_dump_json().encode()
        results = await asyncio.gather(
            *(
                self._checkin_one(bridge, body)
                for bridge in self._bridges
                if not self.skip(bridge.node_id)
            )
        )
        if all(results):
            return None
        worst = max(self._failures.values())
        # The chore jitters the wait, so that nodes restarted together spread out.
        return NextRun(min(self._interval, FIRST_RETRY * 2.0 ** (worst - 1)))

    async def _checkin_one(self, bridge: TrustedBridge, body: bytes) -> bool:
        assert self._session is not None, "start() first"
        headers = {"Content-Type": "application/json"}
        try:
            async with self._session.post(
                bridge.url + CHECKIN, data=body, headers=headers, ssl=bridge_ssl(bridge.url)
            ) as response:
                if response.status != 200:
                    raise CheckinFailed(f"HTTP {response.status}: {await _error_code(response)}")
                await response.read()
        except (aiohttp.ClientError, TimeoutError, CheckinFailed) as exc:
            failures = self._failures[bridge.url] = self._failures[bridge.url] + 1
            level = logging.WARNING if failures == 1 else logging.DEBUG
            log.log(level, "check-in with %s failed (%d in a row): %s", bridge.url, failures, exc)
            return False
        if self._failures[bridge.url]:
            log.info("check-in with %s works again", bridge.url)
        else:
            log.debug("checked in with %s", bridge.url)
        self._failures[bridge.url] = 0
        self.last_checkin[bridge.node_id] = int(self._clock())
        return True


async def _error_code(response: aiohttp.ClientResponse) -> str:
    try:
        detail = parse_error(await read_capped(response.content, MAX_ERROR_BODY))
    except (aiohttp.ClientError, BodyTooLarge):
        detail = None
    return detail.code if detail is not None else (response.reason or "error")
