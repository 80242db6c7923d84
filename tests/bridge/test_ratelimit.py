"""`RateLimiter` on a fake clock, and the [server] / [accounts] edge knobs' validation."""

from __future__ import annotations

import pytest

from metadisk.bridge.config import AccountsConfig, ServerConfig
from metadisk.bridge.ratelimit import Limit, RateLimiter

LOGIN = Limit("login", rate=0.5, burst=2)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    assert [limiter.take(LOGIN, "a"), limiter.take(LOGIN, "a")] == [0.0, 0.0]
    assert limiter.take(LOGIN, "a") == pytest.approx(2.0)  # one token at 0.5 a second
    assert limiter.take(LOGIN, "b") == 0.0  # another key, another bucket
    clock.now += 2.0
    assert limiter.take(LOGIN, "a") == 0.0
    assert limiter.take(LOGIN, "a") > 0


def test_take_all_takes_from_every_bucket_or_none() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    narrow = Limit("narrow", rate=0.1, burst=1)
    assert limiter.take_all([(LOGIN, "a"), (narrow, "x")]) == 0
    assert limiter.take_all([(LOGIN, "a"), (narrow, "x")]) == 10  # whole seconds, rounded up
    # The refusal gave back the login token it had taken: one is left of two.
    assert limiter.take(LOGIN, "a") == 0.0
    assert limiter.take(LOGIN, "a") > 0


def test_give_back_never_overfills_and_zero_rate_is_no_limit() -> None:
    limiter = RateLimiter(clock=Clock())
    limiter.give_back(LOGIN, "a")
    limiter.give_back(LOGIN, "a")
    assert [limiter.take(LOGIN, "a") for _ in range(3)][2] > 0
    free = Limit("free", rate=0, burst=1)
    assert all(limiter.take(free, "a") == 0 for _ in range(100))


def test_the_least_recently_used_buckets_go_first() -> None:
    limiter = RateLimiter(max_keys=2, clock=Clock())
    for key in ("a", "b"):
        limiter.take(LOGIN, key)
        limiter.take(LOGIN, key)
    limiter.take(LOGIN, "a")  # "a" used last
    limiter.take(LOGIN, "c")  # evicts "b", which starts full again
    assert limiter.take(LOGIN, "b") == 0.0
    assert limiter.take(LOGIN, "c") == 0.0
    assert limiter.take(LOGIN, "c") > 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_body_bytes", 0, "max_body_bytes must be at least 1"),
        ("header_timeout", 0.0, "header_timeout must be above 0"),
        ("login_rate", -1.0, "login_rate cannot be negative"),
        ("begin_burst", 0, "begin_burst must be at least 1"),
    ],
)
def test_edge_knobs_are_checked(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServerConfig(**{field: value})  # type: ignore[arg-type]


def test_the_hashing_queue_is_checked() -> None:
    with pytest.raises(ValueError, match="hash_threads >= 1"):
        AccountsConfig(hash_threads=0)
