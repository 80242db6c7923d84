"""`Offload`: jobs run on a thread until the worker processes are up, then in them."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from metadisk.client.offload import Offload
from metadisk.client.segment_codec import BufferRef, _resolve


def stamp(ref: BufferRef, marker: bytes) -> int:
    """Write `marker` at the start of the buffer; return the pid that did it."""
    view = _resolve(ref)
    view[: len(marker)] = marker
    return os.getpid()


async def test_jobs_run_on_a_thread_until_a_worker_is_up_then_in_workers() -> None:
    offload = Offload(processes=True, workers=1)
    buffer = await offload.acquire(4096)
    try:
        # the forkserver has not even started: this one cannot wait for it
        assert await offload.run(stamp, buffer, b"first") == os.getpid()
        assert bytes(buffer.view[:5]) == b"first"
        deadline = time.monotonic() + 60
        while (pid := await offload.run(stamp, buffer, b"later")) == os.getpid():
            assert time.monotonic() < deadline, "the worker never came up"
            await asyncio.sleep(0.05)
        assert pid != os.getpid()
        assert bytes(buffer.view[:5]) == b"later"  # written by the worker, through shared memory
    finally:
        await offload.release(buffer)
        await offload.aclose()


def test_threads_by_default_below_the_core_count_for_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert not Offload().processes
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert Offload().processes == os.path.isdir("/dev/shm")
