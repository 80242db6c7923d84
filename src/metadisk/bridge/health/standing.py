"""How one event moves a node's standing: pure functions over `Scores` (no I/O, no clock).

- An audit that passes raises the audit and unknown-error scores; enough passes vet the node.
- A failed audit (a fault or a fail) lowers the audit score; below `disqualify_below` the node
  is disqualified for good, and its pieces count as lost.
- An unknown error lowers the unknown-error score; below `suspend_below` the node is suspended
  (no new pieces) until passes lift the score back.
- An uptime check moves the online score, which the operator and the farmer read. It never
  suspends or disqualifies: being offline is not losing data, and a node found offline gets no
  new pieces anyway until a check finds it again.
- Containment and offline audits move nothing here: the auditor asks again, and the uptime
  checker scores the outage.
"""

from __future__ import annotations

from dataclasses import replace

from metadisk.bridge.config import HealthConfig
from metadisk.bridge.health.db import AuditOutcome, Scores


def after_audit(scores: Scores, outcome: AuditOutcome, config: HealthConfig, now: int) -> Scores:
    """`scores` after one audit's `outcome`."""
    if scores.disqualified_at is not None:
        return scores
    reputation = config.reputation
    if outcome == "pass":
        passed = scores.audits_passed + 1
        scores = replace(
            scores,
            audit=reputation.update(scores.audit, True),
            unknown=reputation.update(scores.unknown, True),
            audits=scores.audits + 1,
            audits_passed=passed,
        )
        if scores.vetted_at is None and passed >= config.vetting_audits:
            scores = replace(scores, vetted_at=now)
    elif outcome in ("fault", "fail"):
        scores = replace(
            scores, audit=reputation.update(scores.audit, False), audits=scores.audits + 1
        )
        if scores.audit.score < reputation.disqualify_below:
            scores = replace(scores, disqualified_at=now)
    elif outcome == "unknown":
        scores = replace(scores, unknown=reputation.update(scores.unknown, False))
    return _suspension(scores, config, now)


def after_check(scores: Scores, online: bool, config: HealthConfig) -> Scores:
    """`scores` after one uptime check."""
    return replace(scores, online=config.reputation.update(scores.online, online))


def _suspension(scores: Scores, config: HealthConfig, now: int) -> Scores:
    low = scores.unknown.score < config.suspend_below
    if low and scores.suspended_at is None:
        return replace(scores, suspended_at=now)
    if not low and scores.suspended_at is not None:
        return replace(scores, suspended_at=None)
    return scores
