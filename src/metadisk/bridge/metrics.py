"""What the bridge counts for Prometheus, besides the HTTP requests and chore cycles every peer
counts (`metadisk.runtime.metrics`): refusals by code, order limits, commits, queue depths and
the database's connection pool."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge

from metadisk.runtime.metrics import gauge_callback


class BridgeMetrics:
    """Counters the bridge's services and HTTP edge update, in one peer's registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry or CollectorRegistry(auto_describe=True)
        self.refusals = Counter(
            "metadisk_bridge_refusals",
            "Requests answered with an error, by route and error code.",
            ["route", "code"],
            registry=registry,
        )
        self.order_limits = Counter(
            "metadisk_bridge_order_limits",
            "Order limits signed, by action (put, get, delete, ...).",
            ["action"],
            registry=registry,
        )
        self.segments_committed = Counter(
            "metadisk_bridge_segments_committed",
            "Segments committed with their farmers' receipts.",
            registry=registry,
        )
        self.pieces_committed = Counter(
            "metadisk_bridge_pieces_committed",
            "Pieces recorded from valid receipts.",
            registry=registry,
        )
        self.objects_committed = Counter(
            "metadisk_bridge_objects_committed",
            "Objects made visible (committed uploads and inline puts).",
            ["kind"],
            registry=registry,
        )
        self.committed_bytes = Counter(
            "metadisk_bridge_committed_bytes",
            "Encrypted bytes of the objects made visible.",
            registry=registry,
        )


class WorkerMetrics:
    """What a worker's chores did, and how much work waits in the database (as it last
    counted after a cycle)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.piece_deletes = Counter(
            "metadisk_bridge_piece_deletes",
            "Queued piece deletes sent to farmers, by outcome: deleted, missing (the farmer did "
            "not have it), failed (retried later), dropped (given up after every attempt).",
            ["outcome"],
            registry=registry,
        )
        self.uploads_reclaimed = Counter(
            "metadisk_bridge_uploads_reclaimed",
            "Uploads reclaimed after their deadline passed uncommitted.",
            registry=registry,
        )
        self.audits = Counter(
            "metadisk_bridge_audits",
            "Audits by outcome: pass, fault (a signed wrong proof), fail, unknown, contained (no "
            "answer, asked again), offline, skipped (nothing to audit).",
            ["outcome"],
            registry=registry,
        )
        self.uptime_checks = Counter(
            "metadisk_bridge_uptime_checks",
            "Uptime checks of nodes, by outcome: online, offline.",
            ["outcome"],
            registry=registry,
        )
        self.repairs = Counter(
            "metadisk_bridge_repairs",
            "Repairs of piece sets, by outcome: repaired, failed (tried again later), "
            "not-needed (healed or deleted before its turn).",
            ["outcome"],
            registry=registry,
        )
        self.repair_bytes = Counter(
            "metadisk_bridge_repair_bytes",
            "Bytes the repairer moved: downloaded (pieces fetched) and uploaded (pieces rebuilt).",
            ["direction"],
            registry=registry,
        )
        self.retain_requests = Counter(
            "metadisk_bridge_retain_requests",
            "Garbage collection filters sent to nodes, by outcome: sent (accepted), failed.",
            ["outcome"],
            registry=registry,
        )
        self.piece_sets = Gauge(
            "metadisk_bridge_piece_sets",
            "Piece sets (stored segments) as the repair checker's last pass found them: all, "
            "injured (at or below the repair threshold) and lost (below k healthy pieces).",
            ["state"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "metadisk_bridge_queue_depth",
            "Chore work waiting in the database: piece deletes queued, expired uploads "
            "not yet reclaimed (counted after each cycle).",
            ["queue"],
            registry=registry,
        )


def pool_gauges(registry: CollectorRegistry, pool_use: Callable[[], Mapping[str, int]]) -> None:
    """Database connections of this process (`Database.pool_use`), read at scrape time: pool
    counters, no query."""
    gauge_callback(
        registry,
        "metadisk_db_pool_connections",
        "Connections of this process's pool: in use, idle in the pool, and beyond its size.",
        ["state"],
        lambda: {(state,): float(count) for state, count in pool_use().items()},
    )
