"""Reputation arithmetic: beta scores with forgetting, and decaying transfer performance.

Each node has three beta scores: audits, audits that errored in unknown ways, and uptime checks.
A score is ``alpha / (alpha + beta)``; every event first forgets (multiplies both by ``forget``)
and then adds ``weight`` to alpha on a success or to beta on a failure::

    alpha' = forget * alpha + weight * success
    beta'  = forget * beta  + weight * (1 - success)

Forgetting bounds ``alpha + beta`` by ``weight / (1 - forget)``, so old history fades and a
node's recent behaviour decides: with the defaults (0.99, 1.0) a node with a long clean record
is disqualified after about five audit failures in a row, a new node (alpha 1, beta 0) after
one. This is the beta reputation model of Storj's published design; the thresholds are ours
to configure.

Performance is what clients report of piece transfers: a success rate and a latency, each an
exponentially weighted moving average, which selection turns into a weight (`selection_weight`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Beta:
    """One beta reputation score."""

    alpha: float
    beta: float

    @property
    def score(self) -> float:
        total = self.alpha + self.beta
        return 1.0 if total <= 0 else self.alpha / total

    def update(self, success: bool, *, forget: float, weight: float) -> Beta:
        """The score after one more event."""
        return Beta(
            forget * self.alpha + (weight if success else 0.0),
            forget * self.beta + (0.0 if success else weight),
        )


INITIAL = Beta(1.0, 0.0)  # every score a new node starts with: trusted until shown otherwise


@dataclass(frozen=True, slots=True)
class ReputationConfig:
    """How scores move and where they bite (``[health]`` in the bridge's config)."""

    forget: float = 0.99
    weight: float = 1.0
    disqualify_below: float = 0.96  # audit score: a node below it is disqualified for good
    suspend_below: float = 0.6  # unknown-error score: a node below it gets no new pieces

    def __post_init__(self) -> None:
        if not 0 < self.forget <= 1 or self.weight <= 0:
            raise ValueError("need 0 < forget <= 1 and weight > 0")
        for name in ("disqualify_below", "suspend_below"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be within 0..1")

    def update(self, score: Beta, success: bool) -> Beta:
        return score.update(success, forget=self.forget, weight=self.weight)


@dataclass(frozen=True, slots=True)
class Performance:
    """A node's transfers as clients saw them: decaying success rate and mean latency."""

    success: float = 1.0
    latency_ms: float = 0.0

    def update(self, ok: bool, latency_ms: float, *, decay: float) -> Performance:
        """After one more transfer; `decay` is the share the past keeps (0..1). Only successes
        move the latency: how fast a node fails says nothing of how fast it serves."""
        success = decay * self.success + (1 - decay) * (1.0 if ok else 0.0)
        if not ok:
            return Performance(success, self.latency_ms)
        return Performance(success, decay * self.latency_ms + (1 - decay) * max(latency_ms, 0.0))


MIN_WEIGHT = 0.05  # a healthy node's floor: every one of them keeps getting some work
LATENCY_SCALE_MS = 1000.0


def selection_weight(success: float, latency_ms: float) -> float:
    """How much to prefer a node, in ``[MIN_WEIGHT, 1]``: falls fast with failures, slowly with
    latency (a node at 1 s gets half the weight of an instant one)."""
    success = min(max(success, 0.0), 1.0)
    weight = success**4 * LATENCY_SCALE_MS / (LATENCY_SCALE_MS + max(latency_ms, 0.0))
    return max(MIN_WEIGHT, weight)


def sample_key(weight: float, uniform: float) -> float:
    """Sort key for weighted sampling without replacement (Efraimidis and Spirakis): take the
    items with the smallest keys. `uniform` is a random draw from (0, 1]."""
    if weight <= 0:
        return math.inf
    return -math.log(uniform) / weight


def new_node_count(count: int, share: float, uniform: float) -> int:
    """How many of `count` pieces go to unvetted nodes: ``count * share``, its fraction rounded
    up with that probability (`uniform` in [0, 1)), so small requests give new nodes their
    share on average instead of none."""
    if count <= 0 or share <= 0:
        return 0
    expected = count * min(share, 1.0)
    whole = math.floor(expected)
    return min(count, whole + (1 if uniform < expected - whole else 0))
