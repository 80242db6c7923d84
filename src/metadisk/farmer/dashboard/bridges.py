"""The node's standing at its bridges for the dashboard: asked through `farmer.standing`, kept
for `CACHE_SECONDS` so that reloading the page does not send every bridge a query each time."""

from __future__ import annotations

import asyncio
import contextlib
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

    Only the first page load waits for the bridges (at most `per_bridge` seconds); later ones
    get the last answers at once, and answers older than `ttl` start one new round in the
    background, which the next load shows. Concurrent loads share one round.
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
        self._refresh: asyncio.Task[None] | None = None
        self.rounds = 0  # rounds of queries sent, for tests

    @property
    def asked_at(self) -> float | None:
        """`monotonic()` of the round the answers come from, None before the first."""
        return self._asked_at

    @property
    def refreshing(self) -> asyncio.Task[None] | None:
        """The round under way in the background, if any."""
        return self._refresh if self._refresh is not None and not self._refresh.done() else None

    async def get(self) -> list[BridgeStanding]:
        """Each bridge's last answer; the first call waits for them."""
        if self._asked_at is None:
            async with self._lock:
                if self._asked_at is None:
                    await self._round()
        elif self._monotonic() - self._asked_at >= self._ttl and self.refreshing is None:
            self._refresh = asyncio.create_task(self._locked_round())
        return self._answers

    async def close(self) -> None:
        """Stop a round under way."""
        task = self.refreshing
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _locked_round(self) -> None:
        async with self._lock:
            await self._round()

    async def _round(self) -> None:
        self.rounds += 1
        self._answers = await self._ask()
        self._asked_at = self._monotonic()
