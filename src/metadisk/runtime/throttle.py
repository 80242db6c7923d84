"""`Throttle`: a token bucket over bytes, shared by the tasks of one process (repair bandwidth)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class Throttle:
    """Lets `rate` bytes a second through on average, in bursts of at most `burst` bytes.

    ``await throttle.take(n)`` returns once `n` bytes may move; a request larger than the burst
    is let through when the bucket is full, then leaves it that far in debt, so the average
    holds for any size. A rate of 0 means no limit. Waiters are served in order.
    """

    def __init__(
        self,
        rate: int,
        burst: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate < 0:
            raise ValueError("rate cannot be negative")
        self.rate = rate
        self._burst = float(burst if burst is not None else max(rate, 1))
        self._clock = clock
        self._sleep = sleep
        self._tokens = self._burst
        self._at = clock()
        self._lock = asyncio.Lock()

    async def take(self, count: int) -> None:
        if self.rate == 0 or count <= 0:
            return
        async with self._lock:
            self._refill()
            needed = min(float(count), self._burst)
            if self._tokens < needed:
                await self._sleep((needed - self._tokens) / self.rate)
                self._refill()
            self._tokens -= count

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
