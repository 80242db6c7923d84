"""Reputation arithmetic: bounds, monotonicity and the thresholds' bite, as properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metadisk.core.reputation import (
    INITIAL,
    MIN_WEIGHT,
    Beta,
    Performance,
    ReputationConfig,
    new_node_count,
    sample_key,
    selection_weight,
)

forgets = st.floats(0.5, 1.0)
weights = st.floats(0.1, 10.0)
events = st.lists(st.booleans(), max_size=200)
unit = st.floats(0.0, 1.0)


def run(config: ReputationConfig, history: list[bool]) -> Beta:
    score = INITIAL
    for success in history:
        score = config.update(score, success)
    return score


@given(forgets, weights, events)
def test_score_stays_within_0_and_1_and_mass_is_bounded(
    forget: float, weight: float, history: list[bool]
) -> None:
    config = ReputationConfig(forget=forget, weight=weight)
    score = run(config, history)
    assert 0.0 <= score.score <= 1.0
    if forget < 1:
        assert score.alpha + score.beta <= max(1.0, weight / (1 - forget)) + 1e-6


@given(forgets, weights, events)
def test_a_success_never_lowers_and_a_failure_never_raises(
    forget: float, weight: float, history: list[bool]
) -> None:
    config = ReputationConfig(forget=forget, weight=weight)
    score = run(config, history)
    assert config.update(score, True).score >= score.score - 1e-12
    assert config.update(score, False).score <= score.score + 1e-12


@given(events, st.integers(1, 50))
def test_forgetting_lets_recent_behaviour_win(history: list[bool], tail: int) -> None:
    config = ReputationConfig()
    good = run(config, history + [True] * tail)
    bad = run(config, history + [False] * tail)
    assert good.score > bad.score


def test_defaults_disqualify_a_long_clean_node_after_a_few_failures_and_a_new_one_at_once() -> None:
    config = ReputationConfig()
    veteran = run(config, [True] * 2000)
    failures = 0
    while veteran.score >= config.disqualify_below:
        veteran = config.update(veteran, False)
        failures += 1
    assert 3 <= failures <= 8
    assert config.update(INITIAL, False).score < config.disqualify_below
    assert INITIAL.score == 1.0


@given(st.floats(0.0, 0.99), st.lists(st.tuples(st.booleans(), st.floats(0, 1e6)), max_size=50))
def test_performance_is_a_mean_within_its_inputs(
    decay: float, transfers: list[tuple[bool, float]]
) -> None:
    perf = Performance()
    for ok, latency in transfers:
        perf = perf.update(ok, latency, decay=decay)
    assert 0.0 <= perf.success <= 1.0
    assert 0.0 <= perf.latency_ms <= max([latency for _, latency in transfers], default=0.0) + 1e-6


@given(unit, st.floats(0, 1e7), unit, st.floats(0, 1e7))
def test_selection_weight_prefers_success_and_speed_but_never_starves(
    s1: float, l1: float, s2: float, l2: float
) -> None:
    w = selection_weight(s1, l1)
    assert MIN_WEIGHT <= w <= 1.0
    if s1 >= s2 and l1 <= l2:
        assert w >= selection_weight(s2, l2)


@given(st.floats(0.01, 1.0), st.floats(1e-12, 1.0), st.floats(0.01, 1.0))
def test_sample_keys_favour_heavier_weights(w: float, u: float, heavier: float) -> None:
    assert sample_key(w + heavier, u) <= sample_key(w, u)
    assert sample_key(0.0, u) == math.inf


@given(st.integers(0, 300), st.floats(0.0, 1.0), st.floats(0.0, 0.999999))
def test_new_node_count_is_the_share_rounded_either_way(count: int, share: float, u: float) -> None:
    got = new_node_count(count, share, u)
    assert 0 <= got <= count
    assert math.floor(count * share) <= got <= math.ceil(count * share)


def test_new_node_count_gives_small_requests_their_share_on_average() -> None:
    draws = [i / 1000 for i in range(1000)]
    assert sum(new_node_count(10, 0.05, u) for u in draws) == 500  # 0.5 per request


def test_config_checks_its_ranges() -> None:
    with pytest.raises(ValueError):
        ReputationConfig(forget=0)
    with pytest.raises(ValueError):
        ReputationConfig(weight=0)
    with pytest.raises(ValueError):
        ReputationConfig(disqualify_below=1.5)
