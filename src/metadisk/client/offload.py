"""Running the CPU-heavy segment work off the event loop, over reusable segment buffers.

Encryption, erasure coding and hashing cost about 2 ms per MiB of plaintext on one core (the
codec alone about 0.8 ms), and the erasure codec holds the GIL while it works. `Offload` runs
the functions of `metadisk.client.segment_codec` either in worker processes, where they read
and write shared-memory buffers so no segment data is ever pickled, or in a thread pool over
ordinary buffers. docs/client.md has the measurements behind the default.

Buffers are leased from the offload and given back after the segment is done; a transfer bounds
how many it holds at once, which is what bounds the client's memory whatever the file size.

Worker processes take a few hundred milliseconds to start (the forkserver imports the program's
main module first). Until the first one answers, jobs run on a thread over the same buffers
instead of waiting: a transfer's first segments do not stand still while the pool warms up.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import shared_memory
from typing import Any, TypeVar

from metadisk.allocator import tune_for_streaming
from metadisk.client.segment_codec import BufferRef, SharedRef

T = TypeVar("T")

_MAX_IDLE_BUFFERS = 4  # kept for the next segment or transfer; beyond this they are freed

# Worker processes cost CPU a thread does not (~0.35 s to start, ~0.4 ms more per MiB for the
# shared-memory round trips), which pays off only with cores to spare: on 2 cores, threads
# measured faster both ways (docs/client.md, "Off the event loop").
PROCESS_CORES = 4


class _SharedMemory(shared_memory.SharedMemory):
    """A block whose finalizer tolerates views still held elsewhere (see `SegmentBuffer.close`).

    Created by the client process, so the multiprocessing resource tracker unlinks it even if
    the client is killed: plaintext never outlives the process in /dev/shm.
    """

    def __del__(self) -> None:
        with contextlib.suppress(BufferError):
            super().__del__()


def _shared_memory_works() -> bool:
    return sys.platform.startswith("linux") and os.path.isdir("/dev/shm")  # noqa: S108


class SegmentBuffer:
    """One segment's working memory: shared memory when workers are processes, else a bytearray."""

    __slots__ = ("_shm", "ref", "size", "view")

    def __init__(self, size: int, *, shared: bool) -> None:
        self.size = size
        self._shm: _SharedMemory | None = None
        if shared:
            self._shm = _SharedMemory(create=True, size=size)
            buf = self._shm.buf
            assert buf is not None  # set by the constructor; None only after close()
            self.view = buf[:size]
            self.ref: BufferRef = SharedRef(self._shm.name, size)
        else:
            self.view = memoryview(bytearray(size))
            self.ref = self.view

    def close(self) -> None:
        self.view.release()
        if self._shm is not None:
            shm, self._shm = self._shm, None
            with contextlib.suppress(BufferError):
                # A caller still holds a view (say, the last chunk of a download): the mapping
                # goes when that view does; the name goes now.
                shm.close()
            shm.unlink()


class Offload:
    """Runs segment work in worker processes (shared memory) or threads, off the event loop.

    Example::

        offload = Offload()  # processes on Linux with more than one core, threads otherwise
        buffer = await offload.acquire(layout.size)
        try:
            encoded = await offload.run(encode_segment, buffer, layout, content_key=key, ...)
        finally:
            await offload.release(buffer)
        await offload.aclose()

    Parameters
    ----------
    processes:
        True for worker processes, False for threads, None to choose by platform: processes
        where there are `PROCESS_CORES` cores or more and POSIX shared memory, else threads.
    workers:
        Concurrent segment jobs (default: the number of cores, at most 4).
    """

    def __init__(self, *, processes: bool | None = None, workers: int | None = None) -> None:
        cores = os.cpu_count() or 1
        if processes is None:
            processes = cores >= PROCESS_CORES and _shared_memory_works()
        elif processes and not _shared_memory_works():
            raise ValueError("worker processes need POSIX shared memory in /dev/shm")
        self.processes = processes
        self.workers = workers or min(4, cores)
        self._executor: Executor | None = None
        self._warming: ThreadPoolExecutor | None = None  # runs jobs until a worker is up
        self._ready: Future[None] | None = None  # the first worker's answer
        self._idle: list[SegmentBuffer] = []
        self._closed = False

    def start(self) -> None:
        """Start the workers now (they start on first use otherwise); returns at once."""
        self._pool()

    def _pool(self) -> Executor:
        if self._closed:
            raise RuntimeError("this offload is closed")
        if self._executor is None:
            if self.processes:
                # forkserver, not fork: the sync facade runs an event-loop thread, and forking a
                # threaded process can copy held locks into the child.
                context = multiprocessing.get_context("forkserver")
                pool = ProcessPoolExecutor(
                    self.workers, mp_context=context, initializer=tune_for_streaming
                )
                # one no-op per worker: the pool spawns a process per job it cannot place
                self._ready = pool.submit(_nothing)
                for _ in range(self.workers - 1):
                    pool.submit(_nothing)
                self._executor = pool
            else:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="metadisk")
        return self._executor

    def _executor_for(self, buffer: SegmentBuffer) -> tuple[Executor, BufferRef]:
        """Where to run a job on `buffer` now, and how that executor sees the buffer."""
        pool = self._pool()
        if self._ready is None or self._ready.done():
            return pool, buffer.ref
        if self._warming is None:
            self._warming = ThreadPoolExecutor(1, thread_name_prefix="metadisk-warmup")
        return self._warming, buffer.view

    async def acquire(self, size: int) -> SegmentBuffer:
        """A buffer of at least `size` bytes, reused if one is idle."""
        fitting = [b for b in self._idle if b.size >= size]
        if fitting:
            best = min(fitting, key=lambda b: b.size)
            self._idle.remove(best)
            return best
        return SegmentBuffer(size, shared=self.processes)

    async def release(self, buffer: SegmentBuffer) -> None:
        """Give a buffer back once no worker and no transfer uses it any more."""
        if self._closed:
            buffer.close()
            return
        self._idle.append(buffer)
        while len(self._idle) > _MAX_IDLE_BUFFERS:
            self._idle.pop(0).close()

    async def run(
        self, fn: Callable[..., T], buffer: SegmentBuffer, *args: Any, **kwargs: Any
    ) -> T:
        """Run ``fn(buffer.ref, *args, **kwargs)`` in a worker and return its result.

        If the caller is cancelled, this still waits for the worker to finish before
        re-raising: the worker writes into `buffer`, which must not be reused before it stops.
        """
        loop = asyncio.get_running_loop()
        executor, ref = self._executor_for(buffer)
        future = loop.run_in_executor(executor, _call, fn, ref, args, kwargs)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            while not future.done():
                try:
                    await asyncio.wait({future})
                except asyncio.CancelledError:
                    continue
            raise

    async def aclose(self) -> None:
        """Stop the workers and free every idle buffer."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        for executor in (self._executor, self._warming):
            if executor is not None:
                await loop.run_in_executor(None, executor.shutdown)
        self._executor = self._warming = None
        for buffer in self._idle:
            buffer.close()
        self._idle.clear()


def _call(fn: Callable[..., T], ref: BufferRef, args: tuple[Any, ...], kwargs: Any) -> T:
    return fn(ref, *args, **kwargs)


def _nothing() -> None:
    """A worker's first job: its answer says the pool is up."""
