"""Objects, segments, pieces and order limits in SQL.

The work is done by functions that take the `Database`, one module per part of the flow:

- `uploads`: an object from begin to commit (or abort, or reclaim), inline puts, pending uploads;
- `segments`: the segments of a pending upload, their order limits and commits;
- `objects`: moves, copies and deletes, and how a write replaces the visible object at a key;
- `reads`: gets, listings, and the pieces of a segment for download (with its egress).

`MetainfoStore` binds them to one database; it implements `MetainfoDB` (the uploads and objects
services) and `ReclaimDB` (the reclaim chore).
"""

from __future__ import annotations

from collections.abc import Sequence

from metadisk.bridge.db.engine import Database
from metadisk.bridge.db.metainfo import objects, reads, segments, uploads
from metadisk.bridge.metainfo.db import (
    Caps,
    InlineObject,
    ListedObject,
    NewSegment,
    ObjectInfo,
    Outcome,
    PendingUpload,
    ProjectUsage,
    Relocation,
    SegmentPieces,
    SegmentState,
    Upload,
    UploadState,
)
from metadisk.bridge.orders.service import AcceptedPiece, IssuedOrder
from metadisk.core.erasure import RedundancyScheme

__all__ = ["MetainfoStore"]


class MetainfoStore:
    """Implements `metadisk.bridge.metainfo.db.MetainfoDB`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- uploads -------------------------------------------------------------------------------

    def begin_object(
        self,
        project_id: str,
        stream_id: bytes,
        bucket: str,
        key: str,
        now: int,
        deadline: int,
        max_pending: int,
    ) -> tuple[Outcome, RedundancyScheme | None]:
        return uploads.begin_object(
            self._db, project_id, stream_id, bucket, key, now, deadline, max_pending
        )

    def upload_state(self, project_id: str, stream_id: bytes, index: int) -> UploadState | None:
        return uploads.upload_state(self._db, project_id, stream_id, index)

    def commit_object(
        self,
        project_id: str,
        stream_id: bytes,
        encrypted_metadata: bytes | None,
        allow_replace: bool,
        now: int,
        segments: Sequence[int] | None = None,
    ) -> tuple[Outcome, ObjectInfo | None]:
        return uploads.commit_object(
            self._db, project_id, stream_id, encrypted_metadata, allow_replace, now, segments
        )

    def put_inline(self, obj: InlineObject, allow_replace: bool, now: int) -> Outcome:
        return uploads.put_inline(self._db, obj, allow_replace, now)

    def abort_upload(self, project_id: str, stream_id: bytes, now: int) -> bool:
        return uploads.abort_upload(self._db, project_id, stream_id, now)

    def reclaim(self, now: int, limit: int) -> int:
        return uploads.reclaim(self._db, now, limit)

    def expired_uploads(self, now: int) -> int:
        return uploads.expired_uploads(self._db, now)

    def pending_upload(self, project_id: str, stream_id: bytes) -> PendingUpload | None:
        return uploads.pending_upload(self._db, project_id, stream_id)

    def pending_uploads(self, project_id: str, bucket: str, key: str) -> list[Upload]:
        return uploads.pending_uploads(self._db, project_id, bucket, key)

    def pending_uploads_under(
        self, project_id: str, bucket: str, prefix: str, limit: int
    ) -> list[Upload]:
        return uploads.pending_uploads_under(self._db, project_id, bucket, prefix, limit)

    def project_usage(self, project_id: str, period: int) -> ProjectUsage | None:
        return reads.project_usage(self._db, project_id, period)

    # -- segments ------------------------------------------------------------------------------

    def begin_segment(
        self,
        upload: Upload,
        segment: NewSegment,
        orders: Sequence[IssuedOrder],
        now: int,
        caps: Caps,
    ) -> Outcome:
        return segments.begin_segment(self._db, upload, segment, orders, now, caps)

    def segment_state(self, project_id: str, stream_id: bytes, index: int) -> SegmentState | None:
        return segments.segment_state(self._db, project_id, stream_id, index)

    def replace_orders(
        self,
        stream_id: bytes,
        index: int,
        old: Sequence[IssuedOrder],
        new: Sequence[IssuedOrder],
        now: int,
        caps: Caps,
    ) -> Outcome:
        return segments.replace_orders(self._db, stream_id, index, old, new, now, caps)

    def commit_segment(
        self,
        stream_id: bytes,
        index: int,
        pieces: Sequence[AcceptedPiece],
        plain_size: int,
        encrypted_metadata: bytes | None,
        now: int,
    ) -> bool:
        return segments.commit_segment(
            self._db, stream_id, index, pieces, plain_size, encrypted_metadata, now
        )

    # -- moves, copies and deletes -------------------------------------------------------------

    def relocate(
        self, relocation: Relocation, allow_replace: bool, now: int
    ) -> tuple[Outcome, ObjectInfo | None]:
        return objects.relocate(self._db, relocation, allow_replace, now)

    def delete_object(self, project_id: str, bucket: str, key: str, now: int) -> bool:
        return objects.delete_object(self._db, project_id, bucket, key, now)

    # -- reads ---------------------------------------------------------------------------------

    def get_object(
        self, project_id: str, bucket: str, key: str, with_segments: bool
    ) -> ObjectInfo | None:
        return reads.get_object(self._db, project_id, bucket, key, with_segments)

    def object_exists(self, project_id: str, bucket: str, key: str) -> bool:
        return reads.object_exists(self._db, project_id, bucket, key)

    def bucket_exists(self, project_id: str, bucket: str) -> bool:
        return reads.bucket_exists(self._db, project_id, bucket)

    def segment_pieces(
        self,
        project_id: str,
        bucket: str,
        key: str,
        index: int,
        stream_id: bytes | None,
        online_since: int,
    ) -> SegmentPieces | None:
        return reads.segment_pieces(
            self._db, project_id, bucket, key, index, stream_id, online_since
        )

    def add_egress(self, project_id: str, period: int, amount: int) -> bool:
        return reads.add_egress(self._db, project_id, period, amount)

    def list_objects(
        self,
        project_id: str,
        bucket: str,
        start: str,
        inclusive: bool,
        end: str | None,
        limit: int,
    ) -> list[ListedObject]:
        return reads.list_objects(self._db, project_id, bucket, start, inclusive, end, limit)
