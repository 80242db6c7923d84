"""Network health in SQL: audit and check schedules claimed by moving them forward (with
``SKIP LOCKED`` on PostgreSQL), reputations updated under the node's row lock, evidence,
containment, the audit queue and uptime windows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from metadisk.bridge.db import tables as t
from metadisk.bridge.db.engine import Database
from metadisk.bridge.health.db import (
    AuditRecord,
    AuditTarget,
    DueNode,
    Evidence,
    Scores,
    ScoreUpdate,
    StandingRow,
    Transfer,
)
from metadisk.core.reputation import Beta, Performance
from metadisk.wire.api.nodes import ExitState

_n = t.nodes.c
_p = t.pieces.c
_c = t.audit_containment.c
_q = t.audit_queue.c
_e = t.audit_evidence.c
_w = t.uptime_windows.c

_SCORE_COLUMNS = (
    _n.audit_alpha,
    _n.audit_beta,
    _n.unknown_alpha,
    _n.unknown_beta,
    _n.online_alpha,
    _n.online_beta,
    _n.audits,
    _n.audits_passed,
    _n.vetted_at,
    _n.suspended_at,
    _n.disqualified_at,
)


def scores_of(row: Any) -> Scores:
    return Scores(
        audit=Beta(row.audit_alpha, row.audit_beta),
        unknown=Beta(row.unknown_alpha, row.unknown_beta),
        online=Beta(row.online_alpha, row.online_beta),
        audits=row.audits,
        audits_passed=row.audits_passed,
        vetted_at=row.vetted_at,
        suspended_at=row.suspended_at,
        disqualified_at=row.disqualified_at,
    )


def _score_values(scores: Scores) -> dict[str, Any]:
    return {
        "audit_alpha": scores.audit.alpha,
        "audit_beta": scores.audit.beta,
        "unknown_alpha": scores.unknown.alpha,
        "unknown_beta": scores.unknown.beta,
        "online_alpha": scores.online.alpha,
        "online_beta": scores.online.beta,
        "audits": scores.audits,
        "audits_passed": scores.audits_passed,
        "vetted_at": scores.vetted_at,
        "suspended_at": scores.suspended_at,
        "disqualified_at": scores.disqualified_at,
    }


class HealthStore:
    """Implements `metadisk.bridge.health.db.HealthDB`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- audits

    def claim_audits(self, now: int, lease: int, limit: int) -> list[DueNode]:
        due = (
            _n.next_audit_at <= now,
            _n.disqualified_at.is_(None),
            _n.offline_since.is_(None),
            _n.last_ping_ok_at.is_not(None),
            _n.exit_finished_at.is_(None),  # exited (nothing left) or failed (repair's now)
        )
        # New nodes first: vetting waits on their audits.
        order = (_n.vetted_at.is_not(None), _n.next_audit_at)
        return self._claim(due, order, {"next_audit_at": now + lease}, limit)

    def audit_target(self, node_id: bytes, draw: bytes) -> AuditTarget | None:
        def work(conn: Connection) -> AuditTarget | None:
            queued = conn.execute(
                select(_q.root_piece_id, _q.piece_number).where(_q.node_id == node_id).limit(4)
            ).all()
            for row in queued:
                found = _piece(conn, node_id, row.root_piece_id, row.piece_number)
                if found is not None:
                    return _target(node_id, found, "queue")
                # Gone (deleted, repaired, ...) or never auditable: nothing left to ask.
                conn.execute(
                    delete(t.audit_queue).where(
                        _q.root_piece_id == row.root_piece_id,
                        _q.piece_number == row.piece_number,
                    )
                )
            contained = conn.execute(
                select(_c.root_piece_id, _c.piece_number, _c.attempts).where(_c.node_id == node_id)
            ).first()
            if contained is not None:
                found = _piece(conn, node_id, contained.root_piece_id, contained.piece_number)
                if found is not None:
                    return _target(node_id, found, "containment", contained.attempts)
                conn.execute(delete(t.audit_containment).where(_c.node_id == node_id))
            base = select(*_PIECE_COLUMNS).where(_p.node_id == node_id, _p.receipt.is_not(None))
            chosen = conn.execute(
                base.where(_p.piece_id >= draw).order_by(_p.piece_id).limit(1)
            ).first()
            if chosen is None:  # past the last id: wrap around
                chosen = conn.execute(base.order_by(_p.piece_id).limit(1)).first()
            return None if chosen is None else _target(node_id, chosen, "random")

        return self._db.write(work)

    def record_audit(
        self, node_id: bytes, record: AuditRecord, update_scores: ScoreUpdate
    ) -> Scores:
        def work(conn: Connection) -> Scores:
            row = conn.execute(
                select(*_SCORE_COLUMNS).where(_n.node_id == node_id).with_for_update()
            ).first()
            if row is None:
                raise LookupError("no such node")
            target, outcome = record.target, record.outcome
            if target is not None and outcome == "contained":
                _contain(conn, node_id, target, record)
            elif target is not None and outcome in ("pass", "fault", "fail", "unknown"):
                conn.execute(delete(t.audit_containment).where(_c.node_id == node_id))
                if target.source == "queue":
                    conn.execute(
                        delete(t.audit_queue).where(
                            _q.root_piece_id == target.root_piece_id,
                            _q.piece_number == target.piece_number,
                        )
                    )
            if record.evidence is not None and target is not None:
                evidence = record.evidence
                conn.execute(
                    insert(t.audit_evidence).values(
                        node_id=node_id,
                        piece_id=target.piece_id,
                        outcome=evidence.outcome,
                        reason=evidence.reason[:255],
                        order_limit=evidence.order_limit,
                        receipt=evidence.receipt,
                        response=evidence.response,
                        leaf=evidence.leaf,
                        created_at=record.now,
                    )
                )
            scores = update_scores(scores_of(row))
            values = _score_values(scores)
            if outcome in ("offline", "contained"):
                # No connection, or no answer in time: the node may be down, so the uptime
                # checker looks now. Found offline, it is not audited until it is back, and
                # its containment does not run out on a node that is only hung or gone.
                values["next_check_at"] = record.now
            conn.execute(
                update(t.nodes)
                .where(_n.node_id == node_id)
                .values(next_audit_at=record.next_audit_at, **values)
            )
            return scores

        return self._db.write(work)

    def queue_audits(self, pieces: Sequence[tuple[bytes, int, bytes, str]], now: int) -> int:
        if not pieces:
            return 0
        rows = [
            {"root_piece_id": r, "piece_number": n, "node_id": node, "reason": why[:64],
             "created_at": now}
            for r, n, node, why in pieces
        ]  # fmt: skip

        def work(conn: Connection) -> int:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            statement = dialect.insert(t.audit_queue).on_conflict_do_nothing()
            # RETURNING counts what went in on both engines (PostgreSQL's rowcount may not).
            added = statement.returning(_q.piece_number)
            return sum(len(conn.execute(added.values(**row)).all()) for row in rows)

        added = self._db.write(work)
        # A node with a reported piece is audited at its next cycle, not at its next turn.
        nodes = sorted({node for _, _, node, _ in pieces})
        self._db.write(
            lambda conn: conn.execute(
                update(t.nodes)
                .where(_n.node_id.in_(nodes), _n.next_audit_at > now)
                .values(next_audit_at=now)
            )
        )
        return added

    def evidence(self, node_id: bytes) -> list[Evidence]:
        query = (
            select(
                _e.outcome,
                _e.reason,
                _e.order_limit,
                _e.receipt,
                _e.response,
                _e.leaf,
                _e.created_at,
            )
            .where(_e.node_id == node_id)
            .order_by(_e.id)
        )
        rows = self._db.read(lambda conn: conn.execute(query).all())
        return [
            Evidence(
                r.outcome, r.reason, r.order_limit, r.receipt, r.response, r.leaf, r.created_at
            )
            for r in rows
        ]

    # -- uptime

    def claim_checks(self, now: int, interval: int, limit: int) -> list[DueNode]:
        # Nodes that left (disqualified, or their exit ended) hold nothing to check on.
        due = (_n.next_check_at <= now, _n.disqualified_at.is_(None), _n.exit_finished_at.is_(None))
        return self._claim(due, (_n.next_check_at,), {"next_check_at": now + interval}, limit)

    def _claim(
        self,
        due: Sequence[ColumnElement[bool]],
        order: Sequence[ColumnElement[Any]],
        later: dict[str, int],
        limit: int,
    ) -> list[DueNode]:
        """Up to `limit` nodes matching `due`, in `order`, their schedule moved to `later` in the
        same transaction (rows another worker holds are skipped on PostgreSQL)."""

        def work(conn: Connection) -> list[DueNode]:
            rows = conn.execute(
                select(_n.node_id, _n.public_key, _n.address)
                .where(*due)
                .order_by(*order)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            if rows:
                claimed = _n.node_id.in_([r.node_id for r in rows])
                conn.execute(update(t.nodes).where(claimed).values(**later))
            return [DueNode(r.node_id, r.public_key, r.address) for r in rows]

        return self._db.write(work)

    def record_check(
        self,
        node_id: bytes,
        online: bool,
        error: str | None,
        free: int | None,
        now: int,
        update_scores: ScoreUpdate,
        retry_at: int | None = None,
    ) -> bool:
        def work(conn: Connection) -> bool:
            row = conn.execute(
                select(_n.offline_since, _n.last_ping_ok_at, *_SCORE_COLUMNS)
                .where(_n.node_id == node_id)
                .with_for_update()
            ).first()
            if row is None:
                return False
            was_online = row.offline_since is None and row.last_ping_ok_at is not None
            values: dict[str, Any] = _score_values(update_scores(scores_of(row)))
            values["last_ping_error"] = error
            if online:
                values.update(last_ping_ok_at=now, offline_since=None)
            else:
                values["offline_since"] = row.offline_since or now
                if retry_at is not None:
                    values["next_check_at"] = retry_at
            if free is not None:
                values["free"] = free
            conn.execute(update(t.nodes).where(_n.node_id == node_id).values(**values))
            _extend_window(conn, node_id, online, now)
            return was_online != online

        return self._db.write(work)

    # -- performance

    def record_transfers(self, transfers: Sequence[Transfer], decay: float, now: int) -> None:
        if not transfers:
            return
        by_node: dict[bytes, list[Transfer]] = defaultdict(list)
        for transfer in transfers:
            by_node[transfer.node_id].append(transfer)

        def work(conn: Connection) -> None:
            rows = conn.execute(
                select(_n.node_id, _n.perf_success, _n.perf_latency_ms)
                .where(_n.node_id.in_(sorted(by_node)))
                .order_by(_n.node_id)  # one lock order for every writer: no deadlocks
                .with_for_update()
            ).all()
            for row in rows:
                perf = Performance(row.perf_success, row.perf_latency_ms)
                recheck = False
                for transfer in by_node[row.node_id]:
                    perf = perf.update(transfer.ok, transfer.latency_ms, decay=decay)
                    recheck = recheck or transfer.recheck
                values: dict[str, Any] = {
                    "perf_success": perf.success,
                    "perf_latency_ms": perf.latency_ms,
                }
                statement = update(t.nodes).where(_n.node_id == row.node_id)
                conn.execute(statement.values(**values))
                if recheck:  # a client could not reach it: the uptime checker looks now
                    conn.execute(statement.where(_n.next_check_at > now).values(next_check_at=now))

        self._db.write(work)

    # -- the operator's and the farmer's view

    def standings(self, now: int, since: int, node_id: bytes | None = None) -> list[StandingRow]:
        def work(conn: Connection) -> list[StandingRow]:
            counted = select(_p.node_id, func.count().label("pieces")).group_by(_p.node_id)
            if node_id is not None:  # one node's own standing: count its pieces only
                counted = counted.where(_p.node_id == node_id)
            counts = counted.subquery()
            query = (
                select(
                    _n.node_id,
                    _n.address,
                    _n.last_ping_ok_at,
                    _n.offline_since,
                    _n.perf_success,
                    _n.perf_latency_ms,
                    _n.created_at,
                    _n.exit_started_at,
                    _n.exit_result,
                    *_SCORE_COLUMNS,
                    func.coalesce(counts.c.pieces, 0).label("pieces"),
                    _c.node_id.label("contained"),
                )
                .select_from(
                    t.nodes.outerjoin(counts, counts.c.node_id == _n.node_id).outerjoin(
                        t.audit_containment, _c.node_id == _n.node_id
                    )
                )
                .order_by(_n.created_at, _n.node_id)
            )
            windows = select(_w.node_id, _w.online, _w.started_at, _w.ended_at).where(
                _w.ended_at >= since
            )
            if node_id is not None:
                query = query.where(_n.node_id == node_id)
                windows = windows.where(_w.node_id == node_id)
            spans: dict[bytes, list[int]] = defaultdict(lambda: [0, 0])  # [online, checked]
            for w in conn.execute(windows):
                length = w.ended_at - max(w.started_at, since)
                spans[w.node_id][1] += length
                if w.online:
                    spans[w.node_id][0] += length
            rows = []
            for r in conn.execute(query):
                online, checked = spans.get(r.node_id, (0, 0))
                rows.append(
                    StandingRow(
                        node_id=r.node_id,
                        address=r.address,
                        last_ping_ok_at=r.last_ping_ok_at,
                        offline_since=r.offline_since,
                        scores=scores_of(r),
                        contained=r.contained is not None,
                        pieces=r.pieces,
                        perf_success=r.perf_success,
                        perf_latency_ms=r.perf_latency_ms,
                        created_at=r.created_at,
                        uptime=online / checked if checked else None,
                        exit=_exit_state(r.exit_started_at, r.exit_result),
                    )
                )
            return rows

        return self._db.read(work)


def _exit_state(started_at: int | None, result: str | None) -> ExitState | None:
    if started_at is None:
        return None
    return "exited" if result == "exited" else "failed" if result is not None else "exiting"


_PIECE_COLUMNS = (_p.root_piece_id, _p.piece_number, _p.piece_id, _p.size, _p.receipt)


def _piece(conn: Connection, node_id: bytes, root: bytes, number: int) -> Any:
    return conn.execute(
        select(*_PIECE_COLUMNS).where(
            _p.root_piece_id == root,
            _p.piece_number == number,
            _p.node_id == node_id,
            _p.receipt.is_not(None),
        )
    ).first()


def _target(node_id: bytes, row: Any, source: Any, attempts: int = 0) -> AuditTarget:
    return AuditTarget(
        node_id=node_id,
        root_piece_id=row.root_piece_id,
        piece_number=row.piece_number,
        piece_id=row.piece_id,
        size=row.size,
        receipt=row.receipt,
        source=source,
        attempts=attempts,
    )


def _contain(conn: Connection, node_id: bytes, target: AuditTarget, record: AuditRecord) -> None:
    conn.execute(delete(t.audit_containment).where(_c.node_id == node_id))
    conn.execute(
        insert(t.audit_containment).values(
            node_id=node_id,
            root_piece_id=target.root_piece_id,
            piece_number=target.piece_number,
            attempts=target.attempts + 1 if target.source == "containment" else 1,
            created_at=record.now,
        )
    )


def _extend_window(conn: Connection, node_id: bytes, online: bool, now: int) -> None:
    """Lengthen the node's current uptime window, or start the next one if its state changed."""
    last = conn.execute(
        select(_w.id, _w.online, _w.ended_at)
        .where(_w.node_id == node_id)
        .order_by(_w.ended_at.desc(), _w.id.desc())
        .limit(1)
    ).first()
    if last is not None and bool(last.online) == online:
        conn.execute(update(t.uptime_windows).where(_w.id == last.id).values(ended_at=now))
        return
    start = now if last is None else last.ended_at
    conn.execute(
        insert(t.uptime_windows).values(
            node_id=node_id, online=int(online), started_at=start, ended_at=now
        )
    )
