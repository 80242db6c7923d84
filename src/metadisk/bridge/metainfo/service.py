"""Objects and segments: uploads, commits, downloads, listings and deletes.

Upload: `begin_object` -> for each segment `begin_segment` (n PUT order limits) -> pieces go to
farmers -> `commit_segment` (signed receipts, at least o valid) -> `commit_object` (visible at
once, replacing an older object at the key). Objects of at most 4 KiB of ciphertext skip all that:
`put_inline` stores them in the database in one call.

Node shortage: `begin_segment` hands out n order limits when n eligible nodes exist, and falls back
to fewer as long as there are at least o (the success threshold): on a small network with a node
down, uploads still succeed, only with less slack for long-tail cancellation. Below o it fails
with ``not-enough-nodes``.

Moves and copies (`relocate`) touch no piece: a move renames the object, a copy adds one whose
segments share the original's piece sets (reference counted, so deleting either keeps the other's
pieces). The client re-wraps the small keys in the opaque metadata for the new path.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from metadisk.bridge import errors
from metadisk.bridge.auth.service import Access
from metadisk.bridge.buckets.service import check_bucket_name
from metadisk.bridge.common import month_period
from metadisk.bridge.config import MAX_INLINE_SIZE, ObjectsConfig
from metadisk.bridge.metainfo.db import (
    InlineObject,
    ListedObject,
    MetainfoDB,
    NewSegment,
    ObjectInfo,
    Outcome,
    PendingUpload,
    Relocation,
    Upload,
)
from metadisk.bridge.orders.service import IssuedOrder, OrderSigner, Rejection, check_receipts
from metadisk.bridge.overlay.db import Candidate
from metadisk.bridge.overlay.service import OverlayService
from metadisk.core.erasure import RedundancyScheme
from metadisk.core.identity import NodeId
from metadisk.core.macaroon import Op
from metadisk.core.messages import PIECE_ID_SIZE, Action, OrderLimit, derive_piece_id
from metadisk.wire.api.objects import (
    MAX_KEY,
    MAX_OBJECT_METADATA,
    MAX_PAGE,
    MAX_SEGMENT_METADATA,
    MAX_SEGMENTS,
)

T = TypeVar("T")

# Encrypted paths: base64url components joined by "/" (printable ASCII is accepted, so that the
# client may choose its encoding; ordering is bytewise on every engine).
_KEY_CHARS = re.compile(r"^[\x21-\x7e]*$")


@dataclass(frozen=True, slots=True)
class AddressedOrder:
    """One signed order limit, where to use it, and what the client checks the farmer with."""

    piece_number: int
    address: str
    order_limit: OrderLimit
    public_key: bytes | None = None  # PUT: the farmer's key, to verify its receipt
    piece_hash: bytes | None = None  # GET: the stored piece's hash, to check what comes back


@dataclass(frozen=True, slots=True)
class BeganUpload:
    stream_id: bytes
    redundancy: RedundancyScheme
    deadline: int


@dataclass(frozen=True, slots=True)
class SegmentOrders:
    index: int
    piece_size: int
    redundancy: RedundancyScheme
    orders: list[AddressedOrder]


@dataclass(frozen=True, slots=True)
class SegmentCommit:
    index: int
    pieces: int
    rejected: list[Rejection]


@dataclass(frozen=True, slots=True)
class ListItem:
    key: str
    is_prefix: bool
    obj: ListedObject | None


@dataclass(frozen=True, slots=True)
class Listing:
    items: list[ListItem]
    next_cursor: str | None


class MetainfoService:
    def __init__(
        self,
        db: MetainfoDB,
        overlay: OverlayService,
        signer: OrderSigner,
        config: ObjectsConfig,
        randbytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._db = db
        self._overlay = overlay
        self._signer = signer
        self._config = config
        self._randbytes = randbytes

    # -- upload ------------------------------------------------------------------------------

    def begin_object(self, access: Access, bucket: str, key: str, now: int) -> BeganUpload:
        _check_location(bucket, key)
        access.require(Op.WRITE, bucket, key, now)
        stream_id = self._randbytes(16)
        deadline = now + self._config.upload_ttl
        redundancy = self._db.begin_object(access.project_id, stream_id, bucket, key, now, deadline)
        if redundancy is None:
            raise _no_bucket(bucket)
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
        _check_index(index)
        state = self._db.upload_state(access.project_id, stream_id, index)
        if state is None:
            raise _no_upload()
        upload, quota = state.upload, state.quota
        access.require(Op.WRITE, upload.bucket, upload.key, now)
        if state.segment_committed:
            raise errors.Conflict(f"segment {index} is already committed", code="segment-committed")
        rs = upload.redundancy
        if not 1 <= encrypted_size <= self._config.max_segment_size:
            raise errors.InvalidRequest(
                f"encrypted_size must be 1 to {self._config.max_segment_size} bytes"
            )
        smallest = math.ceil(encrypted_size / rs.k)
        if not smallest <= piece_size <= 2 * smallest + 4096:
            raise errors.InvalidRequest(
                f"piece_size {piece_size} does not fit a {encrypted_size}-byte segment at k={rs.k}"
            )
        if quota.used_storage + encrypted_size > quota.max_storage:
            raise errors.LimitExceeded("the project's storage limit would be exceeded")
        if quota.used_segments + 1 > quota.max_segments:
            raise errors.LimitExceeded("the project's segment limit would be exceeded")
        nodes = self._overlay.select(rs.n, rs.o, piece_size, now)
        root = self._randbytes(PIECE_ID_SIZE)
        issued, addressed = self._put_orders(root, list(enumerate(nodes)), piece_size, now)
        outcome = self._db.begin_segment(
            upload, NewSegment(index, root, encrypted_size, piece_size, rs), issued, now
        )
        if outcome is Outcome.NOT_FOUND:
            raise _no_upload()
        if outcome is Outcome.SEGMENT_COMMITTED:
            raise errors.Conflict(f"segment {index} is already committed", code="segment-committed")
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
        """New order limits, on nodes not yet used by the segment, for pieces that failed."""
        _check_index(index)
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
        used = {order.node_id.raw for order in state.orders}
        kept_nets = {
            state.nets.get(order.node_id, "")
            for order in state.orders
            if order.piece_number not in failed
        }
        nodes = self._overlay.select(
            len(failed), len(failed), state.piece_size, now, exclude=used, exclude_nets=kept_nets
        )
        issued, addressed = self._put_orders(
            state.root_piece_id,
            list(zip(sorted(failed), nodes, strict=True)),
            state.piece_size,
            now,
        )
        if not self._db.replace_orders(stream_id, index, list(failed.values()), issued, now):
            raise errors.NotFound("the segment is no longer pending", code="segment-not-found")
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
    ) -> SegmentCommit:
        """Record the pieces whose receipts verify; `not-enough-pieces` if fewer than o."""
        _check_index(index)
        _check_size("segment metadata", encrypted_metadata, MAX_SEGMENT_METADATA)
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
        return SegmentCommit(index, len(accepted), rejected)

    def commit_object(
        self, access: Access, stream_id: bytes, encrypted_metadata: bytes | None, now: int
    ) -> ObjectInfo:
        _check_size("object metadata", encrypted_metadata, MAX_OBJECT_METADATA)
        state = self._db.upload_state(access.project_id, stream_id, 0)
        if state is None:
            raise _no_upload()
        upload = state.upload
        access.require(Op.WRITE, upload.bucket, upload.key, now)
        allow_replace = _allows(access, Op.DELETE, upload.bucket, upload.key, now)
        outcome, info = self._db.commit_object(
            access.project_id, stream_id, encrypted_metadata, allow_replace, now
        )
        self._raise_for(outcome, upload.bucket)
        assert info is not None
        return info

    def get_upload(self, access: Access, stream_id: bytes, now: int) -> PendingUpload:
        """A pending upload and its committed segments, for resuming it; needs WRITE on its key."""
        found = self._db.pending_upload(access.project_id, stream_id)
        if found is None:
            raise _no_upload()
        access.require(Op.WRITE, found.upload.bucket, found.upload.key, now)
        return found

    def list_uploads(self, access: Access, bucket: str, key: str, now: int) -> list[Upload]:
        """The pending uploads to a key, oldest first (to resume one without local state)."""
        _check_location(bucket, key)
        access.require(Op.WRITE, bucket, key, now)
        uploads = self._db.pending_uploads(access.project_id, bucket, key)
        if not uploads and not self._db.bucket_exists(access.project_id, bucket):
            raise _no_bucket(bucket)
        return uploads

    def abort_upload(self, access: Access, stream_id: bytes, now: int) -> None:
        state = self._db.upload_state(access.project_id, stream_id, 0)
        if state is None:
            raise _no_upload()
        access.require(Op.WRITE, state.upload.bucket, state.upload.key, now)
        if not self._db.abort_upload(access.project_id, stream_id, now):
            raise _no_upload()

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
        _check_location(bucket, key)
        if len(data) > MAX_INLINE_SIZE:
            raise errors.InvalidRequest(
                f"inline data is at most {MAX_INLINE_SIZE} bytes; upload larger ones in segments",
                code="inline-too-large",
            )
        if plain_size < 0:
            raise errors.InvalidRequest("plain_size must not be negative")
        _check_size("object metadata", encrypted_metadata, MAX_OBJECT_METADATA)
        access.require(Op.WRITE, bucket, key, now)
        allow_replace = _allows(access, Op.DELETE, bucket, key, now)
        stream_id = self._randbytes(16)
        obj = InlineObject(
            stream_id, access.project_id, bucket, key, data, plain_size, encrypted_metadata
        )
        self._raise_for(self._db.put_inline(obj, allow_replace, now), bucket)
        return stream_id

    def _raise_for(self, outcome: Outcome, bucket: str) -> None:
        if outcome is Outcome.OK:
            return
        if outcome is Outcome.NOT_FOUND:
            raise errors.NotFound(
                "no such upload or bucket (committed, aborted, reclaimed or deleted)",
                code="upload-not-found",
            )
        if outcome is Outcome.SEGMENTS_MISSING:
            raise errors.InvalidRequest(
                "every segment from 0 up must be committed before the object",
                code="segments-missing",
            )
        if outcome is Outcome.EXISTS:
            raise errors.AccessDenied(
                "an object exists at this key and the API key does not allow deleting it"
            )
        if outcome is Outcome.STORAGE_LIMIT:
            raise errors.LimitExceeded("the project's storage limit would be exceeded")
        if outcome is Outcome.SEGMENT_LIMIT:
            raise errors.LimitExceeded("the project's segment limit would be exceeded")
        raise AssertionError(outcome)

    # -- download ----------------------------------------------------------------------------

    def get_object(self, access: Access, bucket: str, key: str, now: int) -> ObjectInfo:
        _check_location(bucket, key)
        access.require(Op.READ, bucket, key, now)
        info = self._db.get_object(access.project_id, bucket, key, True)
        if info is None:
            raise self._missing_object(access.project_id, bucket)
        return info

    def download_segment(
        self,
        access: Access,
        bucket: str,
        key: str,
        index: int,
        stream_id: bytes | None,
        now: int,
        exclude: frozenset[int] = frozenset(),
    ) -> SegmentOrders:
        """GET order limits for k plus a few spare online nodes holding the segment's pieces.

        `exclude` names pieces the client already has or found bad: limits go to other online
        pieces only, possibly none (the client asks again after a piece fails, until it has k).
        """
        _check_location(bucket, key)
        _check_index(index)
        access.require(Op.READ, bucket, key, now)
        found = self._db.segment_pieces(
            access.project_id, bucket, key, index, stream_id, self._overlay.online_since(now)
        )
        if found is None:
            if self._db.object_exists(access.project_id, bucket, key) and stream_id is None:
                raise errors.NotFound(
                    f"the object has no segment {index}", code="segment-not-found"
                )
            raise self._missing_object(access.project_id, bucket)
        rs = found.redundancy
        online = [p for p in found.pieces if p.online]
        if len(online) < rs.k:
            raise errors.Unavailable(
                f"{len(online)} pieces on online nodes, {rs.k} needed", code="segment-unavailable"
            )
        online = [p for p in online if p.piece_number not in exclude]
        # Data pieces first: the code is systematic, so with all k of them the client decodes
        # nothing and range reads fetch straight from them. Spares are random recovery pieces.
        data = [p for p in online if p.piece_number < rs.k]
        recovery = _shuffled([p for p in online if p.piece_number >= rs.k], self._randbytes)
        chosen = (data + recovery)[: rs.k + self._config.download_spares]
        chosen.sort(key=lambda p: p.piece_number)
        # A first request is charged the segment; a request for more pieces, what it hands out.
        egress = found.encrypted_size if not exclude else found.piece_size * len(chosen)
        if (egress or not exclude) and not self._db.add_egress(
            access.project_id, month_period(now), egress
        ):
            raise errors.LimitExceeded("the project's monthly egress limit is reached")
        orders = [
            AddressedOrder(
                p.piece_number,
                p.address,
                self._signer.sign(p.node_id, p.piece_id, Action.GET, found.piece_size, now),
                piece_hash=p.piece_hash,
            )
            for p in chosen
        ]
        return SegmentOrders(index, found.piece_size, rs, orders)

    # -- listing and deletes -------------------------------------------------------------------

    def list_objects(
        self,
        access: Access,
        bucket: str,
        prefix: str,
        recursive: bool,
        cursor: str,
        limit: int,
        now: int,
    ) -> Listing:
        """Objects under `prefix` in key order, collapsing deeper levels unless `recursive`.

        Keyset pagination: `cursor` is the last key (or prefix) of the previous page, so pages
        stay consistent while others write: nothing is skipped or repeated that existed throughout.
        """
        check_bucket_name(bucket)
        if prefix and not prefix.endswith("/"):
            raise errors.InvalidRequest("a listing prefix is empty or ends with '/'")
        _check_key(prefix, allow_empty=True)
        _check_key(cursor, allow_empty=True)
        if not 1 <= limit <= MAX_PAGE:
            raise errors.InvalidRequest(f"limit must be 1 to {MAX_PAGE}")
        access.require(Op.LIST, bucket, prefix, now)
        if cursor and not cursor.startswith(prefix):
            raise errors.InvalidRequest("the cursor is not within the prefix")
        end = _prefix_end(prefix) if prefix else None
        if not cursor:
            start, inclusive = prefix, True
        elif not recursive and cursor.endswith("/") and len(cursor) > len(prefix):
            start, inclusive = _prefix_end(cursor), True
        else:
            start, inclusive = cursor, False
        items: list[ListItem] = []
        want = limit + 1
        while len(items) < want:
            batch_size = want - len(items)
            batch = self._db.list_objects(
                access.project_id, bucket, start, inclusive, end, batch_size
            )
            current: str | None = None
            requery = False
            for position, row in enumerate(batch):
                if current is not None and row.key.startswith(current):
                    continue
                rest = row.key[len(prefix) :]
                cut = -1 if recursive else rest.find("/")
                if cut >= 0:
                    current = prefix + rest[: cut + 1]
                    items.append(ListItem(current, True, None))
                    start, inclusive = _prefix_end(current), True
                    following = batch[position + 1] if position + 1 < len(batch) else None
                    if following is not None and following.key.startswith(current):
                        requery = True  # many keys below: skip them through the index
                        break
                else:
                    current = None
                    items.append(ListItem(row.key, False, row))
                    start, inclusive = row.key, False
                if len(items) >= want:
                    break
            if not requery and len(batch) < batch_size:
                break
        more = len(items) > limit
        page = items[:limit]
        if not page and not self._db.bucket_exists(access.project_id, bucket):
            raise _no_bucket(bucket)
        return Listing(page, page[-1].key if more else None)

    def delete_object(self, access: Access, bucket: str, key: str, now: int) -> None:
        _check_location(bucket, key)
        access.require(Op.DELETE, bucket, key, now)
        if not self._db.delete_object(access.project_id, bucket, key, now):
            raise self._missing_object(access.project_id, bucket)

    def relocate(
        self,
        access: Access,
        bucket: str,
        key: str,
        stream_id: bytes | None,
        new_bucket: str,
        new_key: str,
        encrypted_metadata: bytes | None,
        segments: Sequence[tuple[int, bytes | None]],
        now: int,
        *,
        copy: bool,
    ) -> ObjectInfo:
        """Move (or copy) the object at `key` to `new_key`, in one transaction, moving no data.

        `segments` gives every segment's new opaque metadata (its content key re-wrapped for the
        new path), each exactly once; `stream_id`, if given, pins the version the client read, so
        that keys re-wrapped for one version are never stored on another (409 `object-changed`).
        A move needs READ and DELETE on the source, a copy READ; both need WRITE on the
        destination, and DELETE there to replace an object.
        """
        _check_location(bucket, key)
        _check_location(new_bucket, new_key)
        if (bucket, key) == (new_bucket, new_key):
            raise errors.InvalidRequest("the new key is the object's own", code="same-key")
        _check_size("object metadata", encrypted_metadata, MAX_OBJECT_METADATA)
        metadata: dict[int, bytes | None] = {}
        for index, segment_metadata in segments:
            _check_index(index)
            _check_size("segment metadata", segment_metadata, MAX_SEGMENT_METADATA)
            if index in metadata:
                raise errors.InvalidRequest(f"segment {index} is given twice")
            metadata[index] = segment_metadata
        access.require(Op.READ, bucket, key, now)
        if not copy:
            access.require(Op.DELETE, bucket, key, now)
        access.require(Op.WRITE, new_bucket, new_key, now)
        allow_replace = _allows(access, Op.DELETE, new_bucket, new_key, now)
        relocation = Relocation(
            project_id=access.project_id,
            bucket=bucket,
            key=key,
            stream_id=stream_id,
            new_bucket=new_bucket,
            new_key=new_key,
            new_stream_id=self._randbytes(16) if copy else None,
            encrypted_metadata=encrypted_metadata,
            segment_metadata=metadata,
        )
        outcome, info = self._db.relocate(relocation, allow_replace, now)
        if outcome is Outcome.NOT_FOUND:
            raise self._missing_object(access.project_id, bucket)
        if outcome is Outcome.TARGET_NOT_FOUND:
            raise _no_bucket(new_bucket)
        if outcome is Outcome.CHANGED:
            raise errors.Conflict(
                "the object at this key is not the version given by stream_id",
                code="object-changed",
            )
        if outcome is Outcome.SEGMENTS_MISMATCH:
            raise errors.InvalidRequest(
                "give new metadata for every segment of the object, each exactly once",
                code="segments-mismatch",
            )
        self._raise_for(outcome, new_bucket)
        assert info is not None
        return info

    def reclaim(self, now: int, limit: int = 100) -> int:
        """Drop uploads past their deadline (used by the reclaim chore)."""
        return self._db.reclaim(now, limit)

    def _missing_object(self, project_id: str, bucket: str) -> errors.BridgeError:
        if not self._db.bucket_exists(project_id, bucket):
            return _no_bucket(bucket)
        return errors.NotFound("no object at this key", code="object-not-found")


def _allows(access: Access, op: Op, bucket: str, key: str, now: int) -> bool:
    try:
        access.require(op, bucket, key, now)
    except errors.AccessDenied:
        return False
    return True


def _shuffled(items: Sequence[T], randbytes: Callable[[int], bytes]) -> list[T]:
    # Sort by random keys rather than random.shuffle: the randomness source is injectable.
    keyed = [(randbytes(8), position) for position in range(len(items))]
    keyed.sort()
    return [items[position] for _, position in keyed]


def _prefix_end(prefix: str) -> str:
    """The smallest key above every key that starts with `prefix` (keys are printable ASCII)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _check_location(bucket: str, key: str) -> None:
    check_bucket_name(bucket)
    _check_key(key, allow_empty=False)


def _check_key(key: str, *, allow_empty: bool) -> None:
    if (not key and not allow_empty) or len(key) > MAX_KEY or not _KEY_CHARS.match(key):
        raise errors.InvalidRequest(
            f"an object key is an encrypted path: 1 to {MAX_KEY} printable ASCII characters",
            code="invalid-key",
        )


def _check_index(index: int) -> None:
    if not 0 <= index < MAX_SEGMENTS:
        raise errors.InvalidRequest(f"segment index must be 0 to {MAX_SEGMENTS - 1}")


def _check_size(what: str, value: bytes | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise errors.InvalidRequest(f"{what} is at most {limit} bytes")


def _no_bucket(bucket: str) -> errors.NotFound:
    return errors.NotFound(f"no bucket {bucket!r}", code="bucket-not-found")


def _no_upload() -> errors.NotFound:
    return errors.NotFound(
        "no such upload (committed, aborted, reclaimed or never begun)", code="upload-not-found"
    )
