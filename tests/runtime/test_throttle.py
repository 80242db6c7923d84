"""`Throttle` keeps the average rate, lets a burst through, and never starves a big request."""

from __future__ import annotations

import pytest

from metadisk.runtime.throttle import Throttle


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_a_burst_passes_then_the_rate_holds() -> None:
    time = FakeTime()
    throttle = Throttle(100, burst=100, clock=time.clock, sleep=time.sleep)
    await throttle.take(100)
    assert time.slept == []
    await throttle.take(50)
    assert time.slept == [pytest.approx(0.5)]
    for _ in range(10):
        await throttle.take(100)
    # 1,150 bytes in all at 100 a second, less the first burst of 100
    assert time.now == pytest.approx(10.5)


async def test_a_request_above_the_burst_waits_for_a_full_bucket_then_owes_the_rest() -> None:
    time = FakeTime()
    throttle = Throttle(100, burst=100, clock=time.clock, sleep=time.sleep)
    await throttle.take(1000)  # a full bucket: through at once, 900 in debt
    assert time.now == 0
    await throttle.take(100)
    assert time.now == pytest.approx(10.0)  # the debt paid and this request's own 100


async def test_rate_zero_is_no_limit() -> None:
    time = FakeTime()
    throttle = Throttle(0, clock=time.clock, sleep=time.sleep)
    for _ in range(100):
        await throttle.take(1 << 30)
    assert time.slept == []


def test_a_negative_rate_is_refused() -> None:
    with pytest.raises(ValueError):
        Throttle(-1)
