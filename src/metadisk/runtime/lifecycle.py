"""A peer's services as one group: started in order, run together, closed in reverse.

Like storj's private/lifecycle: a peer builds its services in dependency order and adds each,
then::

    group = Group()
    group.add("db", start=db.open, close=db.close)
    group.add("server", start=server.start, close=server.close)
    group.add("checkin", run=checkin_chore.run)
    try:
        await group.start()
        await group.run()  # until cancelled, or until a service fails
    finally:
        await group.aclose()

An item is open, and so closed by `aclose()`, from the moment its `start` returned; an item
without a `start` is open from the moment it is added (its resource was built with the peer), so
it is closed even if `start()` was never called or failed before reaching it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("metadisk.runtime.lifecycle")


@dataclass(frozen=True, slots=True)
class _Item:
    name: str
    start: Callable[[], Awaitable[None]] | None
    run: Callable[[], Awaitable[None]] | None
    close: Callable[[], Awaitable[object]] | None


class Group:
    """A peer's services: started in order, run together, closed in reverse."""

    def __init__(self) -> None:
        self._items: list[_Item] = []
        self._open: list[_Item] = []  # in order of add; `aclose` pops from the end
        self._started = False  # start() was called
        self._ready = False  # start() succeeded
        self._closed = False

    @property
    def names(self) -> list[str]:
        """The items' names, in order of add."""
        return [item.name for item in self._items]

    def add(
        self,
        name: str,
        *,
        start: Callable[[], Awaitable[None]] | None = None,
        run: Callable[[], Awaitable[None]] | None = None,
        close: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """Add a service; items start in the order they are added and close in reverse."""
        if self._started:
            raise RuntimeError(f"cannot add {name!r}: the group has started")
        if any(item.name == name for item in self._items):
            raise ValueError(f"the group already has an item named {name!r}")
        item = _Item(name, start, run, close)
        self._items.append(item)
        if start is None:
            self._open.append(item)

    async def start(self) -> None:
        """Start every item in order of add.

        If one fails, the group closes (every open item, in reverse) and the error is raised, with
        a note for each close that failed too.
        """
        if self._started or self._closed:
            raise RuntimeError("a group starts once, and not after it was closed")
        self._started = True
        self._open.clear()  # rebuilt in order of add as the items start
        for item in self._items:
            if item.start is not None:
                try:
                    await item.start()
                except BaseException as exc:
                    # the items after this one that have no start are open too: close them as well
                    index = self._items.index(item)
                    self._open.extend(i for i in self._items[index + 1 :] if i.start is None)
                    # debug only: the error goes up to the caller, who reports it once
                    log.debug("starting %s failed: %s", item.name, exc)
                    try:
                        await self.aclose()
                    except Exception as close_error:
                        exc.add_note(f"closing the started services also failed: {close_error}")
                    raise
            self._open.append(item)
        self._ready = True

    async def run(self) -> None:
        """Run every item's `run` together until all return, one fails, or this is cancelled.

        The first failure cancels the others and propagates as itself (a lone exception is taken
        out of its ExceptionGroup); only if several fail at once is an ExceptionGroup raised. An
        item whose `run` returns does not stop the others.
        """
        if not self._ready or self._closed:
            raise RuntimeError("run() needs a started group that is not closed")
        error: BaseException | None = None
        try:
            async with asyncio.TaskGroup() as tasks:
                for item in self._items:
                    if item.run is not None:
                        tasks.create_task(self._run_item(item), name=item.name)
        except BaseExceptionGroup as group:
            if len(group.exceptions) != 1:
                raise
            error = group.exceptions[0]
        if error is not None:
            raise error  # outside the except block: its own context and cause stay as they were

    async def aclose(self) -> None:
        """Close every open item in reverse order of add.

        Every close runs even if others fail; failures are logged and the first is raised once all
        have run. A second call does nothing. If this is cancelled, the items not closed yet stay
        open for another call.
        """
        self._closed = True
        first: Exception | None = None
        while self._open:
            item = self._open.pop()
            if item.close is None:
                continue
            try:
                await item.close()
            except Exception as exc:
                log.warning("closing %s failed: %s: %s", item.name, type(exc).__name__, exc)
                first = first or exc
        if first is not None:
            raise first

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Group]:
        """Started, running in the background of the block, and closed after it (tests, embedding).

        If an item's run failed while the block ran, the failure is raised on leaving it (unless
        the block itself raised).
        """
        await self.start()
        try:
            task = asyncio.create_task(self.run(), name="lifecycle-run")
            body_failed = True
            try:
                yield self
                body_failed = False
            finally:
                task.cancel()
                await asyncio.wait([task])
                error = None if task.cancelled() else task.exception()
                if error is not None and not body_failed:
                    raise error
        finally:
            await self.aclose()

    async def _run_item(self, item: _Item) -> None:
        assert item.run is not None
        try:
            await item.run()
        except Exception as exc:
            log.error("service %s failed: %s: %s", item.name, type(exc).__name__, exc)
            raise
        log.debug("%s returned", item.name)


__all__ = ["Group"]
