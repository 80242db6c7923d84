"""Changes to visible objects: moves, copies and deletes, and replacing the object at a key.

Visible objects are rows with status COMMITTED; a partial unique index allows one per key. Commits
that race for one key are resolved by that index: the loser's transaction fails, is retried from
the start by `Database.write`, finds the winner's object, and replaces it (last commit wins).
Every write that changes the visible object at a key, here and in `uploads` (commits, inline
puts), removes the old one with `clear_key` and moves the project's counters with `count_usage`,
the transaction's last statement.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Row,
    Select,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)

from metadisk.bridge.db import tables as t
from metadisk.bridge.db._shared import release_streams
from metadisk.bridge.db.engine import RETRIES, Database
from metadisk.bridge.db.metainfo._shared import AT_KEY, OBJECT_EXISTS, as_segment_info
from metadisk.bridge.metainfo.db import ObjectInfo, Outcome, Relocation, SegmentInfo

_o = t.objects.c
_s = t.segments.c
_b = t.buckets.c
_pr = t.projects.c
_ps = t.piece_sets.c

# Built once with bind parameters, like the statements in `_shared`.
_VISIBLE_AT_KEY = (
    select(_o.stream_id, _o.encrypted_size, _o.segment_count).where(AT_KEY).with_for_update()
)
_DELETE_OBJECT = delete(t.objects).where(_o.stream_id == bindparam("stream_id"))
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
_SOURCE_AT_KEY = (
    select(
        _o.stream_id,
        _o.committed_at,
        _o.encrypted_size,
        _o.plain_size,
        _o.segment_count,
        _o.inline_data,
    )
    .where(AT_KEY)
    .with_for_update()
)
# bindparam names must differ from column names in UPDATE statements.
_SET_SEGMENT_METADATA = (
    update(t.segments)
    .where(_s.stream_id == bindparam("s_stream"), _s.index == bindparam("s_index"))
    .values(encrypted_metadata=bindparam("s_meta"))
)


class Abort(Exception):
    """Raised inside a transaction to roll it back and report `outcome`."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.value)
        self.outcome = outcome


def relocate(
    db: Database, relocation: Relocation, allow_replace: bool, now: int
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
        segments = [
            replace(info, encrypted_metadata=move.segment_metadata[info.index])
            for info in map(as_segment_info, rows)
        ]
        if (move.bucket, move.key) == (move.new_bucket, move.new_key):
            if not allow_replace:
                return Outcome.EXISTS, None
            return Outcome.OK, _replace_metadata(conn, move, source, segments, now)
        old_size, old_segments = clear_key(
            conn, move.project_id, move.new_bucket, move.new_key, allow_replace, now
        ) or (0, 0)
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
            _set_segment_metadata(conn, stream_id, segments)
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
            count_usage(conn, move.project_id, size - old_size, count - old_segments)
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
        return db.write(work)
    except Abort as abort:
        return abort.outcome, None


def _set_segment_metadata(conn: Connection, stream_id: bytes, segments: list[SegmentInfo]) -> None:
    if segments:
        conn.execute(
            _SET_SEGMENT_METADATA,
            [
                {"s_stream": stream_id, "s_index": g.index, "s_meta": g.encrypted_metadata}
                for g in segments
            ],
        )


def _replace_metadata(
    conn: Connection, move: Relocation, source: Row[Any], segments: list[SegmentInfo], now: int
) -> ObjectInfo:
    """A copy onto the object's own key: its metadata replaced in place, committed now."""
    stream_id = source.stream_id
    conn.execute(
        update(t.objects)
        .where(_o.stream_id == stream_id)
        .values(committed_at=now, encrypted_metadata=move.encrypted_metadata)
    )
    _set_segment_metadata(conn, stream_id, segments)
    return ObjectInfo(
        stream_id=stream_id,
        bucket=move.bucket,
        key=move.key,
        created_at=now,
        encrypted_size=source.encrypted_size,
        plain_size=source.plain_size,
        segment_count=source.segment_count,
        encrypted_metadata=move.encrypted_metadata,
        inline_data=source.inline_data,
        segments=segments,
    )


def delete_object(db: Database, project_id: str, bucket: str, key: str, now: int) -> bool:
    def work(conn: Connection) -> bool:
        old = clear_key(conn, project_id, bucket, key, True, now, settle=True)
        if old is None:
            return False
        count_usage(conn, project_id, -old[0], -old[1])
        return True

    return db.write(work)


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
        if row is not None or not settle or not conn.execute(OBJECT_EXISTS, where).scalar():
            return row
    return None


def clear_key(
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

    Raises `Abort(EXISTS)` (rolling the transaction back) if there is one and `allow_replace`
    is false. Counters are left to `count_usage`, the transaction's last statement. `settle`: see
    `_lock_visible`.
    """
    where = {"project_id": project_id, "bucket": bucket, "key": key}
    old = _lock_visible(conn, _VISIBLE_AT_KEY, where, settle)
    if old is None:
        return None
    if not allow_replace:
        raise Abort(Outcome.EXISTS)
    stream_id, size, segments = old.stream_id, old.encrypted_size, old.segment_count
    if segments:
        release_streams(conn, [stream_id], now)
    conn.execute(_DELETE_OBJECT, {"stream_id": stream_id})
    return size, segments


def count_usage(conn: Connection, project_id: str, size: int, segments: int) -> None:
    """Move the project's counters; `Abort` if growth would pass a limit."""
    params = {"project_id": project_id, "size": size, "segments": segments}
    if not conn.execute(_COUNT_USAGE, params).rowcount:
        raise Abort(Outcome.STORAGE_LIMIT)
    if segments > 0:
        within = conn.execute(
            select(_pr.used_segments <= _pr.max_segments).where(_pr.id == project_id)
        ).scalar()
        if not within:
            raise Abort(Outcome.SEGMENT_LIMIT)
