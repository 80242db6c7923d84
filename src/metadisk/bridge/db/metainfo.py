"""Objects, segments, pieces and order limits in SQL.

Visible objects are rows with status COMMITTED; a partial unique index allows one per key. Commits
that race for one key are resolved by that index: the loser's transaction fails, is retried from
the start by `Database.write`, finds the winner's object, and replaces it (last commit wins).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Row,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from metadisk.bridge.db import tables as t
from metadisk.bridge.db._shared import (
    IS_COMMITTED,
    IS_PENDING,
    SEGMENT_COMMITTED,
    SEGMENT_PENDING,
    queue_deletes,
    release_streams,
)
from metadisk.bridge.db.engine import RETRIES, Database
from metadisk.bridge.metainfo.db import (
    InlineObject,
    ListedObject,
    NewSegment,
    ObjectInfo,
    Outcome,
    PendingUpload,
    PieceLocation,
    Quota,
    Relocation,
    SegmentInfo,
    SegmentPieces,
    SegmentState,
    Upload,
    UploadState,
)
from metadisk.bridge.orders.service import AcceptedPiece, IssuedOrder
from metadisk.core.erasure import RedundancyScheme
from metadisk.core.identity import NodeId

_o = t.objects.c
_s = t.segments.c
_p = t.pieces.c
_so = t.segment_orders.c
_b = t.buckets.c
_pr = t.projects.c
_n = t.nodes.c
_ps = t.piece_sets.c

# Hot statements are built once with bind parameters: building a statement per call costs more
# than running it on SQLite (SQLAlchemy caches the compiled form per statement object).
_AT_KEY = (
    (_o.project_id == bindparam("project_id"))
    & (_o.bucket == bindparam("bucket"))
    & (_o.key == bindparam("key"))
    & IS_COMMITTED
)
_GET_HEAD = select(
    _o.stream_id,
    _o.committed_at,
    _o.encrypted_size,
    _o.plain_size,
    _o.segment_count,
    _o.encrypted_metadata,
    _o.inline_data,
).where(_AT_KEY)
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
_VISIBLE_AT_KEY = (
    select(_o.stream_id, _o.encrypted_size, _o.segment_count).where(_AT_KEY).with_for_update()
)
_OBJECT_EXISTS = select(exists().where(_AT_KEY))
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
_SIZE = bindparam("size", type_=BigInteger)
_SEGMENTS = bindparam("segments", type_=BigInteger)
# Moves both counters by a delta; growth only within the limit. Always the last statement of a
# transaction: taking the project's row lock after the object rows keeps lock order the same
# everywhere (PostgreSQL would otherwise find deadlocks between commits of one key).
_COUNT_USAGE = (
    update(t.projects)
    .where(
        _pr.id == bindparam("project_id"),
        or_(_SIZE <= 0, _pr.used_storage + _SIZE <= _pr.max_storage),
    )
    .values(used_storage=_pr.used_storage + _SIZE, used_segments=_pr.used_segments + _SEGMENTS)
)
_INSERT_INLINE = insert(t.objects)
_SOURCE_AT_KEY = (
    select(
        _o.stream_id,
        _o.committed_at,
        _o.encrypted_size,
        _o.plain_size,
        _o.segment_count,
        _o.inline_data,
    )
    .where(_AT_KEY)
    .with_for_update()
)
# bindparam names must differ from column names in UPDATE statements.
_SET_SEGMENT_METADATA = (
    update(t.segments)
    .where(_s.stream_id == bindparam("s_stream"), _s.index == bindparam("s_index"))
    .values(encrypted_metadata=bindparam("s_meta"))
)
# A pending upload with its bucket's redundancy: what both upload lookups select.
_UPLOAD_COLUMNS = (
    _o.stream_id,
    _o.project_id,
    _o.bucket,
    _o.key,
    _o.created_at,
    _o.deadline,
    _b.k,
    _b.m,
    _b.o,
    _b.n,
)
_OBJECTS_WITH_BUCKETS = t.objects.join(
    t.buckets, and_(_b.project_id == _o.project_id, _b.name == _o.bucket)
)
_PENDING_UPLOADS = select(*_UPLOAD_COLUMNS).select_from(_OBJECTS_WITH_BUCKETS).where(IS_PENDING)
MAX_PENDING_LISTED = 100
_DELETE_OBJECT = delete(t.objects).where(_o.stream_id == bindparam("stream_id"))


class _Abort(Exception):
    """Raised inside a transaction to roll it back and report `outcome`."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.value)
        self.outcome = outcome


class MetainfoStore:
    """Implements `metadisk.bridge.metainfo.db.MetainfoDB`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- uploads -------------------------------------------------------------------------------

    def begin_object(
        self, project_id: str, stream_id: bytes, bucket: str, key: str, now: int, deadline: int
    ) -> RedundancyScheme | None:
        def work(conn: Connection) -> RedundancyScheme | None:
            row = conn.execute(
                select(_b.k, _b.m, _b.o, _b.n).where(_b.project_id == project_id, _b.name == bucket)
            ).first()
            if row is None:
                return None
            conn.execute(
                insert(t.objects).values(
                    stream_id=stream_id,
                    project_id=project_id,
                    bucket=bucket,
                    key=key,
                    status=t.PENDING,
                    created_at=now,
                    deadline=deadline,
                )
            )
            return RedundancyScheme(row.k, row.m, row.o, row.n)

        return self._db.write(work)

    def upload_state(self, project_id: str, stream_id: bytes, index: int) -> UploadState | None:
        segment_status = (
            select(_s.status)
            .where(_s.stream_id == _o.stream_id, _s.index == index)
            .scalar_subquery()
        )
        query = (
            select(
                *_UPLOAD_COLUMNS,
                _pr.max_storage,
                _pr.used_storage,
                _pr.max_segments,
                _pr.used_segments,
                segment_status.label("segment_status"),
            )
            .select_from(_OBJECTS_WITH_BUCKETS.join(t.projects, _pr.id == _o.project_id))
            .where(_o.stream_id == stream_id, _o.project_id == project_id, IS_PENDING)
        )
        row = self._db.read(lambda conn: conn.execute(query).first())
        if row is None:
            return None
        return UploadState(
            upload=_upload(row),
            quota=Quota(row.max_storage, row.used_storage, row.max_segments, row.used_segments),
            segment_committed=row.segment_status == t.COMMITTED,
        )

    def begin_segment(
        self, upload: Upload, segment: NewSegment, orders: Sequence[IssuedOrder], now: int
    ) -> Outcome:
        def work(conn: Connection) -> Outcome:
            if not _lock_pending(conn, upload.stream_id):
                return Outcome.NOT_FOUND
            where = (_s.stream_id == upload.stream_id) & (_s.index == segment.index)
            status = conn.execute(select(_s.status).where(where)).scalar()
            if status == t.COMMITTED:
                return Outcome.SEGMENT_COMMITTED
            if status is not None:
                # Begun again (the client retries): the earlier order limits' pieces must go.
                old = conn.execute(
                    select(_so.node_id, _so.piece_id).where(
                        _so.stream_id == upload.stream_id, _so.segment_index == segment.index
                    )
                ).all()
                queue_deletes(conn, [(r.node_id, r.piece_id) for r in old], now)
                conn.execute(delete(t.segments).where(where))
            rs = segment.redundancy
            conn.execute(
                insert(t.segments).values(
                    stream_id=upload.stream_id,
                    index=segment.index,
                    status=t.PENDING,
                    root_piece_id=segment.root_piece_id,
                    encrypted_size=segment.encrypted_size,
                    piece_size=segment.piece_size,
                    k=rs.k,
                    m=rs.m,
                    o=rs.o,
                    n=rs.n,
                    created_at=now,
                )
            )
            _insert_orders(conn, upload.stream_id, segment.index, orders)
            return Outcome.OK

        return self._db.write(work)

    def segment_state(self, project_id: str, stream_id: bytes, index: int) -> SegmentState | None:
        head = (
            select(
                _o.stream_id,
                _o.project_id,
                _o.bucket,
                _o.key,
                _o.created_at,
                _o.deadline,
                _s.root_piece_id,
                _s.piece_size,
                _s.k,
                _s.m,
                _s.o,
                _s.n,
            )
            .select_from(t.objects.join(t.segments, _s.stream_id == _o.stream_id))
            .where(
                _o.stream_id == stream_id,
                _o.project_id == project_id,
                IS_PENDING,
                _s.index == index,
                SEGMENT_PENDING,
            )
        )
        order_query = (
            select(
                _so.serial,
                _so.piece_number,
                _so.node_id,
                _so.piece_id,
                _so.expires_at,
                _n.public_key,
                _n.last_net,
            )
            .select_from(t.segment_orders.outerjoin(t.nodes, _n.node_id == _so.node_id))
            .where(_so.stream_id == stream_id, _so.segment_index == index)
            .order_by(_so.piece_number)
        )

        def work(conn: Connection) -> SegmentState | None:
            row = conn.execute(head).first()
            if row is None:
                return None
            rows = conn.execute(order_query).all()
            orders = [
                IssuedOrder(
                    r.serial,
                    r.piece_number,
                    NodeId(r.node_id),
                    r.piece_id,
                    row.piece_size,
                    r.expires_at,
                )
                for r in rows
            ]
            keys = {NodeId(r.node_id): r.public_key for r in rows if r.public_key is not None}
            nets = {NodeId(r.node_id): r.last_net for r in rows if r.last_net is not None}
            return SegmentState(
                upload=_upload(row),
                index=index,
                root_piece_id=row.root_piece_id,
                piece_size=row.piece_size,
                redundancy=RedundancyScheme(row.k, row.m, row.o, row.n),
                orders=orders,
                public_keys=keys,
                nets=nets,
            )

        return self._db.read(work)

    def replace_orders(
        self,
        stream_id: bytes,
        index: int,
        old: Sequence[IssuedOrder],
        new: Sequence[IssuedOrder],
        now: int,
    ) -> bool:
        def work(conn: Connection) -> bool:
            if not _lock_pending(conn, stream_id):
                return False
            status = conn.execute(
                select(_s.status).where(_s.stream_id == stream_id, _s.index == index)
            ).scalar()
            if status != t.PENDING:
                return False
            serials = [order.serial for order in old]
            conn.execute(delete(t.segment_orders).where(_so.serial.in_(serials)))
            # The failed farmer may have kept part or all of the piece.
            queue_deletes(conn, [(order.node_id.raw, order.piece_id) for order in old], now)
            _insert_orders(conn, stream_id, index, new)
            return True

        return self._db.write(work)

    def commit_segment(
        self,
        stream_id: bytes,
        index: int,
        pieces: Sequence[AcceptedPiece],
        plain_size: int,
        encrypted_metadata: bytes | None,
        now: int,
    ) -> bool:
        def work(conn: Connection) -> bool:
            if not _lock_pending(conn, stream_id):
                return False
            root = conn.execute(
                update(t.segments)
                .where(_s.stream_id == stream_id, _s.index == index, SEGMENT_PENDING)
                .values(
                    status=t.COMMITTED,
                    plain_size=plain_size,
                    encrypted_metadata=encrypted_metadata,
                )
                .returning(_s.root_piece_id)
            ).scalar()
            if root is None:
                return False
            conn.execute(insert(t.piece_sets).values(root_piece_id=root, refs=1, created_at=now))
            conn.execute(
                insert(t.pieces),
                [
                    {
                        "root_piece_id": root,
                        "piece_number": piece.piece_number,
                        "node_id": piece.node_id.raw,
                        "piece_id": piece.piece_id,
                        "size": piece.size,
                        "piece_hash": piece.piece_hash,
                        "stored_at": piece.stored_at,
                    }
                    for piece in pieces
                ],
            )
            # Order limits whose piece is not recorded: a cancelled straggler may still have
            # finished its upload, so ask its farmer to delete it.
            used = [piece.serial for piece in pieces]
            in_segment = (_so.stream_id == stream_id) & (_so.segment_index == index)
            unused = conn.execute(
                select(_so.node_id, _so.piece_id).where(in_segment, _so.serial.not_in(used))
            ).all()
            queue_deletes(conn, [(r.node_id, r.piece_id) for r in unused], now)
            conn.execute(delete(t.segment_orders).where(in_segment))
            return True

        return self._db.write(work)

    def commit_object(
        self,
        project_id: str,
        stream_id: bytes,
        encrypted_metadata: bytes | None,
        allow_replace: bool,
        now: int,
    ) -> tuple[Outcome, ObjectInfo | None]:
        def work(conn: Connection) -> tuple[Outcome, ObjectInfo | None]:
            head = conn.execute(
                select(_o.bucket, _o.key)
                .where(_o.stream_id == stream_id, _o.project_id == project_id, IS_PENDING)
                .with_for_update()
            ).first()
            if head is None:
                return Outcome.NOT_FOUND, None
            rows = conn.execute(
                select(t.segments).where(_s.stream_id == stream_id).order_by(_s.index)
            ).all()
            if any(r.status != t.COMMITTED or r._mapping["index"] != i for i, r in enumerate(rows)):
                return Outcome.SEGMENTS_MISSING, None
            segments = [_segment_info(r) for r in rows]
            size = sum(s.encrypted_size for s in segments)
            plain = sum(s.plain_size for s in segments)
            old_size, old_segments = _clear_key(
                conn, project_id, head.bucket, head.key, allow_replace, now
            ) or (0, 0)
            conn.execute(
                update(t.objects)
                .where(_o.stream_id == stream_id)
                .values(
                    status=t.COMMITTED,
                    committed_at=now,
                    deadline=None,
                    encrypted_size=size,
                    plain_size=plain,
                    segment_count=len(segments),
                    encrypted_metadata=encrypted_metadata,
                )
            )
            _count(conn, project_id, size - old_size, len(segments) - old_segments)
            info = ObjectInfo(
                stream_id=stream_id,
                bucket=head.bucket,
                key=head.key,
                created_at=now,
                encrypted_size=size,
                plain_size=plain,
                segment_count=len(segments),
                encrypted_metadata=encrypted_metadata,
                inline_data=None,
                segments=segments,
            )
            return Outcome.OK, info

        try:
            return self._db.write(work)
        except _Abort as abort:
            return abort.outcome, None

    def put_inline(self, obj: InlineObject, allow_replace: bool, now: int) -> Outcome:
        def work(conn: Connection) -> Outcome:
            old_size, old_segments = _clear_key(
                conn, obj.project_id, obj.bucket, obj.key, allow_replace, now
            ) or (0, 0)
            # No bucket: the foreign key refuses the row (checked below, off the happy path).
            conn.execute(
                _INSERT_INLINE,
                {
                    "stream_id": obj.stream_id,
                    "project_id": obj.project_id,
                    "bucket": obj.bucket,
                    "key": obj.key,
                    "status": t.COMMITTED,
                    "created_at": now,
                    "committed_at": now,
                    "encrypted_size": len(obj.data),
                    "plain_size": obj.plain_size,
                    "segment_count": 0,
                    "encrypted_metadata": obj.encrypted_metadata,
                    "inline_data": obj.data,
                },
            )
            _count(conn, obj.project_id, len(obj.data) - old_size, -old_segments)
            return Outcome.OK

        try:
            return self._db.write(work)
        except _Abort as abort:
            return abort.outcome
        except IntegrityError:
            if not self.bucket_exists(obj.project_id, obj.bucket):
                return Outcome.NOT_FOUND
            raise

    def abort_upload(self, project_id: str, stream_id: bytes, now: int) -> bool:
        def work(conn: Connection) -> bool:
            found = conn.execute(
                select(_o.stream_id)
                .where(_o.stream_id == stream_id, _o.project_id == project_id, IS_PENDING)
                .with_for_update()
            ).first()
            if found is None:
                return False
            release_streams(conn, [stream_id], now)
            conn.execute(delete(t.objects).where(_o.stream_id == stream_id))
            return True

        return self._db.write(work)

    def reclaim(self, now: int, limit: int) -> int:
        def work(conn: Connection) -> int:
            expired = [
                row.stream_id
                for row in conn.execute(
                    select(_o.stream_id)
                    .where(IS_PENDING, _o.deadline < now)
                    .order_by(_o.deadline)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ]
            if expired:
                release_streams(conn, expired, now)
                conn.execute(delete(t.objects).where(_o.stream_id.in_(expired)))
            return len(expired)

        return self._db.write(work)

    # -- moves and copies ----------------------------------------------------------------------

    def relocate(
        self, relocation: Relocation, allow_replace: bool, now: int
    ) -> tuple[Outcome, ObjectInfo | None]:
        move = relocation
        copy = move.new_stream_id is not None

        def work(conn: Connection) -> tuple[Outcome, ObjectInfo | None]:
            where = {"project_id": move.project_id, "bucket": move.bucket, "key": move.key}
            source = _lock_visible(conn, _SOURCE_AT_KEY, where, settle=True)
            if source is None:
                return Outcome.NOT_FOUND, None
            if move.stream_id is not None and source.stream_id != move.stream_id:
                return Outcome.CHANGED, None
            rows = conn.execute(
                select(t.segments).where(_s.stream_id == source.stream_id).order_by(_s.index)
            ).all()
            if [r._mapping["index"] for r in rows] != sorted(move.segment_metadata):
                return Outcome.SEGMENTS_MISMATCH, None
            # FOR SHARE: a concurrent delete of the destination bucket waits (or deadlocks and is
            # retried) instead of failing this transaction's foreign key check.
            target = conn.execute(
                select(_b.name)
                .where(_b.project_id == move.project_id, _b.name == move.new_bucket)
                .with_for_update(read=True)
            ).first()
            if target is None:
                return Outcome.TARGET_NOT_FOUND, None
            old_size, old_segments = _clear_key(
                conn, move.project_id, move.new_bucket, move.new_key, allow_replace, now
            ) or (0, 0)
            segments = [
                replace(info, encrypted_metadata=move.segment_metadata[info.index])
                for info in map(_segment_info, rows)
            ]
            if move.new_stream_id is None:
                stream_id, created_at = source.stream_id, source.committed_at
                conn.execute(
                    update(t.objects)
                    .where(_o.stream_id == stream_id)
                    .values(
                        bucket=move.new_bucket,
                        key=move.new_key,
                        encrypted_metadata=move.encrypted_metadata,
                    )
                )
                if segments:
                    conn.execute(
                        _SET_SEGMENT_METADATA,
                        [
                            {
                                "s_stream": stream_id,
                                "s_index": g.index,
                                "s_meta": g.encrypted_metadata,
                            }
                            for g in segments
                        ],
                    )
            else:
                stream_id, created_at = move.new_stream_id, now
                conn.execute(
                    insert(t.objects).values(
                        stream_id=stream_id,
                        project_id=move.project_id,
                        bucket=move.new_bucket,
                        key=move.new_key,
                        status=t.COMMITTED,
                        created_at=now,
                        committed_at=now,
                        encrypted_size=source.encrypted_size,
                        plain_size=source.plain_size,
                        segment_count=source.segment_count,
                        encrypted_metadata=move.encrypted_metadata,
                        inline_data=source.inline_data,
                    )
                )
                if rows:
                    conn.execute(
                        insert(t.segments),
                        [
                            {
                                **r._asdict(),
                                "stream_id": stream_id,
                                "encrypted_metadata": g.encrypted_metadata,
                                "created_at": now,
                            }
                            for r, g in zip(rows, segments, strict=True)
                        ],
                    )
                    # One more reference to each piece set: the pieces now outlive either object.
                    conn.execute(
                        update(t.piece_sets)
                        .where(_ps.root_piece_id.in_([r.root_piece_id for r in rows]))
                        .values(refs=_ps.refs + 1)
                    )
            size = source.encrypted_size if copy else 0
            count = source.segment_count if copy else 0
            if size - old_size or count - old_segments:
                _count(conn, move.project_id, size - old_size, count - old_segments)
            return Outcome.OK, ObjectInfo(
                stream_id=stream_id,
                bucket=move.new_bucket,
                key=move.new_key,
                created_at=created_at,
                encrypted_size=source.encrypted_size,
                plain_size=source.plain_size,
                segment_count=source.segment_count,
                encrypted_metadata=move.encrypted_metadata,
                inline_data=source.inline_data,
                segments=segments,
            )

        try:
            return self._db.write(work)
        except _Abort as abort:
            return abort.outcome, None

    # -- reads ---------------------------------------------------------------------------------

    def pending_upload(self, project_id: str, stream_id: bytes) -> PendingUpload | None:
        head = _PENDING_UPLOADS.where(_o.stream_id == stream_id, _o.project_id == project_id)
        segments = (
            select(t.segments)
            .where(_s.stream_id == stream_id, SEGMENT_COMMITTED)
            .order_by(_s.index)
        )

        def work(conn: Connection) -> PendingUpload | None:
            row = conn.execute(head).first()
            if row is None:
                return None
            return PendingUpload(_upload(row), [_segment_info(r) for r in conn.execute(segments)])

        return self._db.read(work)

    def pending_uploads(self, project_id: str, bucket: str, key: str) -> list[Upload]:
        query = (
            _PENDING_UPLOADS.where(_o.project_id == project_id, _o.bucket == bucket, _o.key == key)
            .order_by(_o.created_at, _o.stream_id)
            .limit(MAX_PENDING_LISTED)
        )
        rows = self._db.read(lambda conn: conn.execute(query).all())
        return [_upload(row) for row in rows]

    def get_object(
        self, project_id: str, bucket: str, key: str, with_segments: bool
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

        return self._db.read(work)

    def object_exists(self, project_id: str, bucket: str, key: str) -> bool:
        where = {"project_id": project_id, "bucket": bucket, "key": key}
        return bool(self._db.read(lambda conn: conn.execute(_OBJECT_EXISTS, where).scalar()))

    def bucket_exists(self, project_id: str, bucket: str) -> bool:
        where = {"project_id": project_id, "bucket": bucket}
        return bool(self._db.read(lambda conn: conn.execute(_BUCKET_EXISTS, where).scalar()))

    def segment_pieces(
        self,
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
                        and r.disqualified_at is None
                    ),
                )
                for r in rows
            ]
            return SegmentPieces(
                stream_id=row.stream_id,
                index=index,
                encrypted_size=row.encrypted_size,
                plain_size=row.plain_size,
                piece_size=row.piece_size,
                redundancy=RedundancyScheme(row.k, row.m, row.o, row.n),
                pieces=pieces,
            )

        return self._db.read(work)

    def add_egress(self, project_id: str, period: int, amount: int) -> bool:
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

        return self._db.write(work)

    def list_objects(
        self,
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
        rows = self._db.read(lambda conn: conn.execute(statement, params).all())
        return [ListedObject(*row) for row in rows]

    def delete_object(self, project_id: str, bucket: str, key: str, now: int) -> bool:
        def work(conn: Connection) -> bool:
            old = _clear_key(conn, project_id, bucket, key, True, now, settle=True)
            if old is None:
                return False
            _count(conn, project_id, -old[0], -old[1])
            return True

        return self._db.write(work)


def _lock_pending(conn: Connection, stream_id: bytes) -> bool:
    """Lock a pending upload's row for this transaction; False if it is no longer pending."""
    row = conn.execute(
        select(_o.stream_id).where(_o.stream_id == stream_id, IS_PENDING).with_for_update()
    ).first()
    return row is not None


def _insert_orders(
    conn: Connection, stream_id: bytes, index: int, orders: Sequence[IssuedOrder]
) -> None:
    if orders:
        conn.execute(
            insert(t.segment_orders),
            [
                {
                    "serial": order.serial,
                    "stream_id": stream_id,
                    "segment_index": index,
                    "piece_number": order.piece_number,
                    "node_id": order.node_id.raw,
                    "piece_id": order.piece_id,
                    "expires_at": order.expires_at,
                }
                for order in orders
            ],
        )


def _lock_visible(
    conn: Connection, statement: Select[Any], where: dict[str, str], settle: bool
) -> Row[Any] | None:
    """The visible object at a key (`where`), row-locked by `statement`; None if there is none.

    With `settle`, an object that a concurrent commit put at the key is found too. On PostgreSQL
    (READ COMMITTED) a ``SELECT ... FOR UPDATE`` that waited for a concurrent replace of the key
    finds the old row deleted and cannot see the new one, which its snapshot predates: a delete
    would answer 404 for an object that exists. Each new statement has a new snapshot, so look
    again while one is there. (Writes that insert at the key need not: they collide with the new
    row on the unique index and are retried whole.)
    """
    for _ in range(RETRIES):
        row = conn.execute(statement, where).first()
        if row is not None or not settle or not conn.execute(_OBJECT_EXISTS, where).scalar():
            return row
    return None


def _clear_key(
    conn: Connection,
    project_id: str,
    bucket: str,
    key: str,
    allow_replace: bool,
    now: int,
    *,
    settle: bool = False,
) -> tuple[int, int] | None:
    """Delete the visible object at a key, queueing its pieces; its (size, segments) or None.

    Raises `_Abort(EXISTS)` (rolling the transaction back) if there is one and `allow_replace`
    is false. Counters are left to `_count`, the transaction's last statement. `settle`: see
    `_lock_visible`.
    """
    where = {"project_id": project_id, "bucket": bucket, "key": key}
    old = _lock_visible(conn, _VISIBLE_AT_KEY, where, settle)
    if old is None:
        return None
    if not allow_replace:
        raise _Abort(Outcome.EXISTS)
    stream_id, size, segments = old.stream_id, old.encrypted_size, old.segment_count
    if segments:
        release_streams(conn, [stream_id], now)
    conn.execute(_DELETE_OBJECT, {"stream_id": stream_id})
    return size, segments


def _count(conn: Connection, project_id: str, size: int, segments: int) -> None:
    """Move the project's counters; `_Abort` if growth would pass a limit."""
    params = {"project_id": project_id, "size": size, "segments": segments}
    if not conn.execute(_COUNT_USAGE, params).rowcount:
        raise _Abort(Outcome.STORAGE_LIMIT)
    if segments > 0:
        within = conn.execute(
            select(_pr.used_segments <= _pr.max_segments).where(_pr.id == project_id)
        ).scalar()
        if not within:
            raise _Abort(Outcome.SEGMENT_LIMIT)


def _upload(row: Row) -> Upload:  # type: ignore[type-arg]
    return Upload(
        stream_id=row.stream_id,
        project_id=row.project_id,
        bucket=row.bucket,
        key=row.key,
        redundancy=RedundancyScheme(row.k, row.m, row.o, row.n),
        created_at=row.created_at,
        deadline=row.deadline,
    )


def _segment_info(row: Row) -> SegmentInfo:  # type: ignore[type-arg]
    return SegmentInfo(
        index=row._mapping["index"],
        encrypted_size=row.encrypted_size,
        plain_size=row.plain_size,
        piece_size=row.piece_size,
        redundancy=RedundancyScheme(row.k, row.m, row.o, row.n),
        encrypted_metadata=row.encrypted_metadata,
    )
