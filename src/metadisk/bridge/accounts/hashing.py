"""Password hashing off the event loop, on a few threads with a bounded queue.

Argon2id costs ~50 ms of CPU and 64 MiB per call at the default cost. Run in the shared
threadpool, a burst of logins took up to 40 threads (2.5 GiB) and starved every other request;
here at most `threads` hash at once, `queue` more wait, and the rest are told to come back.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from metadisk.bridge import errors

T = TypeVar("T")
RETRY_AFTER = 1  # seconds: the queue drains in well under that at the default cost


class Busy(errors.Unavailable):
    """503 ``busy``: too much work queued; answered with ``Retry-After``."""

    code = "busy"

    def __init__(self, message: str, retry_after: int = RETRY_AFTER) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class HashingPool:
    """Runs account work that hashes a password; `Busy` once `threads + queue` calls are in."""

    def __init__(self, threads: int, queue: int) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="password-hash")
        # Released when the work ends, not when its caller stops waiting: a client that hangs
        # up does not free a slot its hash still holds.
        self._slots = threading.BoundedSemaphore(threads + queue)

    async def run(self, work: Callable[[], T]) -> T:
        if not self._slots.acquire(blocking=False):
            raise Busy("too many password checks queued; try again shortly")
        try:
            future = self._executor.submit(work)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _release(self, _: Future[T]) -> None:
        self._slots.release()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
