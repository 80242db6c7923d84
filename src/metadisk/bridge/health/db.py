"""What network health needs from the database: records and the `HealthDB` protocol."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from metadisk.core.reputation import Beta
from metadisk.wire.api.nodes import ExitState

AuditOutcome = Literal[
    "pass",  # the node proved it holds the leaf
    "fault",  # a signed answer that contradicts its own receipt: provable
    "fail",  # no valid proof (missing piece, wrong bytes, unsigned answer, ...)
    "unknown",  # an error that says nothing about the piece (a 5xx, a garbled answer)
    "contained",  # no answer in time: asked again later
    "offline",  # could not connect: the uptime checker's business, not the auditor's
    "skipped",  # nothing to audit on this node
]


@dataclass(frozen=True, slots=True)
class DueNode:
    """A node whose audit or uptime check is due, claimed by this worker."""

    node_id: bytes
    public_key: bytes
    address: str


@dataclass(frozen=True, slots=True)
class AuditTarget:
    """The piece to audit on a node: a reported one, a contained one, or a random one."""

    node_id: bytes
    root_piece_id: bytes
    piece_number: int
    piece_id: bytes
    size: int
    receipt: bytes  # the farmer's encoded, signed PieceReceipt
    source: Literal["queue", "containment", "random"]
    attempts: int = 0  # earlier unanswered tries (containment)


@dataclass(frozen=True, slots=True)
class Evidence:
    """A failed audit as the bridge keeps it."""

    outcome: Literal["fault", "fail"]
    reason: str
    order_limit: bytes
    receipt: bytes | None
    response: bytes | None
    leaf: bytes | None
    created_at: int | None = None  # set when read back


@dataclass(frozen=True, slots=True)
class Scores:
    """A node's reputation and standing, as the transitions in `standing` see them."""

    audit: Beta
    unknown: Beta
    online: Beta
    audits: int
    audits_passed: int
    vetted_at: int | None
    suspended_at: int | None
    disqualified_at: int | None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One decided audit, written in one transaction with its consequences."""

    target: AuditTarget | None  # None: the node had nothing to audit
    outcome: AuditOutcome
    evidence: Evidence | None
    now: int
    next_audit_at: int


@dataclass(frozen=True, slots=True)
class StandingRow:
    """One node as the operator's table and the farmer's own view show it."""

    node_id: bytes
    address: str
    last_ping_ok_at: int | None
    offline_since: int | None
    scores: Scores
    contained: bool
    pieces: int
    perf_success: float
    perf_latency_ms: float
    created_at: int
    uptime: float | None  # share of checked time online, over the uptime span
    exit: ExitState | None = None  # its graceful exit, if it asked for one


@dataclass(frozen=True, slots=True)
class Transfer:
    """A piece transfer a client reported, already checked to name the segment's node."""

    node_id: bytes
    ok: bool
    latency_ms: int
    recheck: bool  # a failure that may mean the node is down: check it now


ScoreUpdate = Callable[[Scores], Scores]


class HealthDB(Protocol):
    def claim_audits(self, now: int, lease: int, limit: int) -> list[DueNode]:
        """Nodes due an audit (unvetted first, then longest waiting), pushed `lease` ahead."""
        ...

    def audit_target(self, node_id: bytes, draw: bytes) -> AuditTarget | None:
        """The piece to audit: a queued report, else the contained piece, else the first piece
        at or after the random piece id `draw` (wrapping around); None if it holds none."""
        ...

    def record_audit(self, node_id: bytes, record: AuditRecord, update: ScoreUpdate) -> Scores:
        """Store the audit's evidence, containment and schedule, and apply `update` to the
        node's scores, in one transaction; the scores after it."""
        ...

    def claim_checks(self, now: int, interval: int, limit: int) -> list[DueNode]:
        """Nodes (not disqualified) due an uptime check, their next one moved `interval` on."""
        ...

    def record_check(
        self, node_id: bytes, online: bool, error: str | None, free: int | None, now: int,
        update: ScoreUpdate, retry_at: int | None = None,
    ) -> bool:  # fmt: skip
        """Store a check's result: online state and window, free space, online score, and for a
        failed check its next one at `retry_at`; whether the node went online or offline."""
        ...

    def record_transfers(self, transfers: Sequence[Transfer], decay: float, now: int) -> None:
        """Fold reported transfers into each node's performance; recheck the ones asked."""
        ...

    def queue_audits(self, pieces: Sequence[tuple[bytes, int, bytes, str]], now: int) -> int:
        """Queue (root piece id, piece number, node id, reason) for audit; how many were new."""
        ...

    def standings(self, now: int, since: int, node_id: bytes | None = None) -> list[StandingRow]:
        """Every node's row (or one node's), uptime counted from `since`."""
        ...

    def evidence(self, node_id: bytes) -> list[Evidence]:
        """The failed audits kept for a node, oldest first."""
        ...
