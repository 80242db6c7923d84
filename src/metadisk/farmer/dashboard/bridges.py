"""The node's standing at its bridges for the dashboard: asked through `farmer.standing`, kept
for `CACHE_SECONDS` so that reloading the page does not send every bridge a query each time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from metadisk.core.identity import Identity
from metadisk.farmer.config import TrustedBridge
from metadisk.farmer.standing import BridgeStanding, standings

CACHE_SECONDS = 30.0
PER_BRIDGE = 5.0  # seconds: a page waits at most this long for a slow bridge

Ask = Callable[[], Awaitable[list[BridgeStanding]]]


class StandingCache:
    """The last answers of every trusted bridge, asked again once they are `ttl` seconds old.

    Concurrent page loads share one round of queries (a lock, not one round each).
    """

    def __init__(
        self,
        identity: Identity,
        bridges: Sequence[TrustedBridge],
        *,
        ttl: float = CACHE_SECONDS,
        per_bridge: float = PER_BRIDGE,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ask: Ask = lambda: standings(identity, bridges, clock=clock, per_bridge=per_bridge)
        self._ttl = ttl
        self._monotonic = monotonic
        self._lock = asyncio.Lock()
        self._answers: list[BridgeStanding] = []
        self._asked_at: float | None = None
        self.rounds = 0  # rounds of queries sent, for tests

    @property
    def asked_at(self) -> float | None:
        """`time.monotonic()` of the round the answers come from, None before the first."""
        return self._asked_at

    async def get(self) -> list[BridgeStanding]:
        """Each bridge's answer, at most `ttl` seconds old."""
        async with self._lock:
            now = self._monotonic()
            if self._asked_at is None or now - self._asked_at >= self._ttl:
                self._answers = await self._ask()
                self._asked_at = self._monotonic()
                self.rounds += 1
            return self._answers
