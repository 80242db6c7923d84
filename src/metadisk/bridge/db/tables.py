"""The bridge's schema as SQLAlchemy Core tables (the only place rows are described).

Times are unix seconds (BIGINT), binary ids are BLOB/BYTEA. Object keys are encrypted paths in
ASCII (base64url components and "/"); on PostgreSQL the column uses the "C" collation so that
ordering, prefix ranges and keyset pagination are bytewise on both engines.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    text,
)

PENDING = 1
COMMITTED = 3

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT.
_ROWID = BigInteger().with_variant(Integer(), "sqlite")
_KEY = String(4096).with_variant(String(4096, collation="C"), "postgresql")

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("user_id", String(32), nullable=False, index=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
)

projects = Table(
    "projects",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner_id", String(32), nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("salt", LargeBinary(32), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("max_buckets", BigInteger, nullable=False),
    Column("max_storage", BigInteger, nullable=False),
    Column("max_egress", BigInteger, nullable=False),
    Column("max_segments", BigInteger, nullable=False),
    # Counters kept in the same transaction as the objects they count.
    Column("used_storage", BigInteger, nullable=False, server_default=text("0")),
    Column("used_segments", BigInteger, nullable=False, server_default=text("0")),
    # HMAC of a fixed text under the root key (core.keys.passphrase_verifier); NULL until the
    # first setup with a passphrase (projects made before migration 0005).
    Column("passphrase_verifier", LargeBinary(32), nullable=True),
    ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
)

project_egress = Table(
    "project_egress",
    metadata,
    Column("project_id", String(32), primary_key=True),
    Column("period", Integer, primary_key=True),  # year * 100 + month, UTC
    Column("bytes", BigInteger, nullable=False),
    ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
)

# One row a project a UTC day: its usage as last seen that day (the console's chart). Written by
# the worker's usage chore and whenever the console shows the project, so today's row is current.
usage_days = Table(
    "usage_days",
    metadata,
    Column("project_id", String(32), primary_key=True),
    Column("day", Integer, primary_key=True),  # days since the epoch, UTC
    Column("storage_bytes", BigInteger, nullable=False),
    Column("egress_bytes", BigInteger, nullable=False),  # this month's, as of that day
    Column("segments", BigInteger, nullable=False),
    Column("objects", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", LargeBinary(16), primary_key=True),
    Column("project_id", String(32), nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("secret", LargeBinary(32), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
)

revocations = Table(
    "revocations",
    metadata,
    Column("tail", LargeBinary(32), primary_key=True),
    Column("key_id", LargeBinary(16), nullable=False, index=True),
    Column("created_at", BigInteger, nullable=False),
    ForeignKeyConstraint(["key_id"], ["api_keys.key_id"], ondelete="CASCADE"),
)

buckets = Table(
    "buckets",
    metadata,
    Column("project_id", String(32), primary_key=True),
    Column("name", String(63), primary_key=True),
    Column("profile", String(64), nullable=False),
    Column("k", SmallInteger, nullable=False),
    Column("m", SmallInteger, nullable=False),
    Column("o", SmallInteger, nullable=False),
    Column("n", SmallInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
)

objects = Table(
    "objects",
    metadata,
    Column("stream_id", LargeBinary(16), primary_key=True),
    Column("project_id", String(32), nullable=False),
    Column("bucket", String(63), nullable=False),
    Column("key", _KEY, nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("committed_at", BigInteger),
    Column("deadline", BigInteger),  # pending uploads: reclaimed after this
    Column("encrypted_size", BigInteger, nullable=False, server_default=text("0")),
    Column("plain_size", BigInteger, nullable=False, server_default=text("0")),
    Column("segment_count", Integer, nullable=False, server_default=text("0")),
    Column("encrypted_metadata", LargeBinary),
    Column("inline_data", LargeBinary),
    # What a pending upload has been promised so far, counted against the project's limits
    # until it is committed (then its segments are usage) or aborted or reclaimed (then nothing):
    # encrypted bytes of every segment begun, re-begins included (the earlier order limits stay
    # valid on farmers until they expire), segments, and PUT order limits of segments not
    # committed yet (replaced and superseded ones included, for the same reason).
    Column("reserved_storage", BigInteger, nullable=False, server_default=text("0")),
    Column("reserved_segments", Integer, nullable=False, server_default=text("0")),
    Column("reserved_orders", Integer, nullable=False, server_default=text("0")),
    ForeignKeyConstraint(
        ["project_id", "bucket"], ["buckets.project_id", "buckets.name"], ondelete="CASCADE"
    ),
    # One visible object per key; concurrent commits of one key race on this index.
    Index(
        "uq_objects_committed_key",
        "project_id",
        "bucket",
        "key",
        unique=True,
        sqlite_where=text("status = 3"),
        postgresql_where=text("status = 3"),
    ),
    Index(
        "ix_objects_pending_deadline",
        "deadline",
        sqlite_where=text("status = 1"),
        postgresql_where=text("status = 1"),
    ),
    # Pending uploads of a key (for resuming without local state); few rows, so a small index.
    Index(
        "ix_objects_pending_key",
        "project_id",
        "bucket",
        "key",
        sqlite_where=text("status = 1"),
        postgresql_where=text("status = 1"),
    ),
)

segments = Table(
    "segments",
    metadata,
    Column("stream_id", LargeBinary(16), primary_key=True),
    Column("index", Integer, primary_key=True),
    Column("status", SmallInteger, nullable=False),
    # Piece ids derive from it; once committed, it names the segment's piece set.
    Column("root_piece_id", LargeBinary(32), nullable=False),
    Column("encrypted_size", BigInteger, nullable=False),
    Column("plain_size", BigInteger, nullable=False, server_default=text("0")),
    Column("piece_size", BigInteger, nullable=False),
    Column("k", SmallInteger, nullable=False),
    Column("m", SmallInteger, nullable=False),
    Column("o", SmallInteger, nullable=False),
    Column("n", SmallInteger, nullable=False),
    Column("encrypted_metadata", LargeBinary),
    Column("created_at", BigInteger, nullable=False),
    ForeignKeyConstraint(["stream_id"], ["objects.stream_id"], ondelete="CASCADE"),
)

# PUT order limits issued for segments not yet committed: receipts must answer one of these.
segment_orders = Table(
    "segment_orders",
    metadata,
    Column("serial", LargeBinary(16), primary_key=True),
    Column("stream_id", LargeBinary(16), nullable=False),
    Column("segment_index", Integer, nullable=False),
    Column("piece_number", Integer, nullable=False),
    Column("node_id", LargeBinary(32), nullable=False),
    Column("piece_id", LargeBinary(32), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    # Set when a replacement voided it: its receipt no longer counts and its piece is queued
    # for deletion, but its node stays known, so no replacement of this segment goes there.
    Column("replaced_at", BigInteger),
    ForeignKeyConstraint(
        ["stream_id", "segment_index"],
        ["segments.stream_id", "segments.index"],
        ondelete="CASCADE",
    ),
    Index("ix_segment_orders_segment", "stream_id", "segment_index"),
    Index("ix_segment_orders_node_id", "node_id"),  # a node's pieces in flight, for its filter
)

# The stored pieces of one uploaded segment, named by the segment's root piece id. Segments refer
# to their set by that id; copies of an object share the sets of the original, so `refs` counts
# the committed segment rows using a set: its pieces are queued for deletion only when the last
# reference goes.
piece_sets = Table(
    "piece_sets",
    metadata,
    Column("root_piece_id", LargeBinary(32), primary_key=True),
    Column("refs", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # The set's shape, so the repair checker and the repairer need no segment row: the
    # Reed-Solomon scheme it was coded with and the size of each of its pieces.
    Column("k", SmallInteger, nullable=False),
    Column("m", SmallInteger, nullable=False),
    Column("o", SmallInteger, nullable=False),
    Column("n", SmallInteger, nullable=False),
    Column("piece_size", BigInteger, nullable=False),
)

pieces = Table(
    "pieces",
    metadata,
    Column("root_piece_id", LargeBinary(32), primary_key=True),
    Column("piece_number", Integer, primary_key=True),
    Column("node_id", LargeBinary(32), nullable=False),
    Column("piece_id", LargeBinary(32), nullable=False),
    Column("size", BigInteger, nullable=False),
    # The Merkle root of the piece from its receipt: downloads check pieces against it, audits
    # verify leaves against it.
    Column("piece_hash", LargeBinary(32), nullable=False),
    Column("stored_at", BigInteger, nullable=False),
    # The farmer's signed receipt (NULL for pieces stored before receipts were kept): the root
    # in the farmer's own words, half of the evidence when an audit catches it.
    Column("receipt", LargeBinary),
    ForeignKeyConstraint(["root_piece_id"], ["piece_sets.root_piece_id"], ondelete="CASCADE"),
    # A node's pieces, and a random one of them (piece ids are uniform: seek to a random id).
    Index("ix_pieces_node_piece", "node_id", "piece_id"),
)

nodes = Table(
    "nodes",
    metadata,
    Column("node_id", LargeBinary(32), primary_key=True),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("address", String(2048), nullable=False),
    Column("last_net", String(64), nullable=False),
    Column("allocated", BigInteger, nullable=False),
    Column("free", BigInteger, nullable=False),
    Column("version", String(64), nullable=False),
    Column("contact_timestamp", BigInteger, nullable=False),
    Column("last_contact_at", BigInteger, nullable=False),
    Column("last_ping_ok_at", BigInteger),  # NULL: the last ping-back failed
    Column("last_ping_error", String(255)),
    Column("disqualified_at", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    # Health (metadisk.bridge.health): the uptime checker's and the auditor's schedules, claimed
    # by moving them forward, so several workers never check or audit one node at once.
    Column("next_check_at", BigInteger, nullable=False, server_default=text("0")),
    Column("offline_since", BigInteger),  # the last check failed; NULL: the last one found it
    Column("next_audit_at", BigInteger, nullable=False, server_default=text("0")),
    # Beta reputations (metadisk.core.reputation), each starting at alpha 1, beta 0.
    Column("audit_alpha", Float, nullable=False, server_default=text("1")),
    Column("audit_beta", Float, nullable=False, server_default=text("0")),
    Column("unknown_alpha", Float, nullable=False, server_default=text("1")),
    Column("unknown_beta", Float, nullable=False, server_default=text("0")),
    Column("online_alpha", Float, nullable=False, server_default=text("1")),
    Column("online_beta", Float, nullable=False, server_default=text("0")),
    Column("audits", Integer, nullable=False, server_default=text("0")),
    Column("audits_passed", Integer, nullable=False, server_default=text("0")),
    Column("vetted_at", BigInteger),
    Column("suspended_at", BigInteger),  # too many audits ended in unknown errors
    # What clients report of transfers: decaying success rate and latency (selection weight).
    Column("perf_success", Float, nullable=False, server_default=text("1")),
    Column("perf_latency_ms", Float, nullable=False, server_default=text("0")),
    # Graceful exit (metadisk.bridge.repair.exit): asked, last progress, and how it ended
    # ("exited", or "failed" when the node stopped moving its pieces; repair takes over).
    Column("exit_started_at", BigInteger),
    Column("exit_progress_at", BigInteger),
    Column("exit_finished_at", BigInteger),
    Column("exit_result", String(16)),
    # Garbage collection: when the node is next sent a filter of the pieces it keeps, and when
    # it last accepted one.
    Column("next_gc_at", BigInteger, nullable=False, server_default=text("0")),
    Column("last_gc_at", BigInteger),
)

# An audit a node did not answer (timed out), asked again until it answers or runs out of tries.
audit_containment = Table(
    "audit_containment",
    metadata,
    Column("node_id", LargeBinary(32), primary_key=True),
    Column("root_piece_id", LargeBinary(32), nullable=False),
    Column("piece_number", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Pieces to audit soon: reported bad by a client that fetched them.
audit_queue = Table(
    "audit_queue",
    metadata,
    Column("root_piece_id", LargeBinary(32), primary_key=True),
    Column("piece_number", Integer, primary_key=True),
    Column("node_id", LargeBinary(32), nullable=False, index=True),
    Column("reason", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Failed audits, with what the node signed: a fault (`metadisk.core.audit.prove_fault`) is
# checkable from `receipt` and `response` alone.
audit_evidence = Table(
    "audit_evidence",
    metadata,
    Column("id", _ROWID, primary_key=True, autoincrement=True),
    Column("node_id", LargeBinary(32), nullable=False, index=True),
    Column("piece_id", LargeBinary(32), nullable=False),
    Column("outcome", String(16), nullable=False),  # "fault" or "fail"
    Column("reason", String(255), nullable=False),
    Column("order_limit", LargeBinary, nullable=False),  # the AUDIT limit the bridge signed
    Column("receipt", LargeBinary),
    Column("response", LargeBinary),  # the node's signed AuditResponse, if it sent one
    Column("leaf", LargeBinary),
    Column("created_at", BigInteger, nullable=False),
)

# Online and offline spans of each node, as the uptime checks saw them.
uptime_windows = Table(
    "uptime_windows",
    metadata,
    Column("id", _ROWID, primary_key=True, autoincrement=True),
    Column("node_id", LargeBinary(32), nullable=False),
    Column("online", SmallInteger, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("ended_at", BigInteger, nullable=False),
    Index("ix_uptime_windows_node", "node_id", "ended_at"),
)

# Pieces to delete from farmers, per node; the deletion chore claims rows with a lease.
piece_deletes = Table(
    "piece_deletes",
    metadata,
    Column("id", _ROWID, primary_key=True, autoincrement=True),
    Column("node_id", LargeBinary(32), nullable=False),
    Column("piece_id", LargeBinary(32), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", BigInteger, nullable=False, index=True),
)

# Piece sets with too few healthy pieces, as the checker last found them: `healthy` at or below
# the set's repair threshold m (repaired, least healthy first), or below k (lost: kept to report).
repair_queue = Table(
    "repair_queue",
    metadata,
    Column("root_piece_id", LargeBinary(32), primary_key=True),
    Column("healthy", SmallInteger, nullable=False),
    Column("queued_at", BigInteger, nullable=False),
    Column("checked_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", BigInteger, nullable=False),  # claims move it forward (a lease)
    Index("ix_repair_queue_due", "healthy", "next_attempt_at"),
)

# The checker's last full pass: what an operator watches (``metadisk bridge health``).
segment_health = Table(
    "segment_health",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),  # one row: 1
    Column("checked_at", BigInteger, nullable=False),
    Column("piece_sets", BigInteger, nullable=False),
    Column("injured", BigInteger, nullable=False),  # at or below the repair threshold
    Column("lost", BigInteger, nullable=False),  # below k healthy pieces
    Column("repaired", BigInteger, nullable=False, server_default=text("0")),  # ever, in total
)

# PUT_REPAIR order limits handed out by the repairer or for a graceful exit, until their piece
# is recorded or they expire: their receipts must answer one of these, and garbage collection
# keeps their pieces meanwhile.
transfer_orders = Table(
    "transfer_orders",
    metadata,
    Column("serial", LargeBinary(16), primary_key=True),
    Column("root_piece_id", LargeBinary(32), nullable=False),
    Column("piece_number", Integer, nullable=False),
    Column("node_id", LargeBinary(32), nullable=False, index=True),
    Column("piece_id", LargeBinary(32), nullable=False),
    Column("from_node_id", LargeBinary(32)),  # a graceful exit: the node the piece leaves
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_transfer_orders_piece", "root_piece_id", "piece_number"),  # a piece's transfers
)
