"""What a farmer counts for Prometheus (``GET /metrics``, loopback only), besides the HTTP
requests and chore cycles every peer counts (`metadisk.runtime.metrics`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class FarmerMetrics:
    """The piece service's counters, in the peer's registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry or CollectorRegistry(auto_describe=True)
        self.pieces_stored = Counter(
            "metadisk_farmer_pieces_stored",
            "Pieces stored (uploads that got a receipt).",
            registry=registry,
        )
        self.stored_bytes = Counter(
            "metadisk_farmer_stored_bytes", "Bytes of pieces stored.", registry=registry
        )
        self.pieces_served = Counter(
            "metadisk_farmer_pieces_served",
            "Downloads answered (whole pieces or ranges).",
            registry=registry,
        )
        self.served_bytes = Counter(
            "metadisk_farmer_served_bytes",
            "Bytes of pieces sent to downloaders.",
            registry=registry,
        )
        self.audits = Counter(
            "metadisk_farmer_audits",
            "Audits answered with a leaf and its proof.",
            registry=registry,
        )
        self.pieces_deleted = Counter(
            "metadisk_farmer_pieces_deleted",
            "Pieces removed: deleted (moved to the trash by a bridge's delete), collected (moved "
            "to the trash by a bridge's retain request), expired, or exited (removed once a "
            "graceful exit from their bridge ended).",
            ["how"],
            registry=registry,
        )
        self.trash_purged = Counter(
            "metadisk_farmer_trash_purged",
            "Trashed pieces purged for good: after the grace period (grace), or early to make "
            "room in the allocation (allocation) or on the disk (disk).",
            ["why"],
            registry=registry,
        )
        self.refusals = Counter(
            "metadisk_farmer_refusals",
            "Requests answered with an error, by route and error code.",
            ["route", "code"],
            registry=registry,
        )
