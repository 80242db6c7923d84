"""The auditor: asks nodes to prove they still hold their pieces, and scores the answers.

Each cycle claims the nodes whose audit is due (unvetted ones first) and audits one piece on
each, so a node is audited every `node_audit_interval` whatever it stores. The piece is one a
client reported bad, else the one a contained audit waits on, else a random one (a seek to a
random piece id). The bridge signs an AUDIT order limit and asks for a random leaf; the farmer
answers with the leaf and its signed hash and Merkle proof, which `metadisk.core.audit.judge`
checks against the root the farmer signed in its receipt when it stored the piece.

How each answer counts (`metadisk.bridge.health.standing`):

- a proof that verifies: a pass;
- a signed proof that contradicts the receipt: a fault, kept with both signed statements as
  evidence anyone can check; any other wrong answer, "no such piece" or "the piece is corrupt":
  a fail, kept too;
- no answer in `audit_timeout`: containment; the uptime checker looks at once (a node that
  does not answer it either is offline, and not audited until it is back), the same piece is
  asked again after `reverify_after`, and `max_reverifications` unanswered tries count as a
  fail;
- no connection at all: the node is offline, which the uptime checker scores, not the auditor;
- any other error (a 5xx, a refusal of the limit, a garbled answer): an unknown error, whose own
  score suspends the node when it falls too low.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable

from metadisk.bridge.config import HealthConfig
from metadisk.bridge.health.db import (
    AuditOutcome,
    AuditRecord,
    AuditTarget,
    DueNode,
    Evidence,
    HealthDB,
    Scores,
)
from metadisk.bridge.health.standing import after_audit
from metadisk.bridge.orders.service import OrderSigner
from metadisk.core.audit import choose_leaf, judge
from metadisk.core.errors import CoreError
from metadisk.core.identity import NodeId
from metadisk.core.merkle import LEAF_SIZE
from metadisk.core.messages import Action, OrderLimit, PieceReceipt
from metadisk.runtime.logs import event
from metadisk.wire.dataplane import PieceClient, PieceTransferError

log = logging.getLogger(__name__)

# Answers that say the node cannot produce the leaf: it has no such piece, or the piece it
# signed for is damaged on its disk ("corrupt-piece", a 500). Counted as an unknown error, the
# latter only suspended a node whose pieces were all damaged, and never disqualified it.
_MISSING = ("not-found", "bad-leaf-index", "corrupt-piece")


class Auditor:
    """One cycle of the audit chore: claim due nodes, audit one piece on each, score."""

    def __init__(
        self,
        db: HealthDB,
        signer: OrderSigner,
        pieces: PieceClient,
        config: HealthConfig,
        clock: Callable[[], int],
        *,
        rng: random.Random | None = None,
        observe: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        self._db = db
        self._signer = signer
        self._pieces = pieces
        self._config = config
        self._clock = clock
        self._rng = rng or random.SystemRandom()
        self._observe = observe

    async def cycle(self) -> Counter[str]:
        """Audit every node due; how many audits ended each way."""
        config = self._config
        now = self._clock()
        # The claim must outlast one audit, or another worker could audit the node meanwhile.
        lease = int(config.audit_timeout) + 60
        due = await asyncio.to_thread(self._db.claim_audits, now, lease, config.audits_per_cycle)
        gate = asyncio.Semaphore(config.audit_concurrency)

        async def one(node: DueNode) -> AuditOutcome:
            async with gate:
                return await self.audit(node)

        outcomes: Counter[str] = Counter(await asyncio.gather(*(one(node) for node in due)))
        return outcomes

    async def audit(self, node: DueNode) -> AuditOutcome:
        """Audit one piece on `node` and record what came of it."""
        now = self._clock()
        target = await asyncio.to_thread(
            self._db.audit_target, node.node_id, self._rng.randbytes(32)
        )
        if target is None:
            await self._record(node, AuditRecord(None, "skipped", None, now, self._next(now)))
            return "skipped"
        limit = self._signer.sign(
            NodeId(node.node_id), target.piece_id, Action.AUDIT, LEAF_SIZE, now
        )
        outcome, evidence = await self._ask(node, target, limit)
        tries = target.attempts + 1 if target.source == "containment" else 1
        if outcome == "contained" and tries >= self._config.max_reverifications:
            reason = f"no answer to {tries} audits of one piece"
            outcome = "fail"
            evidence = Evidence("fail", reason, limit.encode(), target.receipt, None, None)
        if outcome == "contained":
            later = now + max(1, round(self._config.reverify_after))
        else:
            later = self._next(now)
        await self._record(node, AuditRecord(target, outcome, evidence, now, later))
        return outcome

    async def _ask(
        self, node: DueNode, target: AuditTarget, limit: OrderLimit
    ) -> tuple[AuditOutcome, Evidence | None]:
        try:
            receipt = PieceReceipt.decode(target.receipt)
        except CoreError:
            return "skipped", None  # cannot happen: receipts are verified before they are kept
        leaf_index = choose_leaf(target.size, self._rng.getrandbits(64))
        try:
            async with asyncio.timeout(self._config.audit_timeout):
                audited = await self._pieces.audit(node.address, limit, leaf_index)
        except TimeoutError:
            return "contained", None
        except PieceTransferError as exc:
            outcome = _classify(exc)
            if outcome != "fail":
                return outcome, None
            reason = f"{exc.code}: {exc}"
            return "fail", Evidence("fail", reason, limit.encode(), target.receipt, None, None)
        verdict = judge(limit, receipt, node.public_key, leaf_index, audited.leaf, audited.response)
        if verdict.passed:
            return "pass", None
        evidence = Evidence(
            verdict.outcome,  # type: ignore[arg-type]  # not "pass" here
            verdict.reason,
            limit.encode(),
            target.receipt,
            audited.response.encode(),
            audited.leaf,
        )
        return verdict.outcome, evidence

    async def _record(self, node: DueNode, record: AuditRecord) -> None:
        config, now = self._config, record.now
        before: list[bool] = []

        def update(scores: Scores) -> Scores:
            before.append(scores.disqualified_at is None)
            return after_audit(scores, record.outcome, config, now)

        scores = await asyncio.to_thread(self._db.record_audit, node.node_id, record, update)
        self._observe(record.outcome)
        node_hex = node.node_id.hex()[:16]
        if record.evidence is not None:
            event(log, logging.WARNING, "audit failed", node=node_hex, outcome=record.outcome,
                  reason=record.evidence.reason, score=round(scores.audit.score, 4))  # fmt: skip
        elif record.outcome in ("contained", "unknown"):
            event(log, logging.INFO, "audit not answered", node=node_hex, outcome=record.outcome)
        if before and before[0] and scores.disqualified_at is not None:
            event(log, logging.WARNING, "node disqualified", node=node_hex,
                  audit_score=round(scores.audit.score, 4), audits=scores.audits)  # fmt: skip
        if scores.suspended_at == now:
            event(log, logging.WARNING, "node suspended for unknown errors", node=node_hex)

    def _next(self, now: int) -> int:
        interval = self._config.node_audit_interval
        return now + max(1, round(interval * self._rng.uniform(0.9, 1.1)))


def _classify(exc: PieceTransferError) -> AuditOutcome:
    if exc.code == "timeout":
        return "contained"
    if exc.code in ("connection-failed", "unresolvable"):
        return "offline"
    if exc.status == 404 or exc.code in _MISSING:
        return "fail"
    return "unknown"
