"""The chore loop: triggered cycles, errors surfacing to the trigger, pause."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from metadisk.farmer.chore import Chore


@contextlib.asynccontextmanager
async def running(chore: Chore) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(chore.run())
    await asyncio.sleep(0)  # let the loop start
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_runs_at_start_then_on_trigger() -> None:
    runs: list[int] = []
    started = asyncio.Event()

    async def cycle() -> None:
        runs.append(len(runs))
        started.set()

    chore = Chore("test", 3600, cycle)
    async with running(chore):
        await started.wait()
        assert runs == [0]
        await chore.trigger_and_wait()
        await chore.trigger_and_wait()
        assert runs == [0, 1, 2]


async def test_paused_chore_still_runs_when_triggered() -> None:
    runs = 0

    async def cycle() -> None:
        nonlocal runs
        runs += 1

    chore = Chore("test", 0.0, cycle, run_at_start=False)
    chore.pause()  # with interval 0 it would otherwise spin
    async with running(chore):
        await chore.trigger_and_wait()
        await chore.trigger_and_wait()
        assert runs == 2


async def test_failure_reaches_the_trigger_and_the_loop_goes_on() -> None:
    fail = True

    async def cycle() -> None:
        if fail:
            raise ValueError("boom")

    chore = Chore("test", 3600, cycle, run_at_start=False)
    async with running(chore) as task:
        with pytest.raises(ValueError, match="boom"):
            await chore.trigger_and_wait()
        fail = False
        await chore.trigger_and_wait()
        assert not task.done()


async def test_trigger_needs_a_running_chore() -> None:
    async def cycle() -> None:
        pass

    with pytest.raises(RuntimeError):
        await Chore("test", 1, cycle).trigger_and_wait()


async def test_triggers_during_a_cycle_get_the_next_one() -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    runs = 0

    async def cycle() -> None:
        nonlocal runs
        runs += 1
        entered.set()
        await release.wait()

    chore = Chore("test", 3600, cycle, run_at_start=False)
    chore.pause()
    async with running(chore):
        first = asyncio.create_task(chore.trigger_and_wait())
        await entered.wait()
        second = asyncio.create_task(chore.trigger_and_wait())
        await asyncio.sleep(0)
        release.set()
        await first
        await second
        assert runs == 2  # the second trigger came mid-cycle, so it waited for a fresh one
