"""How audit outcomes and uptime checks move a node's standing, as properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from metadisk.bridge.config import HealthConfig
from metadisk.bridge.health.db import Scores
from metadisk.bridge.health.standing import after_audit, after_check
from metadisk.core.reputation import INITIAL

CONFIG = HealthConfig(vetting_audits=3)
NEW = Scores(INITIAL, INITIAL, INITIAL, 0, 0, None, None, None)
outcomes = st.lists(
    st.sampled_from(["pass", "fault", "fail", "unknown", "contained", "offline", "skipped"]),
    max_size=80,
)


def replay(history: list[str]) -> Scores:
    scores = NEW
    for now, outcome in enumerate(history, start=1):
        scores = after_audit(scores, outcome, CONFIG, now)  # type: ignore[arg-type]
    return scores


@given(outcomes, outcomes)
def test_disqualification_is_for_good(before: list[str], after: list[str]) -> None:
    scores = replay(before)
    if scores.disqualified_at is not None:
        assert replay(before + after) == scores


@given(outcomes)
def test_only_failed_audits_disqualify_and_only_passes_vet(history: list[str]) -> None:
    scores = replay(history)
    failures = sum(o in ("fault", "fail") for o in history)
    if failures == 0:
        assert scores.disqualified_at is None and scores.audit.score == 1.0
    passes = [i for i, o in enumerate(history) if o == "pass"]
    if scores.vetted_at is not None:
        assert len(passes) >= CONFIG.vetting_audits
    assert scores.audits_passed <= scores.audits


@given(st.lists(st.sampled_from(["contained", "offline", "skipped"]), max_size=50))
def test_silence_and_absence_move_no_score(history: list[str]) -> None:
    assert replay(history) == NEW


def test_a_new_node_that_fails_once_is_disqualified_and_three_passes_vet() -> None:
    assert replay(["fail"]).disqualified_at == 1
    assert replay(["pass", "pass", "pass"]).vetted_at == 3


def test_unknown_errors_suspend_and_passes_lift_it() -> None:
    scores = replay(["unknown"])
    assert scores.suspended_at == 1 and scores.disqualified_at is None
    lifted = replay(["unknown", "pass", "pass"])
    assert lifted.suspended_at is None


@given(st.lists(st.booleans(), max_size=60))
def test_uptime_checks_move_only_the_online_score(checks: list[bool]) -> None:
    scores = NEW
    for online in checks:
        scores = after_check(scores, online, CONFIG)
    assert (scores.audit, scores.unknown, scores.disqualified_at, scores.suspended_at) == (
        INITIAL, INITIAL, None, None,
    )  # fmt: skip
    if checks and not checks[-1]:
        assert scores.online.score < 1.0
