"""A background loop that runs one cycle every `interval` seconds, and that tests can drive.

Every peer's periodic work (check-ins, expiry, deletes, reclaim) is a `Chore`::

    chore = Chore("checkin", 600, contact.checkin)
    group.add("checkin", run=chore.run)

`pause()` stops the timed cycles; `trigger_and_wait()` runs a fresh cycle (paused or not) and
returns its result, raising what it raised. Tests pause a chore and trigger it, so they never sleep
waiting for a timer. A cycle may return `NextRun(after)` to ask for its next run sooner or later
than the interval (backoff). Waits are jittered, so that processes started together spread out.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

log = logging.getLogger("metadisk.runtime.chore")

Outcome = Literal["ok", "error"]


@dataclass(frozen=True, slots=True)
class NextRun:
    """A cycle's result asking for the next run after `after` seconds instead of the interval."""

    after: float

    def __post_init__(self) -> None:
        if not self.after >= 0:  # also refuses NaN
            raise ValueError(f"NextRun.after must be at least 0, not {self.after}")


class ChoreObserver(Protocol):
    """Told about every finished cycle (metrics plug in here, so chores know no metrics library)."""

    def cycle_done(self, chore: str, outcome: Outcome, seconds: float) -> None: ...


class Chore:
    """Runs `cycle` at start (unless `run_at_start` is false), then every `interval` seconds.

    Parameters:
        name: names the chore in logs and to the observer.
        interval: seconds between cycles; an attribute that may be changed, which takes effect
            from the next wait (after the next cycle, or at `resume()`).
        cycle: the work; its result goes to `trigger_and_wait` callers, and a `NextRun` result
            sets the next wait instead of the interval.
        jitter: each wait is multiplied by a random factor in ``[1 - jitter, 1 + jitter]``.
        rng: the source of that factor (tests pass a seeded or fake one).

    One cycle runs at a time, ever: the loop and direct runs share a lock.
    """

    def __init__(
        self,
        name: str,
        interval: float,
        cycle: Callable[[], Awaitable[object]],
        *,
        jitter: float = 0.1,
        run_at_start: bool = True,
        observer: ChoreObserver | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter is a fraction from 0 to 1, not {jitter}")
        self.name = name
        self.interval = interval
        self._cycle = cycle
        self._jitter = jitter
        self._run_at_start = run_at_start
        self._observer = observer
        self._rng = rng or random.Random()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._paused = False
        self._running = False
        # When the next timed cycle is due (loop clock), and the wait the last cycle asked for
        # with NextRun (None: the interval).
        self._deadline = 0.0
        self._delay: float | None = None
        # Shared by every trigger that arrived since the last cycle began: the next cycle's result.
        self._pending: asyncio.Future[object] | None = None

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def running(self) -> bool:
        """Whether `run()` is looping."""
        return self._running

    @property
    def next_run(self) -> float | None:
        """When the next timed cycle is due, on the event loop's clock; None if paused or idle."""
        if not self._running or self._paused:
            return None
        return self._deadline

    def pause(self) -> None:
        """Stop timed cycles until `resume()`; triggered cycles still run."""
        self._paused = True
        self._wake.set()

    def resume(self) -> None:
        """Restart the timer: the next timed cycle comes one (jittered) wait from now."""
        if self._paused:
            self._paused = False
            if self._running:
                self._schedule()
        self._wake.set()

    async def run(self) -> None:
        """The loop; runs until cancelled, and then cancels the waiting triggers too."""
        if self._running:
            raise RuntimeError(f"chore {self.name} is already running")
        self._running = True
        self._wake.clear()
        self._delay = None
        if self._run_at_start:
            self._deadline = asyncio.get_running_loop().time()
        else:
            self._schedule()
        try:
            while True:
                await self._wait()
                await self._loop_cycle()
                self._schedule()
        finally:
            self._running = False
            if self._pending is not None:
                self._pending.cancel()
                self._pending = None

    async def trigger_and_wait(self) -> object:
        """Run a fresh cycle and return its result (or raise its exception).

        With the loop running, the cycle starts once the current one (if any) ends; triggers that
        arrive together share it, and cancelling a caller leaves the loop alone. Without the loop,
        the cycle runs here, in the caller.
        """
        if not self._running:
            async with self._lock:
                return await self._execute()
        if self._pending is None:
            self._pending = asyncio.get_running_loop().create_future()
        pending = self._pending
        self._wake.set()
        # shield: a caller that gives up must not cancel the cycle others wait for
        return await asyncio.shield(pending)

    def _schedule(self) -> None:
        delay = self.interval if self._delay is None else self._delay
        factor = self._rng.uniform(1 - self._jitter, 1 + self._jitter)
        self._deadline = asyncio.get_running_loop().time() + delay * factor

    async def _wait(self) -> None:
        """Until a trigger arrives or, unless paused, the deadline passes."""
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            if self._pending is not None:
                return
            if self._paused:
                await self._wake.wait()
                continue
            if loop.time() >= self._deadline:
                # yield once anyway: with a zero interval the loop must not starve the others
                await asyncio.sleep(0)
                return
            try:
                async with asyncio.timeout_at(self._deadline):
                    await self._wake.wait()
            except TimeoutError:
                if not self._paused:  # paused between the timer firing and this task waking
                    return

    async def _loop_cycle(self) -> None:
        """One cycle of the loop, its outcome handed to the triggers waiting for it."""
        async with self._lock:
            waiting, self._pending = self._pending, None
            try:
                result = await self._execute()
            except Exception as exc:
                self._delay = None
                if waiting is not None:
                    waiting.set_exception(exc)
                    waiting.exception()  # logged already: no "never retrieved" if all gave up
                return
            except BaseException:
                if waiting is not None:
                    waiting.cancel()
                raise
        self._delay = result.after if isinstance(result, NextRun) else None
        if waiting is not None:
            waiting.set_result(result)

    async def _execute(self) -> object:
        """Run the cycle once: timed, reported to the observer, a failure logged and re-raised."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            result = await self._cycle()
        except Exception as exc:
            # A failing cycle must not kill the process: log it, the loop tries again later.
            log.warning(
                "chore %s failed: %s: %s",
                self.name,
                type(exc).__name__,
                exc,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            self._observe("error", loop.time() - began)
            raise
        self._observe("ok", loop.time() - began)
        return result

    def _observe(self, outcome: Outcome, seconds: float) -> None:
        if self._observer is None:
            return
        try:
            self._observer.cycle_done(self.name, outcome, seconds)
        except Exception:
            # metrics are not worth a chore
            log.exception("observer of chore %s failed", self.name)


__all__ = ["Chore", "ChoreObserver", "NextRun", "Outcome"]
