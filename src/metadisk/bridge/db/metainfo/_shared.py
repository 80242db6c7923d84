"""What several metainfo modules need: the visible object at a key, rows as dataclasses, and the
check of what pending uploads reserve against their project's limits."""

from __future__ import annotations

from sqlalchemy import BigInteger, Connection, Row, bindparam, exists, func, select, update

from metadisk.bridge.db import tables as t
from metadisk.bridge.db._shared import IS_COMMITTED, IS_PENDING
from metadisk.bridge.metainfo.db import Caps, Outcome, SegmentInfo, Upload
from metadisk.core.erasure import RedundancyScheme

_o = t.objects.c
_pr = t.projects.c

# Hot statements are built once with bind parameters: building a statement per call costs more
# than running it on SQLite (SQLAlchemy caches the compiled form per statement object).
AT_KEY = (
    (_o.project_id == bindparam("project_id"))
    & (_o.bucket == bindparam("bucket"))
    & (_o.key == bindparam("key"))
    & IS_COMMITTED
)
OBJECT_EXISTS = select(exists().where(AT_KEY))

# FOR NO KEY UPDATE on PostgreSQL: it serializes the reservations of one project without
# waiting for the inserts of rows that merely refer to the project (those take KEY SHARE).
_LOCK_PROJECT = (
    select(_pr.max_storage, _pr.used_storage, _pr.max_segments, _pr.used_segments)
    .where(_pr.id == bindparam("project_id"))
    .with_for_update(key_share=True)
)
# Few rows: the pending uploads of one project, at most `Caps.pending_uploads` (the partial
# index on pending keys serves it).
_RESERVED = select(
    func.count(),
    func.coalesce(func.sum(_o.reserved_storage), 0),
    func.coalesce(func.sum(_o.reserved_segments), 0),
    func.coalesce(func.sum(_o.reserved_orders), 0),
).where(_o.project_id == bindparam("project_id"), IS_PENDING)
# bindparam names must differ from column names in UPDATE statements.
_ADD_RESERVED = (
    update(t.objects)
    .where(_o.stream_id == bindparam("r_stream"))
    .values(
        reserved_storage=_o.reserved_storage + bindparam("r_storage", type_=BigInteger),
        reserved_segments=_o.reserved_segments + bindparam("r_segments", type_=BigInteger),
        reserved_orders=_o.reserved_orders + bindparam("r_orders", type_=BigInteger),
    )
)


def reserve(
    conn: Connection,
    project_id: str,
    stream_id: bytes,
    caps: Caps,
    *,
    storage: int = 0,
    segments: int = 0,
    orders: int = 0,
) -> Outcome:
    """Reserve `storage` bytes, `segments` and `orders` order limits more for a pending upload
    whose row this transaction holds, if its project's usage and every pending upload's
    reservations leave room; the limit that would be passed otherwise.

    Takes the project's row lock and keeps it to the end of the transaction, so that the check
    and the reservation are one step for every process sharing the database. Call it after the
    upload's row is locked: object rows before the project's row everywhere (see `objects`).
    """
    where = {"project_id": project_id}
    project = conn.execute(_LOCK_PROJECT, where).one()
    _, reserved_storage, reserved_segments, reserved_orders = conn.execute(_RESERVED, where).one()
    if project.used_storage + reserved_storage + storage > project.max_storage and storage:
        return Outcome.STORAGE_LIMIT
    if project.used_segments + reserved_segments + segments > project.max_segments and segments:
        return Outcome.SEGMENT_LIMIT
    if reserved_orders + orders > caps.pending_orders and orders:
        return Outcome.ORDER_LIMIT
    conn.execute(
        _ADD_RESERVED,
        {"r_stream": stream_id, "r_storage": storage, "r_segments": segments, "r_orders": orders},
    )
    return Outcome.OK


def pending_uploads_over(conn: Connection, project_id: str, most: int) -> bool:
    """Whether the project has more than `most` pending uploads; takes its row lock first, so
    that uploads begun at once in several processes are counted one after the other."""
    where = {"project_id": project_id}
    conn.execute(_LOCK_PROJECT, where).one()
    count = conn.execute(_RESERVED, where).one()[0]
    return int(count) > most


def as_upload(row: Row) -> Upload:  # type: ignore[type-arg]
    return Upload(
        stream_id=row.stream_id,
        project_id=row.project_id,
        bucket=row.bucket,
        key=row.key,
        redundancy=RedundancyScheme(row.k, row.m, row.o, row.n),
        created_at=row.created_at,
        deadline=row.deadline,
    )


def as_segment_info(row: Row) -> SegmentInfo:  # type: ignore[type-arg]
    return SegmentInfo(
        index=row._mapping["index"],
        encrypted_size=row.encrypted_size,
        plain_size=row.plain_size,
        piece_size=row.piece_size,
        redundancy=RedundancyScheme(row.k, row.m, row.o, row.n),
        encrypted_metadata=row.encrypted_metadata,
    )
