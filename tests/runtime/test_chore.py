"""The chore loop: timing (jitter, backoff, pause), triggers, failures and cancellation.

Nothing here waits for a timer: chores are paused and triggered, or their next deadline is read
from `next_run`; the one test with a real timer uses a millisecond interval and a bounded wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator

import pytest

from metadisk.runtime.chore import Chore, NextRun, Outcome

HOUR = 3600.0


class FixedRng(random.Random):
    """Returns `factor` from uniform(), and records the bounds it was asked for."""

    def __init__(self, factor: float) -> None:
        super().__init__(0)
        self.factor = factor
        self.bounds: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.bounds.append((a, b))
        return self.factor


class Recorder:
    def __init__(self) -> None:
        self.cycles: list[tuple[str, Outcome, float]] = []

    def cycle_done(self, chore: str, outcome: Outcome, seconds: float) -> None:
        self.cycles.append((chore, outcome, seconds))


@contextlib.asynccontextmanager
async def looping(chore: Chore) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(chore.run())
    await asyncio.sleep(0)  # let the loop start
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def yield_to_loop(times: int = 20) -> None:
    """Let every ready task run a few steps (no time passes)."""
    for _ in range(times):
        await asyncio.sleep(0)


class LoopClock:
    """Moves the running loop's clock forward, so that timers fire without time passing."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        loop = asyncio.get_running_loop()
        real = loop.time
        self.offset = 0.0
        monkeypatch.setattr(loop, "time", lambda: real() + self.offset)

    async def advance(self, seconds: float) -> None:
        self.offset += seconds
        await yield_to_loop()


class Counter:
    """A cycle that counts its runs; `reached(n)` waits (bounded) for the n-th."""

    def __init__(self) -> None:
        self.runs = 0
        self._changed = asyncio.Event()

    async def __call__(self) -> object:
        self.runs += 1
        self._changed.set()
        return None

    async def reached(self, runs: int) -> None:
        async with asyncio.timeout(5):
            while self.runs < runs:
                self._changed.clear()
                await self._changed.wait()


def next_wait(chore: Chore) -> float:
    next_run = chore.next_run
    assert next_run is not None
    return next_run - asyncio.get_running_loop().time()


async def test_runs_at_start_then_on_trigger() -> None:
    runs: list[int] = []
    started = asyncio.Event()

    async def cycle() -> int:
        runs.append(len(runs))
        started.set()
        return len(runs)

    chore = Chore("test", HOUR, cycle)
    async with looping(chore):
        await started.wait()
        assert runs == [0]
        assert await chore.trigger_and_wait() == 2
        assert await chore.trigger_and_wait() == 3
        assert runs == [0, 1, 2]


async def test_without_run_at_start_the_first_cycle_waits_an_interval() -> None:
    runs = 0

    async def cycle() -> None:
        nonlocal runs
        runs += 1

    chore = Chore("test", HOUR, cycle, run_at_start=False, rng=FixedRng(1.0))
    async with looping(chore):
        await yield_to_loop()
        assert runs == 0
        assert next_wait(chore) == pytest.approx(HOUR, abs=1)


async def test_paused_chore_runs_only_when_triggered() -> None:
    runs = 0

    async def cycle() -> int:
        nonlocal runs
        runs += 1
        return runs

    chore = Chore("test", 0.0, cycle)
    chore.pause()  # with interval 0 it would otherwise run again at every turn of the loop
    assert chore.paused
    async with looping(chore):
        await yield_to_loop()
        assert runs == 0  # not even the start cycle
        assert chore.next_run is None
        assert await chore.trigger_and_wait() == 1
        assert await chore.trigger_and_wait() == 2
        await yield_to_loop()
        assert runs == 2


async def test_resume_restarts_the_timer() -> None:
    async def cycle() -> None:
        pass

    chore = Chore("test", HOUR, cycle, run_at_start=False, rng=FixedRng(1.0))
    chore.pause()
    async with looping(chore):
        await yield_to_loop()
        chore.interval = 2 * HOUR  # read again when the timer restarts
        chore.resume()
        assert not chore.paused
        assert next_wait(chore) == pytest.approx(2 * HOUR, abs=1)


async def test_a_tiny_interval_runs_cycles_on_the_timer() -> None:
    runs = 0
    enough = asyncio.Event()

    async def cycle() -> None:
        nonlocal runs
        runs += 1
        if runs == 5:
            enough.set()

    chore = Chore("test", 0.001, cycle, jitter=0.5, rng=random.Random(7))
    async with looping(chore):
        async with asyncio.timeout(10):
            await enough.wait()


async def test_zero_interval_does_not_starve_the_loop() -> None:
    runs = 0

    async def cycle() -> None:  # never awaits: the loop itself must yield between cycles
        nonlocal runs
        runs += 1
        if runs == 100:
            chore.pause()  # a starving loop would get here before the test runs again

    chore = Chore("test", 0.0, cycle, jitter=0.0)
    async with looping(chore):
        await yield_to_loop(10)
        assert 1 <= runs <= 11


async def test_timed_cycle_runs_once_the_jittered_interval_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = LoopClock(monkeypatch)
    counter = Counter()
    chore = Chore("test", 100.0, counter, run_at_start=False, rng=FixedRng(1.1))
    async with looping(chore):
        await clock.advance(109)
        assert counter.runs == 0
        await clock.advance(2)
        await counter.reached(1)
        await clock.advance(109)
        assert counter.runs == 1
        await clock.advance(2)
        await counter.reached(2)


async def test_pause_stops_a_timer_already_running(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = LoopClock(monkeypatch)
    counter = Counter()
    chore = Chore("test", 100.0, counter, run_at_start=False, jitter=0)
    async with looping(chore):
        await clock.advance(50)
        chore.pause()
        await clock.advance(1000)
        assert counter.runs == 0
        chore.resume()  # a whole interval from now
        await clock.advance(99)
        assert counter.runs == 0
        await clock.advance(2)
        await counter.reached(1)


async def test_next_run_backoff_on_the_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = LoopClock(monkeypatch)
    runs = 0
    changed = asyncio.Event()

    async def cycle() -> NextRun | None:
        nonlocal runs
        runs += 1
        changed.set()
        return NextRun(5.0) if runs == 1 else None

    chore = Chore("test", HOUR, cycle, jitter=0)
    async with looping(chore):
        async with asyncio.timeout(5):
            await changed.wait()
        changed.clear()
        await clock.advance(4)
        assert runs == 1
        await clock.advance(2)
        async with asyncio.timeout(5):
            await changed.wait()
        assert runs == 2
        await clock.advance(HOUR - 1)
        assert runs == 2


async def test_waits_are_jittered() -> None:
    async def cycle() -> None:
        pass

    rng = FixedRng(1.2)
    chore = Chore("test", 100.0, cycle, jitter=0.25, rng=rng)
    chore.pause()
    async with looping(chore):
        await chore.trigger_and_wait()
        chore.resume()
        assert rng.bounds[-1] == (0.75, 1.25)
        assert next_wait(chore) == pytest.approx(120.0, abs=0.5)


async def test_jitter_spreads_waits_within_bounds() -> None:
    async def cycle() -> None:
        pass

    waits = []
    chore = Chore("test", 100.0, cycle, jitter=0.1, rng=random.Random(1))
    async with looping(chore):
        for _ in range(30):
            await chore.trigger_and_wait()
            waits.append(next_wait(chore))
    assert all(89.9 <= wait <= 110.1 for wait in waits)
    assert max(waits) - min(waits) > 5  # spread, not one value


async def test_jitter_must_be_a_fraction() -> None:
    async def cycle() -> None:
        pass

    for jitter in (-0.1, 1.5):
        with pytest.raises(ValueError):
            Chore("test", 1, cycle, jitter=jitter)


async def test_next_run_sets_the_following_wait() -> None:
    answers: list[object] = [NextRun(5.0), None]

    async def cycle() -> object:
        return answers.pop(0)

    chore = Chore("test", HOUR, cycle, rng=FixedRng(0.9))
    chore.pause()
    async with looping(chore):
        assert await chore.trigger_and_wait() == NextRun(5.0)
        chore.resume()
        assert next_wait(chore) == pytest.approx(4.5, abs=0.1)  # backoff, jittered too
        assert await chore.trigger_and_wait() is None
        assert next_wait(chore) == pytest.approx(0.9 * HOUR, abs=1)  # back to the interval


async def test_next_run_cannot_be_negative() -> None:
    with pytest.raises(ValueError):
        NextRun(-1)
    with pytest.raises(ValueError):
        NextRun(float("nan"))


async def test_failure_reaches_the_trigger_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fail = True

    async def cycle() -> str:
        if fail:
            raise ValueError("boom")
        return "fine"

    chore = Chore("flaky", HOUR, cycle, run_at_start=False, rng=FixedRng(1.0))
    async with looping(chore) as task:
        with (
            caplog.at_level(logging.WARNING, logger="metadisk.runtime.chore"),
            pytest.raises(ValueError, match="boom"),
        ):
            await chore.trigger_and_wait()
        assert next_wait(chore) == pytest.approx(HOUR, abs=1)
        fail = False
        assert await chore.trigger_and_wait() == "fine"
        assert not task.done()
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "flaky" in record.getMessage() and "boom" in record.getMessage()
    assert not record.exc_info  # the traceback only at debug level


async def test_a_failure_after_next_run_goes_back_to_the_interval() -> None:
    answers: list[object] = [NextRun(1.0), ValueError("boom")]

    async def cycle() -> object:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    chore = Chore("test", HOUR, cycle, rng=FixedRng(1.0))
    chore.pause()
    async with looping(chore):
        await chore.trigger_and_wait()
        with pytest.raises(ValueError):
            await chore.trigger_and_wait()
        chore.resume()
        assert next_wait(chore) == pytest.approx(HOUR, abs=1)


async def test_failure_traceback_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    async def cycle() -> None:
        raise ValueError("boom")

    chore = Chore("flaky", HOUR, cycle)
    with (
        caplog.at_level(logging.DEBUG, logger="metadisk.runtime.chore"),
        pytest.raises(ValueError),
    ):
        await chore.trigger_and_wait()
    [record] = caplog.records
    assert record.exc_info is not None


async def test_unwatched_failures_do_not_stop_the_loop() -> None:
    runs = 0
    third = asyncio.Event()

    async def cycle() -> None:
        nonlocal runs
        runs += 1
        if runs == 3:
            third.set()
        raise RuntimeError("always")

    chore = Chore("test", 0.001, cycle)
    async with looping(chore) as task:
        async with asyncio.timeout(10):
            await third.wait()
        assert not task.done()


async def test_trigger_without_the_loop_runs_the_cycle_in_the_caller() -> None:
    calls = 0

    async def cycle() -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyError("second")
        return calls

    chore = Chore("test", HOUR, cycle)
    assert not chore.running
    assert await chore.trigger_and_wait() == 1
    with pytest.raises(KeyError):
        await chore.trigger_and_wait()
    assert await chore.trigger_and_wait() == 3


async def test_one_cycle_at_a_time_between_caller_and_loop() -> None:
    active = 0
    most = 0
    entered = asyncio.Event()
    release = asyncio.Event()

    async def cycle() -> None:
        nonlocal active, most
        active += 1
        most = max(most, active)
        entered.set()
        await release.wait()
        active -= 1

    chore = Chore("test", HOUR, cycle)  # runs at start: it must wait for the direct cycle
    direct = asyncio.create_task(chore.trigger_and_wait())
    await entered.wait()
    async with looping(chore):
        await yield_to_loop()
        assert active == 1
        release.set()
        await direct
        await chore.trigger_and_wait()
    assert most == 1


async def test_triggers_during_a_cycle_get_the_next_one() -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    runs = 0

    async def cycle() -> int:
        nonlocal runs
        runs += 1
        entered.set()
        await release.wait()
        return runs

    chore = Chore("test", HOUR, cycle, run_at_start=False)
    chore.pause()
    async with looping(chore):
        first = asyncio.create_task(chore.trigger_and_wait())
        await entered.wait()
        second = asyncio.create_task(chore.trigger_and_wait())
        third = asyncio.create_task(chore.trigger_and_wait())
        await yield_to_loop()
        release.set()
        assert await first == 1
        # both came mid-cycle: they share the fresh cycle that follows, not the one in progress
        assert await second == 2
        assert await third == 2
        assert runs == 2


async def test_cancelled_trigger_leaves_the_loop_alone() -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    finished: list[int] = []

    async def cycle() -> int:
        entered.set()
        await release.wait()
        finished.append(len(finished) + 1)
        return len(finished)

    chore = Chore("test", HOUR, cycle, run_at_start=False)
    chore.pause()
    async with looping(chore) as task:
        caller = asyncio.create_task(chore.trigger_and_wait())
        other = asyncio.create_task(chore.trigger_and_wait())
        await entered.wait()
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        release.set()
        assert await other == 1  # the shared cycle was not cancelled
        assert finished == [1]
        assert await chore.trigger_and_wait() == 2
        assert not task.done()


async def test_cancelled_trigger_of_a_failing_cycle_leaves_nothing_behind() -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def cycle() -> None:
        entered.set()
        await release.wait()
        raise ValueError("nobody is listening")

    chore = Chore("test", HOUR, cycle, run_at_start=False)
    chore.pause()
    async with looping(chore) as task:
        caller = asyncio.create_task(chore.trigger_and_wait())
        await entered.wait()
        caller.cancel()
        release.set()
        await yield_to_loop()
        assert caller.cancelled()
        assert not task.done()


async def test_cancelling_run_cancels_the_cycle_and_the_waiters() -> None:
    entered = asyncio.Event()
    cycle_cancelled = False

    async def cycle() -> None:
        nonlocal cycle_cancelled
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cycle_cancelled = True
            raise

    chore = Chore("test", HOUR, cycle, run_at_start=False)
    chore.pause()
    task = asyncio.create_task(chore.run())
    in_progress = asyncio.create_task(chore.trigger_and_wait())
    await entered.wait()
    pending = asyncio.create_task(chore.trigger_and_wait())  # waits for the next cycle
    await yield_to_loop()

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert cycle_cancelled
    assert not chore.running
    for waiter in (in_progress, pending):
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(5):  # a waiter left behind would wait forever
                await waiter

    # the chore can run again, and a trigger without the loop runs directly
    entered.clear()
    direct = asyncio.create_task(chore.trigger_and_wait())
    await entered.wait()
    direct.cancel()
    with pytest.raises(asyncio.CancelledError):
        await direct


async def test_run_twice_is_refused() -> None:
    async def cycle() -> None:
        pass

    chore = Chore("test", HOUR, cycle)
    async with looping(chore):
        assert chore.running
        with pytest.raises(RuntimeError, match="already running"):
            await chore.run()
    assert not chore.running


async def test_observer_hears_every_cycle() -> None:
    outcomes = iter([None, ValueError("boom"), None])
    recorder = Recorder()

    async def cycle() -> None:
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome

    chore = Chore("observed", HOUR, cycle, run_at_start=False, observer=recorder)
    chore.pause()
    async with looping(chore):
        await chore.trigger_and_wait()
        with pytest.raises(ValueError):
            await chore.trigger_and_wait()
    await chore.trigger_and_wait()  # a direct run counts too
    assert [(name, outcome) for name, outcome, _ in recorder.cycles] == [
        ("observed", "ok"),
        ("observed", "error"),
        ("observed", "ok"),
    ]
    assert all(seconds >= 0 for _, _, seconds in recorder.cycles)


async def test_a_failing_observer_does_not_fail_the_cycle() -> None:
    class Broken:
        def cycle_done(self, chore: str, outcome: Outcome, seconds: float) -> None:
            raise RuntimeError("metrics down")

    async def cycle() -> str:
        return "done"

    assert await Chore("test", HOUR, cycle, observer=Broken()).trigger_and_wait() == "done"
