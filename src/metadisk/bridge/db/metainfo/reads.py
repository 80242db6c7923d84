"""Reads of visible objects: get, exists, listing, the pieces of a segment for download, and a
project's usage.

`add_egress`, the one write here, meters those downloads.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, bindparam, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite

from metadisk.bridge.db import tables as t
from metadisk.bridge.db._shared import IS_COMMITTED, IS_PENDING, SEGMENT_COMMITTED
from metadisk.bridge.db.engine import Database
from metadisk.bridge.db.metainfo._shared import AT_KEY, OBJECT_EXISTS
from metadisk.bridge.metainfo.db import (
    ListedObject,
    ObjectInfo,
    PieceLocation,
    ProjectUsage,
    SegmentInfo,
    SegmentPieces,
)
from metadisk.core.erasure import RedundancyScheme
from metadisk.core.identity import NodeId

_o = t.objects.c
_s = t.segments.c
_p = t.pieces.c
_b = t.buckets.c
_pr = t.projects.c
_n = t.nodes.c

# Built once with bind parameters, like the statements in `_shared`.
_GET_HEAD = select(
    _o.stream_id,
    _o.committed_at,
    _o.encrypted_size,
    _o.plain_size,
    _o.segment_count,
    _o.encrypted_metadata,
    _o.inline_data,
).where(AT_KEY)
_GET_SEGMENTS = (
    select(
        _s.index,
        _s.encrypted_size,
        _s.plain_size,
        _s.piece_size,
        _s.k,
        _s.m,
        _s.o,
        _s.n,
        _s.encrypted_metadata,
    )
    .where(_s.stream_id == bindparam("stream_id"))
    .order_by(_s.index)
)
_BUCKET_EXISTS = select(
    exists().where(_b.project_id == bindparam("project_id"), _b.name == bindparam("bucket"))
)
_LIST_COLUMNS = (
    _o.key,
    _o.stream_id,
    _o.committed_at,
    _o.encrypted_size,
    _o.plain_size,
    _o.encrypted_metadata,
)
_IN_BUCKET = (
    (_o.project_id == bindparam("project_id")) & (_o.bucket == bindparam("bucket")) & IS_COMMITTED
)


def _list_statement(inclusive: bool, bounded: bool) -> Select[Any]:
    query = select(*_LIST_COLUMNS).where(
        _IN_BUCKET, _o.key >= bindparam("start") if inclusive else _o.key > bindparam("start")
    )
    if bounded:
        query = query.where(_o.key < bindparam("end"))
    return query.order_by(_o.key).limit(bindparam("limit"))


_LIST = {(i, b): _list_statement(i, b) for i in (False, True) for b in (False, True)}


def get_object(
    db: Database, project_id: str, bucket: str, key: str, with_segments: bool
) -> ObjectInfo | None:
    where = {"project_id": project_id, "bucket": bucket, "key": key}

    def work(conn: Connection) -> ObjectInfo | None:
        row = conn.execute(_GET_HEAD, where).first()
        if row is None:
            return None
        stream_id, committed_at, size, plain, count, metadata, inline = row
        segments: list[SegmentInfo] = []
        if with_segments and count:
            segments = [
                SegmentInfo(
                    index,
                    enc,
                    plain_size,
                    piece,
                    RedundancyScheme(k, m, o, n),
                    segment_metadata,
                )
                for index, enc, plain_size, piece, k, m, o, n, segment_metadata in conn.execute(
                    _GET_SEGMENTS, {"stream_id": stream_id}
                )
            ]
        return ObjectInfo(
            stream_id=stream_id,
            bucket=bucket,
            key=key,
            created_at=committed_at,
            encrypted_size=size,
            plain_size=plain,
            segment_count=count,
            encrypted_metadata=metadata,
            inline_data=inline,
            segments=segments,
        )

    return db.read(work)


def object_exists(db: Database, project_id: str, bucket: str, key: str) -> bool:
    where = {"project_id": project_id, "bucket": bucket, "key": key}
    return bool(db.read(lambda conn: conn.execute(OBJECT_EXISTS, where).scalar()))


def bucket_exists(db: Database, project_id: str, bucket: str) -> bool:
    where = {"project_id": project_id, "bucket": bucket}
    return bool(db.read(lambda conn: conn.execute(_BUCKET_EXISTS, where).scalar()))


def segment_pieces(
    db: Database,
    project_id: str,
    bucket: str,
    key: str,
    index: int,
    stream_id: bytes | None,
    online_since: int,
) -> SegmentPieces | None:
    head = (
        select(
            _o.stream_id,
            _s.root_piece_id,
            _s.encrypted_size,
            _s.plain_size,
            _s.piece_size,
            _s.k,
            _s.m,
            _s.o,
            _s.n,
        )
        .select_from(t.objects.join(t.segments, _s.stream_id == _o.stream_id))
        .where(
            _o.project_id == project_id,
            _o.bucket == bucket,
            _o.key == key,
            IS_COMMITTED,
            _s.index == index,
            SEGMENT_COMMITTED,
        )
    )
    if stream_id is not None:
        head = head.where(_o.stream_id == stream_id)

    def work(conn: Connection) -> SegmentPieces | None:
        row = conn.execute(head).first()
        if row is None:
            return None
        rows = conn.execute(
            select(
                _p.piece_number,
                _p.node_id,
                _p.piece_id,
                _p.piece_hash,
                _n.address,
                _n.last_ping_ok_at,
                _n.offline_since,
                _n.disqualified_at,
            )
            .select_from(t.pieces.outerjoin(t.nodes, _n.node_id == _p.node_id))
            .where(_p.root_piece_id == row.root_piece_id)
            .order_by(_p.piece_number)
        ).all()
        pieces = [
            PieceLocation(
                piece_number=r.piece_number,
                node_id=NodeId(r.node_id),
                piece_id=r.piece_id,
                piece_hash=r.piece_hash,
                address=r.address or "",
                online=(
                    r.address is not None
                    and r.last_ping_ok_at is not None
                    and r.last_ping_ok_at >= online_since
                    and r.offline_since is None  # the last uptime check failed
                    and r.disqualified_at is None  # its pieces count as lost
                ),
            )
            for r in rows
        ]
        return SegmentPieces(
            stream_id=row.stream_id,
            index=index,
            root_piece_id=row.root_piece_id,
            encrypted_size=row.encrypted_size,
            plain_size=row.plain_size,
            piece_size=row.piece_size,
            redundancy=RedundancyScheme(row.k, row.m, row.o, row.n),
            pieces=pieces,
        )

    return db.read(work)


def add_egress(db: Database, project_id: str, period: int, amount: int) -> bool:
    def work(conn: Connection) -> bool:
        limit = conn.execute(select(_pr.max_egress).where(_pr.id == project_id)).scalar_one()
        if amount > limit:
            return False
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(t.project_egress).values(
            project_id=project_id, period=period, bytes=amount
        )
        current = t.project_egress.c.bytes
        statement = statement.on_conflict_do_update(
            index_elements=["project_id", "period"],
            set_={"bytes": current + statement.excluded.bytes},
            where=current + statement.excluded.bytes <= limit,
        )
        # RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT here.
        return conn.execute(statement.returning(current)).first() is not None

    return db.write(work)


def list_objects(
    db: Database,
    project_id: str,
    bucket: str,
    start: str,
    inclusive: bool,
    end: str | None,
    limit: int,
) -> list[ListedObject]:
    statement = _LIST[inclusive, end is not None]
    params = {
        "project_id": project_id,
        "bucket": bucket,
        "start": start,
        "end": end,
        "limit": limit,
    }
    rows = db.read(lambda conn: conn.execute(statement, params).all())
    return [ListedObject(*row) for row in rows]


def project_usage(db: Database, project_id: str, period: int) -> ProjectUsage | None:
    """One read of the project's row, counters and reservations (a consistent snapshot)."""
    mine = _o.project_id == project_id
    buckets = select(func.count()).select_from(t.buckets).where(_b.project_id == project_id)
    objects = select(func.count()).select_from(t.objects).where(mine, IS_COMMITTED)
    pending = select(
        func.count(),
        func.coalesce(func.sum(_o.reserved_storage), 0),
        func.coalesce(func.sum(_o.reserved_segments), 0),
    ).where(mine, IS_PENDING)
    _e = t.project_egress.c
    egress = select(_e.bytes).where(_e.project_id == project_id, _e.period == period)
    project = select(
        _pr.max_buckets, _pr.max_storage, _pr.max_egress, _pr.max_segments,
        _pr.used_storage, _pr.used_segments,
    ).where(_pr.id == project_id)  # fmt: skip

    def read(conn: Connection) -> ProjectUsage | None:
        row = conn.execute(project).first()
        if row is None:
            return None
        uploads, reserved_storage, reserved_segments = conn.execute(pending).one()
        return ProjectUsage(
            max_buckets=row.max_buckets,
            max_storage=row.max_storage,
            max_egress=row.max_egress,
            max_segments=row.max_segments,
            buckets=conn.execute(buckets).scalar_one(),
            storage_bytes=row.used_storage,
            egress_bytes=conn.execute(egress).scalar() or 0,
            segments=row.used_segments,
            objects=conn.execute(objects).scalar_one(),
            pending_uploads=uploads,
            pending_storage=int(reserved_storage),
            pending_segments=int(reserved_segments),
        )

    return db.read(read)
