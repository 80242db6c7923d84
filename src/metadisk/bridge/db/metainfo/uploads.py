"""Uploads: an object from begin to commit (or abort, or reclaim), and inline puts.

An upload is an object row with status PENDING, invisible until `commit_object` makes it the
visible object at its key (see `objects` for how that replaces an older one). Its segments are
begun and committed in `segments`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from metadisk.bridge.db import tables as t
from metadisk.bridge.db._shared import (
    IS_PENDING,
    SEGMENT_COMMITTED,
    release_segments,
    release_streams,
)
from metadisk.bridge.db.engine import Database
from metadisk.bridge.db.metainfo._shared import as_segment_info, as_upload, pending_uploads_over
from metadisk.bridge.db.metainfo.objects import Abort, clear_key, count_usage
from metadisk.bridge.db.metainfo.reads import bucket_exists
from metadisk.bridge.metainfo.db import (
    InlineObject,
    ObjectInfo,
    Outcome,
    PendingUpload,
    Quota,
    Upload,
    UploadState,
)
from metadisk.core.erasure import RedundancyScheme

_o = t.objects.c
_s = t.segments.c
_b = t.buckets.c
_pr = t.projects.c

# Built once, like the statements in `_shared`: an inline put is a hot path.
_INSERT_INLINE = insert(t.objects)
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


def begin_object(
    db: Database,
    project_id: str,
    stream_id: bytes,
    bucket: str,
    key: str,
    now: int,
    deadline: int,
    max_pending: int,
) -> tuple[Outcome, RedundancyScheme | None]:
    def work(conn: Connection) -> tuple[Outcome, RedundancyScheme | None]:
        row = conn.execute(
            select(_b.k, _b.m, _b.o, _b.n).where(_b.project_id == project_id, _b.name == bucket)
        ).first()
        if row is None:
            return Outcome.NOT_FOUND, None
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
        # Counted after the insert, so that the project's row is locked last (see `objects`).
        if pending_uploads_over(conn, project_id, max_pending):
            raise Abort(Outcome.PENDING_LIMIT)
        return Outcome.OK, RedundancyScheme(row.k, row.m, row.o, row.n)

    try:
        return db.write(work)
    except Abort as abort:
        return abort.outcome, None


def upload_state(db: Database, project_id: str, stream_id: bytes, index: int) -> UploadState | None:
    segment_status = (
        select(_s.status).where(_s.stream_id == _o.stream_id, _s.index == index).scalar_subquery()
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
    row = db.read(lambda conn: conn.execute(query).first())
    if row is None:
        return None
    return UploadState(
        upload=as_upload(row),
        quota=Quota(row.max_storage, row.used_storage, row.max_segments, row.used_segments),
        segment_committed=row.segment_status == t.COMMITTED,
    )


def commit_object(
    db: Database,
    project_id: str,
    stream_id: bytes,
    encrypted_metadata: bytes | None,
    allow_replace: bool,
    now: int,
    listed: Sequence[int] | None = None,
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
        if listed is None:
            if any(r.status != t.COMMITTED or r._mapping["index"] != i for i, r in enumerate(rows)):
                return Outcome.SEGMENTS_MISSING, None
        else:
            committed = {r._mapping["index"] for r in rows if r.status == t.COMMITTED}
            if not committed.issuperset(listed):
                return Outcome.SEGMENTS_MISSING, None
            wanted = set(listed)
            dropped = [r._mapping["index"] for r in rows if r._mapping["index"] not in wanted]
            # Parts uploaded and left out (re-uploaded elsewhere, or never meant to be): their
            # pieces go as an abort's would; the upload's reservation ends with the commit.
            release_segments(conn, stream_id, dropped, now)
            rows = [r for r in rows if r._mapping["index"] in wanted]
        segments = [as_segment_info(r) for r in rows]
        size = sum(s.encrypted_size for s in segments)
        plain = sum(s.plain_size for s in segments)
        old_size, old_segments = clear_key(
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
        count_usage(conn, project_id, size - old_size, len(segments) - old_segments)
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
        return db.write(work)
    except Abort as abort:
        return abort.outcome, None


def put_inline(db: Database, obj: InlineObject, allow_replace: bool, now: int) -> Outcome:
    def work(conn: Connection) -> Outcome:
        old_size, old_segments = clear_key(
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
        count_usage(conn, obj.project_id, len(obj.data) - old_size, -old_segments)
        return Outcome.OK

    try:
        return db.write(work)
    except Abort as abort:
        return abort.outcome
    except IntegrityError:
        if not bucket_exists(db, obj.project_id, obj.bucket):
            return Outcome.NOT_FOUND
        raise


def abort_upload(db: Database, project_id: str, stream_id: bytes, now: int) -> bool:
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

    return db.write(work)


def reclaim(db: Database, now: int, limit: int) -> int:
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

    return db.write(work)


def expired_uploads(db: Database, now: int) -> int:
    query = select(func.count()).select_from(t.objects).where(IS_PENDING, _o.deadline < now)
    return int(db.read(lambda conn: conn.execute(query).scalar_one()))


def pending_upload(db: Database, project_id: str, stream_id: bytes) -> PendingUpload | None:
    head = _PENDING_UPLOADS.where(_o.stream_id == stream_id, _o.project_id == project_id)
    segments = (
        select(t.segments).where(_s.stream_id == stream_id, SEGMENT_COMMITTED).order_by(_s.index)
    )

    def work(conn: Connection) -> PendingUpload | None:
        row = conn.execute(head).first()
        if row is None:
            return None
        return PendingUpload(as_upload(row), [as_segment_info(r) for r in conn.execute(segments)])

    return db.read(work)


def pending_uploads(db: Database, project_id: str, bucket: str, key: str) -> list[Upload]:
    query = (
        _PENDING_UPLOADS.where(_o.project_id == project_id, _o.bucket == bucket, _o.key == key)
        .order_by(_o.created_at, _o.stream_id)
        .limit(MAX_PENDING_LISTED)
    )
    rows = db.read(lambda conn: conn.execute(query).all())
    return [as_upload(row) for row in rows]


def pending_uploads_under(
    db: Database, project_id: str, bucket: str, prefix: str, limit: int
) -> list[Upload]:
    where = [_o.project_id == project_id, _o.bucket == bucket]
    if prefix:
        # A key range, not LIKE: SQLite's LIKE ignores case, and encrypted keys are
        # case-sensitive. `prefix` ends with "/", so "0" (the next character) bounds it.
        where += [_o.key >= prefix, _o.key < prefix[:-1] + "0"]
    query = _PENDING_UPLOADS.where(*where).order_by(_o.created_at, _o.stream_id).limit(limit)
    rows = db.read(lambda conn: conn.execute(query).all())
    return [as_upload(row) for row in rows]
