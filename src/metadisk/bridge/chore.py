"""A background loop with `pause()` and `trigger_and_wait()`, so tests never sleep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Chore:
    """Runs `work` every `interval` seconds (and on `trigger_and_wait`), one cycle at a time."""

    def __init__(self, name: str, interval: float, work: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self._interval = interval
        self._work = work
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._paused = False

    async def run(self) -> None:
        """Loop until cancelled; a failing cycle is logged and retried next interval."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            if self._paused:
                continue
            try:
                await self._cycle()
            except Exception:
                log.exception("chore %s failed; retrying next interval", self.name)

    def pause(self) -> None:
        """Stop running cycles on the timer (explicit triggers still run)."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._wake.set()

    async def trigger_and_wait(self) -> object:
        """Run one cycle now and return its result (exceptions propagate to the caller)."""
        return await self._cycle()

    async def _cycle(self) -> object:
        async with self._lock:
            return await self._work()
