"""A background loop that runs one cycle every `interval` seconds, and that tests can drive.

`pause()` stops the timed cycles; `trigger_and_wait()` runs one cycle now (paused or not) and
returns when it is done, raising what the cycle raised. Tests pause a chore and trigger it, so
they never sleep waiting for a timer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("metadisk.farmer.chore")

# A cycle may return a delay to use instead of the interval before the next run (for backoff).
Cycle = Callable[[], Awaitable[float | None]]


class Chore:
    """Runs `cycle` at start (unless `run_at_start` is false) and then every `interval` seconds."""

    def __init__(
        self, name: str, interval: float, cycle: Cycle, *, run_at_start: bool = True
    ) -> None:
        self.name = name
        self.interval = interval
        self._cycle = cycle
        self._run_at_start = run_at_start
        self._wake = asyncio.Event()
        self._triggered = False
        self._paused = False
        self._running = False
        self._waiters: list[asyncio.Future[None]] = []

    def pause(self) -> None:
        """Stop timed cycles until `resume()`; triggered cycles still run."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._wake.set()

    async def trigger_and_wait(self) -> None:
        """Run one cycle as soon as the current one (if any) ends, and wait for it."""
        if not self._running:
            raise RuntimeError(f"chore {self.name} is not running")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._triggered = True
        self._wake.set()
        await waiter

    async def run(self) -> None:
        """The loop; runs until cancelled."""
        self._running = True
        delay: float | None = 0.0 if self._run_at_start else self.interval
        try:
            while True:
                if not self._triggered:
                    timed_out = False
                    try:
                        async with asyncio.timeout(None if self._paused else delay):
                            await self._wake.wait()
                    except TimeoutError:
                        timed_out = True
                    self._wake.clear()
                    if not (self._triggered or timed_out):
                        continue  # woken by resume(): restart the timer
                self._triggered = False
                waiters, self._waiters = self._waiters, []
                delay = await self._run_cycle(waiters)
        finally:
            self._running = False
            for waiter in self._waiters:
                waiter.cancel()

    async def _run_cycle(self, waiters: list[asyncio.Future[None]]) -> float:
        try:
            next_delay = await self._cycle()
        except asyncio.CancelledError:
            for waiter in waiters:
                waiter.cancel()
            raise
        except Exception as exc:
            # A failing cycle must not kill the node: log it and try again next time.
            log.warning("chore %s failed: %s", self.name, exc, exc_info=log.isEnabledFor(10))
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return self.interval
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        return self.interval if next_delay is None else next_delay
