"""What several metainfo modules need: the visible object at a key, and rows as dataclasses."""

from __future__ import annotations

from sqlalchemy import Row, bindparam, exists, select

from metadisk.bridge.db import tables as t
from metadisk.bridge.db._shared import IS_COMMITTED
from metadisk.bridge.metainfo.db import SegmentInfo, Upload
from metadisk.core.erasure import RedundancyScheme

_o = t.objects.c

# Hot statements are built once with bind parameters: building a statement per call costs more
# than running it on SQLite (SQLAlchemy caches the compiled form per statement object).
AT_KEY = (
    (_o.project_id == bindparam("project_id"))
    & (_o.bucket == bindparam("bucket"))
    & (_o.key == bindparam("key"))
    & IS_COMMITTED
)
OBJECT_EXISTS = select(exists().where(AT_KEY))


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
