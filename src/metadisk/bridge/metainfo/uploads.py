"""Uploads: begin, segments with their order limits, commits, resumes, aborts, inline objects.

`begin_object` -> for each segment `begin_segment` (n PUT order limits) -> pieces go to farmers
-> `commit_segment` (signed receipts, at least o valid) -> `commit_object` (visible at once,
replacing an older object at the key). Objects of at most 4 KiB of plaintext skip all that:
`put_inline` stores them in the database in one call.

Node shortage: `begin_segment` hands out n order limits when n eligible nodes exist, and falls back
to fewer as long as there are at least o (the success threshold): on a small network with a node
down, uploads still succeed, only with less slack for long-tail cancellation. Below o it fails
with ``not-enough-nodes``.

Quotas count what is promised, not only what is committed: each begun segment reserves its
encrypted size, a segment slot and its order limits for its upload, against the project's storage
and segment limits and the bridge's caps on pending uploads and order limits (`ObjectsConfig`).
Commit turns the reservation into usage; abort and reclaim drop it. Piece sizes are exact (the
codec's), so the bytes farmers are asked to take follow from the encrypted bytes reserved: at
most n/k of them plus 64 bytes of padding a piece.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from metadisk.bridge import errors
from metadisk.bridge.auth.service import Access
from metadisk.bridge.buckets.service import check_bucket_name
from metadisk.bridge.config import MAX_INLINE_SIZE, ObjectsConfig
from metadisk.bridge.health.reports import Reported, TransferReports
from metadisk.bridge.metainfo.common import (
    AddressedOrder,
    SegmentOrders,
    allows,
    check_index,
    check_key,
    check_location,
    check_segment_list,
    check_size,
    no_bucket,
    no_upload,
    raise_for,
    segments_missing,
)
from metadisk.bridge.metainfo.db import (
    Caps,
    InlineObject,
    MetainfoDB,
    NewSegment,
    ObjectInfo,
    Outcome,
    PendingUpload,
    Upload,
)
from metadisk.bridge.metrics import BridgeMetrics
from metadisk.bridge.orders.service import IssuedOrder, OrderSigner, Rejection, check_receipts
from metadisk.bridge.overlay.db import Candidate
from metadisk.bridge.overlay.service import OverlayService
from metadisk.core.erasure import RedundancyScheme
from metadisk.core.identity import NodeId
from metadisk.core.macaroon import Op
from metadisk.core.messages import PIECE_ID_SIZE, Action, derive_piece_id
from metadisk.wire.api.objects import MAX_OBJECT_METADATA, MAX_SEGMENT_METADATA


@dataclass(frozen=True, slots=True)
class BeganUpload:
    stream_id: bytes
    redundancy: RedundancyScheme
    deadline: int


@dataclass(frozen=True, slots=True)
class SegmentCommit:
    index: int
    pieces: int
    rejected: list[Rejection]


# A project has at most `[objects] max_pending_uploads` (default 1,000) pending uploads.
MAX_PENDING_UNDER = 1000


class UploadsService:
    def __init__(
        self,
        db: MetainfoDB,
        overlay: OverlayService,
        signer: OrderSigner,
        config: ObjectsConfig,
        randbytes: Callable[[int], bytes] = os.urandom,
        metrics: BridgeMetrics | None = None,
        reports: TransferReports | None = None,
    ) -> None:
        self._reports = reports
        self._db = db
        self._overlay = overlay
        self._signer = signer
        self._config = config
        self._randbytes = randbytes
        self._metrics = metrics or BridgeMetrics()
        self._caps = Caps(config.max_pending_uploads, config.max_pending_orders)

    def begin_object(self, access: Access, bucket: str, key: str, now: int) -> BeganUpload:
        check_location(bucket, key)
        access.require(Op.WRITE, bucket, key, now)
        stream_id = self._randbytes(16)
        deadline = now + self._config.upload_ttl
        outcome, redundancy = self._db.begin_object(
            access.project_id,
            stream_id,
            bucket,
            key,
            now,
            deadline,
            self._config.max_pending_uploads,
        )
        if outcome is Outcome.NOT_FOUND:
            raise no_bucket(bucket)
        raise_for(outcome, bucket)
        assert redundancy is not None
        return BeganUpload(stream_id, redundancy, deadline)

    def begin_segment(
        self,
        access: Access,
        stream_id: bytes,
        index: int,
        encrypted_size: int,
        piece_size: int,
        now: int,
    ) -> SegmentOrders:
        """Pick nodes and sign one PUT order limit per piece of segment `index`."""
        check_index(index)
        state = self._db.upload_state(access.project_id, stream_id, index)
        if state is None:
            raise no_upload()
        upload, quota = state.upload, state.quota
        access.require(Op.WRITE, upload.bucket, upload.key, now)
        if state.segment_committed:
            raise errors.Conflict(f"segment {index} is already committed", code="segment-committed")
        rs = upload.redundancy
        if not 1 <= encrypted_size <= self._config.max_segment_size:
            raise errors.InvalidRequest(
                f"encrypted_size must be 1 to {self._config.max_segment_size} bytes"
            )
        # Exactly what the client's codec cuts: any slack would be bytes on farmers that no
        # quota counts (order limits allow piece_size bytes to each of n farmers).
        exact = rs.codec().piece_size(encrypted_size)
        if piece_size != exact:
            raise errors.InvalidRequest(
                f"piece_size {piece_size} is not that of a {encrypted_size}-byte segment at "
                f"k={rs.k} ({exact})"
            )
        if quota.used_storage + encrypted_size > quota.max_storage:
            raise errors.LimitExceeded("the project's storage limit would be exceeded")
        if quota.used_segments + 1 > quota.max_segments:
            raise errors.LimitExceeded("the project's segment limit would be exceeded")
        nodes = self._overlay.select(rs.n, rs.o, piece_size, now)
        root = self._randbytes(PIECE_ID_SIZE)
        issued, addressed = self._put_orders(root, list(enumerate(nodes)), piece_size, now)
        outcome = self._db.begin_segment(
            upload, NewSegment(index, root, encrypted_size, piece_size, rs), issued, now, self._caps
        )
        if outcome is Outcome.NOT_FOUND:
            raise no_upload()
        if outcome is Outcome.SEGMENT_COMMITTED:
            raise errors.Conflict(f"segment {index} is already committed", code="segment-committed")
        raise_for(outcome, upload.bucket)
        return SegmentOrders(index, piece_size, rs, addressed)

    def replace_pieces(
        self,
        access: Access,
        stream_id: bytes,
        index: int,
        piece_numbers: Sequence[int],
        failed_nodes: Sequence[NodeId],
        now: int,
    ) -> SegmentOrders:
        """New order limits, on nodes not yet used by the segment, for pieces that failed: as
        many as there are eligible nodes for (lowest piece numbers first), at least one."""
        check_index(index)
        state = self._db.segment_state(access.project_id, stream_id, index)
        if state is None:
            raise errors.NotFound(
                "no pending segment at this index of this upload", code="segment-not-found"
            )
        access.require(Op.WRITE, state.upload.bucket, state.upload.key, now)
        by_number = {order.piece_number: order for order in state.orders}
        by_node = {order.node_id: order for order in state.orders}
        failed: dict[int, IssuedOrder] = {}
        for number in piece_numbers:
            if number not in by_number:
                raise errors.InvalidRequest(f"piece {number} has no order limit in this segment")
            failed[number] = by_number[number]
        for node in failed_nodes:
            if node not in by_node:
                raise errors.InvalidRequest(f"node {node} has no order limit in this segment")
            failed[by_node[node].piece_number] = by_node[node]
        if not failed:
            raise errors.InvalidRequest("name at least one failed piece number or node id")
        # Every node ordered a piece of this segment, the replaced ones too: a farmer that failed
        # it once is not handed it again.
        used = {order.node_id.raw for order in state.orders} | state.tried
        kept_nets = {
            state.nets.get(order.node_id, "")
            for order in state.orders
            if order.piece_number not in failed
        }
        # As many as there are nodes for, at least one: a client short of one piece should get
        # it even when it asked for three and only one more node is eligible.
        nodes = self._overlay.select(
            len(failed), 1, state.piece_size, now, exclude=used, exclude_nets=kept_nets
        )
        numbers = sorted(failed)[: len(nodes)]
        issued, addressed = self._put_orders(
            state.root_piece_id, list(zip(numbers, nodes, strict=True)), state.piece_size, now
        )
        replaced = [failed[number] for number in numbers]
        outcome = self._db.replace_orders(stream_id, index, replaced, issued, now, self._caps)
        if outcome is Outcome.NOT_FOUND:
            raise errors.NotFound("the segment is no longer pending", code="segment-not-found")
        raise_for(outcome, state.upload.bucket)
        return SegmentOrders(index, state.piece_size, state.redundancy, addressed)

    def _put_orders(
        self,
        root: bytes,
        targets: Sequence[tuple[int, Candidate]],
        piece_size: int,
        now: int,
    ) -> tuple[list[IssuedOrder], list[AddressedOrder]]:
        issued, addressed = [], []
        for number, target in targets:
            node = NodeId(target.node_id)
            piece_id = derive_piece_id(root, node, number)
            limit = self._signer.sign(node, piece_id, Action.PUT, piece_size, now)
            issued.append(
                IssuedOrder(limit.serial, number, node, piece_id, piece_size, limit.expires_at)
            )
            addressed.append(
                AddressedOrder(number, target.address, limit, public_key=target.public_key)
            )
        return issued, addressed

    def commit_segment(
        self,
        access: Access,
        stream_id: bytes,
        index: int,
        receipts: Sequence[str],
        plain_size: int,
        encrypted_metadata: bytes | None,
        now: int,
        outcomes: Sequence[Reported] = (),
    ) -> SegmentCommit:
        """Record the pieces whose receipts verify; `not-enough-pieces` if fewer than o.

        `outcomes` (how each piece transfer went) feed the farmers' performance scores.
        """
        check_index(index)
        check_size("segment metadata", encrypted_metadata, MAX_SEGMENT_METADATA)
        if plain_size < 0:
            raise errors.InvalidRequest("plain_size must not be negative")
        state = self._db.segment_state(access.project_id, stream_id, index)
        if state is None:
            raise errors.NotFound(
                "no pending segment at this index of this upload", code="segment-not-found"
            )
        access.require(Op.WRITE, state.upload.bucket, state.upload.key, now)
        accepted, rejected = check_receipts(receipts, state.orders, state.public_keys)
        needed = state.redundancy.o
        if len(accepted) < needed:
            detail = "; ".join(f"receipt {r.position}: {r.code}" for r in rejected)
            raise errors.NotEnoughPieces(
                f"{len(accepted)} valid receipts, need {needed}"
                + (f" ({detail})" if detail else "")
            )
        if not self._db.commit_segment(
            stream_id, index, accepted, plain_size, encrypted_metadata, now
        ):
            raise errors.NotFound("the segment is no longer pending", code="segment-not-found")
        self._metrics.segments_committed.inc()
        self._metrics.pieces_committed.inc(len(accepted))
        if self._reports is not None and outcomes:
            self._reports.record(outcomes, now)
        return SegmentCommit(index, len(accepted), rejected)

    def commit_object(
        self,
        access: Access,
        stream_id: bytes,
        encrypted_metadata: bytes | None,
        now: int,
        *,
        segments: Sequence[int] | None = None,
    ) -> ObjectInfo:
        """Make the upload the visible object at its key.

        `segments` (strictly increasing, possibly sparse) names the committed segments that make
        the object; the upload's others, committed or pending, are dropped in the same
        transaction (pieces queued for deletion as an abort does). None: every segment, which
        must be 0, 1, 2, ... all committed. `segments-missing` names the first one missing.
        """
        check_size("object metadata", encrypted_metadata, MAX_OBJECT_METADATA)
        if segments is not None:
            check_segment_list(segments)
        state = self._db.upload_state(access.project_id, stream_id, 0)
        if state is None:
            raise no_upload()
        upload = state.upload
        access.require(Op.WRITE, upload.bucket, upload.key, now)
        allow_replace = allows(access, Op.DELETE, upload.bucket, upload.key, now)
        outcome, info = self._db.commit_object(
            access.project_id, stream_id, encrypted_metadata, allow_replace, now, segments
        )
        if outcome is Outcome.SEGMENTS_MISSING:
            raise segments_missing(self._first_missing(access.project_id, stream_id, segments))
        raise_for(outcome, upload.bucket)
        assert info is not None
        self._metrics.objects_committed.labels("segmented").inc()
        self._metrics.committed_bytes.inc(info.encrypted_size)
        return info

    def _first_missing(
        self, project_id: str, stream_id: bytes, segments: Sequence[int] | None
    ) -> int | None:
        """The first segment a refused commit lacked (read after it, for the message only)."""
        found = self._db.pending_upload(project_id, stream_id)
        if found is None:
            return None
        committed = {s.index for s in found.segments}
        if segments is not None:
            return next((i for i in segments if i not in committed), None)
        return next((i for i in range(len(committed) + 1) if i not in committed), None)

    def get_upload(self, access: Access, stream_id: bytes, now: int) -> PendingUpload:
        """A pending upload and its committed segments, for resuming it; needs WRITE on its key."""
        found = self._db.pending_upload(access.project_id, stream_id)
        if found is None:
            raise no_upload()
        access.require(Op.WRITE, found.upload.bucket, found.upload.key, now)
        return found

    def list_uploads(self, access: Access, bucket: str, key: str, now: int) -> list[Upload]:
        """The pending uploads to a key, oldest first (to resume one without local state)."""
        check_location(bucket, key)
        access.require(Op.WRITE, bucket, key, now)
        uploads = self._db.pending_uploads(access.project_id, bucket, key)
        if not uploads and not self._db.bucket_exists(access.project_id, bucket):
            raise no_bucket(bucket)
        return uploads

    def list_uploads_under(
        self, access: Access, bucket: str, prefix: str, now: int
    ) -> list[Upload]:
        """The oldest `MAX_PENDING_UNDER` pending uploads below a folder ("" or ending in "/"),
        oldest first: to see what an interrupted upload left behind (needs LIST on it)."""
        check_bucket_name(bucket)
        if prefix and not prefix.endswith("/"):
            raise errors.InvalidRequest("an uploads prefix is empty or ends with '/'")
        check_key(prefix, allow_empty=True)
        access.require(Op.LIST, bucket, prefix, now)
        uploads = self._db.pending_uploads_under(
            access.project_id, bucket, prefix, MAX_PENDING_UNDER
        )
        if not uploads and not self._db.bucket_exists(access.project_id, bucket):
            raise no_bucket(bucket)
        return uploads

    def abort_upload(self, access: Access, stream_id: bytes, now: int) -> None:
        state = self._db.upload_state(access.project_id, stream_id, 0)
        if state is None:
            raise no_upload()
        access.require(Op.WRITE, state.upload.bucket, state.upload.key, now)
        if not self._db.abort_upload(access.project_id, stream_id, now):
            raise no_upload()

    def put_inline(
        self,
        access: Access,
        bucket: str,
        key: str,
        data: bytes,
        plain_size: int,
        encrypted_metadata: bytes | None,
        now: int,
    ) -> bytes:
        """Store and commit a small object in one call; returns its stream id."""
        check_location(bucket, key)
        if len(data) > MAX_INLINE_SIZE:
            raise errors.InvalidRequest(
                f"inline data is at most {MAX_INLINE_SIZE} bytes; upload larger ones in segments",
                code="inline-too-large",
            )
        if plain_size < 0:
            raise errors.InvalidRequest("plain_size must not be negative")
        check_size("object metadata", encrypted_metadata, MAX_OBJECT_METADATA)
        access.require(Op.WRITE, bucket, key, now)
        allow_replace = allows(access, Op.DELETE, bucket, key, now)
        stream_id = self._randbytes(16)
        obj = InlineObject(
            stream_id, access.project_id, bucket, key, data, plain_size, encrypted_metadata
        )
        outcome = self._db.put_inline(obj, allow_replace, now)
        if outcome is Outcome.NOT_FOUND:  # the one thing an inline put can miss
            raise no_bucket(bucket)
        raise_for(outcome, bucket)
        self._metrics.objects_committed.labels("inline").inc()
        self._metrics.committed_bytes.inc(len(data))
        return stream_id
