"""What the metainfo service needs from the database.

Every method that changes more than one row is one transaction in the implementation: a commit
that replaces an object, queues the old pieces for deletion and moves the project's counters either
happens whole or not at all.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from metadisk.bridge.orders.service import AcceptedPiece, IssuedOrder
from metadisk.core.erasure import RedundancyScheme
from metadisk.core.identity import NodeId


@dataclass(frozen=True, slots=True)
class Upload:
    """An object being uploaded (pending), not visible until committed."""

    stream_id: bytes
    project_id: str
    bucket: str
    key: str
    redundancy: RedundancyScheme
    created_at: int
    deadline: int


@dataclass(frozen=True, slots=True)
class Quota:
    max_storage: int
    used_storage: int
    max_segments: int
    used_segments: int


@dataclass(frozen=True, slots=True)
class UploadState:
    """An upload as `begin segment` sees it."""

    upload: Upload
    quota: Quota
    segment_committed: bool  # the segment at the requested index is already committed


@dataclass(frozen=True, slots=True)
class NewSegment:
    index: int
    root_piece_id: bytes
    encrypted_size: int
    piece_size: int
    redundancy: RedundancyScheme


@dataclass(frozen=True, slots=True)
class SegmentState:
    """A pending segment as `commit segment` and replacements see it."""

    upload: Upload
    index: int
    root_piece_id: bytes
    piece_size: int
    redundancy: RedundancyScheme
    orders: list[IssuedOrder]  # the live ones: not voided by a replacement
    public_keys: dict[NodeId, bytes]  # of every node an order limit was issued to
    nets: dict[NodeId, str]  # network of each such node, for the one-piece-per-network rule
    tried: frozenset[bytes] = frozenset()  # every node ever ordered a piece of it, replaced too


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    index: int
    encrypted_size: int
    plain_size: int
    piece_size: int
    redundancy: RedundancyScheme
    encrypted_metadata: bytes | None


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    stream_id: bytes
    bucket: str
    key: str
    created_at: int  # commit time: when it became visible
    encrypted_size: int
    plain_size: int
    segment_count: int
    encrypted_metadata: bytes | None
    inline_data: bytes | None
    segments: list[SegmentInfo]


@dataclass(frozen=True, slots=True)
class ListedObject:
    key: str
    stream_id: bytes
    created_at: int
    encrypted_size: int
    plain_size: int
    encrypted_metadata: bytes | None


@dataclass(frozen=True, slots=True)
class PieceLocation:
    piece_number: int
    node_id: NodeId
    piece_id: bytes
    piece_hash: bytes  # from the farmer's receipt
    address: str
    online: bool  # pinged back recently and not disqualified


@dataclass(frozen=True, slots=True)
class SegmentPieces:
    stream_id: bytes
    index: int
    root_piece_id: bytes
    encrypted_size: int
    plain_size: int
    piece_size: int
    redundancy: RedundancyScheme
    pieces: list[PieceLocation]


@dataclass(frozen=True, slots=True)
class PendingUpload:
    """An upload not yet committed and the segments of it already committed (for resuming)."""

    upload: Upload
    segments: list[SegmentInfo]


@dataclass(frozen=True, slots=True)
class Relocation:
    """A move or copy of a visible object to another key, with its opaque metadata re-wrapped."""

    project_id: str
    bucket: str
    key: str
    stream_id: bytes | None  # the version the client read; None: whichever is visible
    new_bucket: str
    new_key: str
    new_stream_id: bytes | None  # the copy's stream id; None: move (the object keeps its own)
    encrypted_metadata: bytes | None
    segment_metadata: dict[int, bytes | None]  # every segment's new metadata, by index


class Outcome(enum.Enum):
    OK = "ok"
    NOT_FOUND = "not-found"  # upload, object or bucket gone
    SEGMENT_COMMITTED = "segment-committed"
    SEGMENTS_MISSING = "segments-missing"  # commit with pending or missing segments
    EXISTS = "exists"  # an object at the key, and replacing it was not allowed
    STORAGE_LIMIT = "storage-limit"
    SEGMENT_LIMIT = "segment-limit"
    CHANGED = "changed"  # the visible object is not the version the client read
    SEGMENTS_MISMATCH = "segments-mismatch"  # the new segment metadata misses or adds segments
    TARGET_NOT_FOUND = "target-not-found"  # no destination bucket
    PENDING_LIMIT = "pending-limit"  # the project has its most pending uploads
    ORDER_LIMIT = "order-limit"  # the project has its most order limits of uncommitted segments


@dataclass(frozen=True, slots=True)
class Caps:
    """Per-project ceilings on what is promised and not yet committed (`ObjectsConfig`)."""

    pending_uploads: int
    pending_orders: int


@dataclass(frozen=True, slots=True)
class InlineObject:
    stream_id: bytes
    project_id: str
    bucket: str
    key: str
    data: bytes
    plain_size: int
    encrypted_metadata: bytes | None


@dataclass(frozen=True, slots=True)
class ProjectUsage:
    """A project's usage against its limits, and what its pending uploads reserve."""

    max_buckets: int
    max_storage: int
    max_egress: int
    max_segments: int
    buckets: int
    storage_bytes: int
    egress_bytes: int  # in the period asked for
    segments: int
    objects: int
    pending_uploads: int
    pending_storage: int
    pending_segments: int


class MetainfoDB(Protocol):
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
        """Record a pending upload and the bucket's redundancy; `NOT_FOUND` if there is no
        bucket, `PENDING_LIMIT` if the project already has `max_pending` pending uploads."""
        ...

    def upload_state(self, project_id: str, stream_id: bytes, index: int) -> UploadState | None: ...

    def begin_segment(
        self,
        upload: Upload,
        segment: NewSegment,
        orders: Sequence[IssuedOrder],
        now: int,
        caps: Caps,
    ) -> Outcome:
        """Record a pending segment and its order limits, replacing a pending one at the index,
        and reserve them for the upload; refused (`STORAGE_LIMIT`, `SEGMENT_LIMIT`,
        `ORDER_LIMIT`) if the project's usage and every pending upload's reservation leave no
        room. The check and the reservation hold the project's row lock: two processes never
        both take the last bytes."""
        ...

    def segment_state(self, project_id: str, stream_id: bytes, index: int) -> SegmentState | None:
        """A pending segment of a pending upload with its order limits; None otherwise."""
        ...

    def replace_orders(
        self,
        stream_id: bytes,
        index: int,
        old: Sequence[IssuedOrder],
        new: Sequence[IssuedOrder],
        now: int,
        caps: Caps,
    ) -> Outcome:
        """Swap order limits of a pending segment: the old ones are marked replaced (their
        receipts no longer count, their nodes are not chosen for the segment again) and their
        pieces queued for deletion. `NOT_FOUND` if the segment is no longer pending,
        `ORDER_LIMIT` if the new ones would pass the project's cap on pending order limits."""
        ...

    def commit_segment(
        self,
        stream_id: bytes,
        index: int,
        pieces: Sequence[AcceptedPiece],
        plain_size: int,
        encrypted_metadata: bytes | None,
        now: int,
    ) -> bool:
        """Record the pieces and mark the segment committed; False if it is no longer pending."""
        ...

    def commit_object(
        self,
        project_id: str,
        stream_id: bytes,
        encrypted_metadata: bytes | None,
        allow_replace: bool,
        now: int,
        segments: Sequence[int] | None = None,
    ) -> tuple[Outcome, ObjectInfo | None]:
        """Make a pending upload the visible object at its key, replacing an older one.

        `segments`: the committed segments that make it (the others are dropped, their pieces
        queued for deletion); None: all of them, which must be 0, 1, 2, ... all committed."""
        ...

    def put_inline(self, obj: InlineObject, allow_replace: bool, now: int) -> Outcome:
        """Store a small object in the database and make it visible, in one transaction."""
        ...

    def abort_upload(self, project_id: str, stream_id: bytes, now: int) -> bool: ...

    def pending_upload(self, project_id: str, stream_id: bytes) -> PendingUpload | None:
        """A pending upload of the project with its committed segments; None if not pending."""
        ...

    def pending_uploads(self, project_id: str, bucket: str, key: str) -> list[Upload]:
        """The pending uploads to a key, oldest first."""
        ...

    def pending_uploads_under(
        self, project_id: str, bucket: str, prefix: str, limit: int
    ) -> list[Upload]:
        """The oldest `limit` pending uploads to keys starting with `prefix`, oldest first."""
        ...

    def project_usage(self, project_id: str, period: int) -> ProjectUsage | None:
        """The project's usage, egress in the month `period`; None if there is no project."""
        ...

    def relocate(
        self, relocation: Relocation, allow_replace: bool, now: int
    ) -> tuple[Outcome, ObjectInfo | None]:
        """Move or copy a visible object in one transaction; the object at its new key.

        A move renames the row (the object keeps its stream id and pieces); a copy adds an object
        whose segments share the original's piece sets. An object at the new key is replaced if
        `allow_replace`, else `EXISTS`.
        """
        ...

    def get_object(
        self, project_id: str, bucket: str, key: str, with_segments: bool
    ) -> ObjectInfo | None: ...

    def object_exists(self, project_id: str, bucket: str, key: str) -> bool: ...

    def bucket_exists(self, project_id: str, bucket: str) -> bool: ...

    def segment_pieces(
        self,
        project_id: str,
        bucket: str,
        key: str,
        index: int,
        stream_id: bytes | None,
        online_since: int,
    ) -> SegmentPieces | None: ...

    def add_egress(self, project_id: str, period: int, amount: int) -> bool:
        """Count `amount` bytes of egress unless that would pass the project's limit."""
        ...

    def list_objects(
        self,
        project_id: str,
        bucket: str,
        start: str,
        inclusive: bool,
        end: str | None,
        limit: int,
    ) -> list[ListedObject]:
        """Visible objects with start <(=) key < end, in key order."""
        ...

    def delete_object(self, project_id: str, bucket: str, key: str, now: int) -> bool: ...
