"""The lifecycle group: start in order, run together, close in reverse, and every failure path."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from metadisk.runtime.lifecycle import Group


class Journal:
    """Records what the items of a group did, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def step(self, event: str, error: Exception | None = None) -> Callable[[], Awaitable[None]]:
        async def step() -> None:
            self.events.append(event)
            if error is not None:
                raise error

        return step

    def forever(self, name: str) -> Callable[[], Awaitable[None]]:
        """A run that waits until cancelled, and notes that it was."""

        async def run() -> None:
            self.events.append(f"run {name}")
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.events.append(f"cancelled {name}")
                raise

        return run


def item(group: Group, journal: Journal, name: str, *, start: bool = True) -> None:
    group.add(
        name,
        start=journal.step(f"start {name}") if start else None,
        close=journal.step(f"close {name}"),
    )


async def test_starts_in_order_and_closes_in_reverse() -> None:
    journal = Journal()
    group = Group()
    for name in ("db", "store", "server"):
        item(group, journal, name)
    assert group.names == ["db", "store", "server"]
    await group.start()
    await group.aclose()
    assert journal.events == [
        "start db",
        "start store",
        "start server",
        "close server",
        "close store",
        "close db",
    ]


async def test_a_failed_start_closes_what_is_open_in_reverse() -> None:
    journal = Journal()
    group = Group()
    item(group, journal, "db")
    item(group, journal, "metrics", start=False)
    group.add(
        "server",
        start=journal.step("start server", OSError("port in use")),
        close=journal.step("close server"),
    )
    item(group, journal, "after")
    item(group, journal, "registry", start=False)  # built with the peer: open from the start
    with pytest.raises(OSError, match="port in use"):
        await group.start()
    assert journal.events == [
        "start db",
        "start server",
        "close registry",
        "close metrics",
        "close db",
    ]
    await group.aclose()  # already closed: nothing more
    assert len(journal.events) == 5
    with pytest.raises(RuntimeError):
        await group.run()


async def test_a_close_failing_after_a_failed_start_is_noted() -> None:
    journal = Journal()
    group = Group()
    group.add("db", start=journal.step("start db"), close=journal.step("close db", KeyError("x")))
    group.add("server", start=journal.step("start server", OSError("no")))
    with pytest.raises(OSError) as raised:
        await group.start()
    assert any("closing" in note for note in raised.value.__notes__)
    assert journal.events == ["start db", "start server", "close db"]


async def test_aclose_without_start_closes_the_items_without_a_start() -> None:
    journal = Journal()
    group = Group()
    item(group, journal, "db")
    item(group, journal, "pool", start=False)
    await group.aclose()
    assert journal.events == ["close pool"]
    with pytest.raises(RuntimeError):
        await group.start()  # closed for good


async def test_close_errors_run_every_close_and_raise_the_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal = Journal()
    group = Group()
    group.add("a", close=journal.step("close a"))
    group.add("b", close=journal.step("close b", ValueError("b broke")))
    group.add("c", close=journal.step("close c", KeyError("c broke")))
    group.add("d", close=journal.step("close d"))
    await group.start()
    with (
        caplog.at_level(logging.WARNING, logger="metadisk.runtime.lifecycle"),
        pytest.raises(KeyError, match="c broke"),  # the first to fail, closing in reverse
    ):
        await group.aclose()
    assert journal.events == ["close d", "close c", "close b", "close a"]
    logged = [record.getMessage() for record in caplog.records]
    assert any("c" in message and "c broke" in message for message in logged)
    assert any("b broke" in message for message in logged)
    await group.aclose()  # idempotent
    assert len(journal.events) == 4


async def test_run_failure_stops_the_others_and_keeps_its_type() -> None:
    journal = Journal()
    group = Group()
    group.add("server", run=journal.forever("server"))
    group.add("chore", run=journal.forever("chore"))

    async def broken() -> None:
        await asyncio.sleep(0)
        raise ConnectionError("bridge gone")

    group.add("checkin", run=broken)
    await group.start()
    with pytest.raises(ConnectionError, match="bridge gone"):
        await group.run()
    assert sorted(journal.events) == sorted(
        ["run server", "run chore", "cancelled server", "cancelled chore"]
    )


async def test_several_failures_at_once_raise_a_group() -> None:
    async def broken() -> None:
        raise ValueError("one")

    async def also_broken() -> None:
        raise KeyError("two")

    group = Group()
    group.add("a", run=broken)
    group.add("b", run=also_broken)
    await group.start()
    with pytest.raises(ExceptionGroup) as raised:
        await group.run()
    assert {type(exc) for exc in raised.value.exceptions} == {ValueError, KeyError}


async def test_a_run_that_returns_does_not_stop_the_others() -> None:
    journal = Journal()
    release = asyncio.Event()
    group = Group()
    group.add("oneshot", run=journal.step("oneshot done"))

    async def worker() -> None:
        await release.wait()
        journal.events.append("worker done")

    group.add("worker", run=worker)
    await group.start()
    task = asyncio.create_task(group.run())
    for _ in range(10):
        await asyncio.sleep(0)
    assert journal.events == ["oneshot done"]
    assert not task.done()
    release.set()
    await task  # returns once every run has returned
    assert journal.events == ["oneshot done", "worker done"]


async def test_cancelling_run_cancels_every_item() -> None:
    journal = Journal()
    group = Group()
    group.add("a", run=journal.forever("a"))
    group.add("b", run=journal.forever("b"))
    await group.start()
    task = asyncio.create_task(group.run())
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(journal.events) == ["cancelled a", "cancelled b", "run a", "run b"]


async def test_run_needs_a_started_group() -> None:
    group = Group()
    group.add("a", run=Journal().forever("a"))
    with pytest.raises(RuntimeError):
        await group.run()


async def test_add_refuses_duplicates_and_late_items() -> None:
    group = Group()
    group.add("a")
    with pytest.raises(ValueError):
        group.add("a")
    await group.start()
    with pytest.raises(RuntimeError):
        group.add("b")
    with pytest.raises(RuntimeError):
        await group.start()


async def test_running_starts_runs_and_closes() -> None:
    journal = Journal()
    group = Group()
    item(group, journal, "db")
    group.add("chore", run=journal.forever("chore"))
    async with group.running() as same:
        assert same is group
        for _ in range(5):
            await asyncio.sleep(0)
        assert journal.events == ["start db", "run chore"]
    assert journal.events == ["start db", "run chore", "cancelled chore", "close db"]


async def test_running_raises_a_run_failure_on_exit() -> None:
    journal = Journal()
    group = Group()
    item(group, journal, "db")
    group.add("server", run=journal.step("server", RuntimeError("crashed")))
    with pytest.raises(RuntimeError, match="crashed"):
        async with group.running():
            for _ in range(5):
                await asyncio.sleep(0)
    assert journal.events[-1] == "close db"


async def test_running_keeps_the_blocks_own_error() -> None:
    journal = Journal()
    group = Group()
    item(group, journal, "db")
    group.add("server", run=journal.step("server", RuntimeError("crashed")))
    with pytest.raises(LookupError):
        async with group.running():
            for _ in range(5):
                await asyncio.sleep(0)
            raise LookupError("the test's own")
    assert journal.events[-1] == "close db"
