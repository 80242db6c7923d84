"""Token buckets keyed by (what, key), in the memory of one API process.

Several API processes each count their own: behind one address, N processes let N times the
configured rate through. That bounds what one caller costs without a shared store on the hot path.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limit:
    """`rate` tokens a second refill a bucket of `burst`; a rate of 0 means no limit."""

    what: str
    rate: float
    burst: int


class RateLimiter:
    """Buckets for (limit, key) pairs, made full on first use.

    At most `max_keys` buckets are kept: the least recently used go first, so a caller who makes
    up keys (emails, node ids) to get fresh buckets also meets the per-address limit.
    """

    def __init__(
        self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # (tokens, at)

    def take(self, limit: Limit, key: str) -> float:
        """Take a token: 0.0 if one was there, else the seconds until one will be."""
        if limit.rate == 0:
            return 0.0
        now = self._clock()
        tokens = self._tokens(limit, key, now)
        if tokens < 1:
            self._buckets[(limit.what, key)] = (tokens, now)
            return (1 - tokens) / limit.rate
        self._buckets[(limit.what, key)] = (tokens - 1, now)
        while len(self._buckets) > self._max_keys:
            del self._buckets[next(iter(self._buckets))]
        return 0.0

    def give_back(self, limit: Limit, key: str) -> None:
        """Return a token taken for something that, after all, does not count."""
        if limit.rate == 0:
            return
        now = self._clock()
        self._buckets[(limit.what, key)] = (
            min(limit.burst, self._tokens(limit, key, now) + 1),
            now,
        )

    def take_all(self, wanted: Sequence[tuple[Limit, str]]) -> int:
        """A token from each bucket, or from none: 0, or whole seconds to wait (Retry-After)."""
        taken: list[tuple[Limit, str]] = []
        wait = 0.0
        for limit, key in wanted:
            needed = self.take(limit, key)
            if needed > 0:
                wait = max(wait, needed)
            else:
                taken.append((limit, key))
        if wait == 0:
            return 0
        for limit, key in taken:
            self.give_back(limit, key)
        return max(1, math.ceil(wait))

    def _tokens(self, limit: Limit, key: str, now: float) -> float:
        # Popped and put back by the caller: the dict's order is the order of last use.
        last = self._buckets.pop((limit.what, key), None)
        if last is None:
            return float(limit.burst)
        tokens, at = last
        return min(float(limit.burst), tokens + (now - at) * limit.rate)
