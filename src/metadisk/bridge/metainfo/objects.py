"""Committed objects: reading them, download order limits, listings, deletes, moves and copies.

Moves and copies (`relocate`) touch no piece: a move renames the object, a copy adds one whose
segments share the original's piece sets (reference counted, so deleting either keeps the other's
pieces). The client re-wraps the small keys in the opaque metadata for the new path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from metadisk.bridge import errors
from metadisk.bridge.auth.service import Access
from metadisk.bridge.buckets.service import check_bucket_name
from metadisk.bridge.common import month_period
from metadisk.bridge.config import ObjectsConfig
from metadisk.bridge.health.reports import BadPiece, Reported, TransferReports
from metadisk.bridge.metainfo.common import (
    AddressedOrder,
    SegmentOrders,
    allows,
    check_index,
    check_key,
    check_location,
    check_size,
    no_bucket,
    raise_for,
)
from metadisk.bridge.metainfo.db import (
    ListedObject,
    MetainfoDB,
    ObjectInfo,
    Outcome,
    ProjectUsage,
    Relocation,
)
from metadisk.bridge.orders.service import OrderSigner
from metadisk.bridge.overlay.service import OverlayService
from metadisk.core.macaroon import Op
from metadisk.core.messages import Action
from metadisk.wire.api.objects import MAX_OBJECT_METADATA, MAX_PAGE, MAX_SEGMENT_METADATA

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ListItem:
    key: str
    is_prefix: bool
    obj: ListedObject | None


@dataclass(frozen=True, slots=True)
class Listing:
    items: list[ListItem]
    next_cursor: str | None


class ObjectsService:
    def __init__(
        self,
        db: MetainfoDB,
        overlay: OverlayService,
        signer: OrderSigner,
        config: ObjectsConfig,
        randbytes: Callable[[int], bytes] = os.urandom,
        reports: TransferReports | None = None,
    ) -> None:
        self._reports = reports
        self._db = db
        self._overlay = overlay
        self._signer = signer
        self._config = config
        self._randbytes = randbytes

    def usage(self, access: Access, now: int) -> ProjectUsage:
        """The key's project: usage against limits (egress this month) and pending reservations.

        Any key that may list the whole project may read them; a key confined to some buckets
        may not, as project-wide totals tell about buckets it cannot see.
        """
        access.require(Op.LIST, None, None, now)
        if access.buckets() is not None:
            raise errors.AccessDenied(
                "this key is confined to some buckets; the project's usage needs a key for all"
            )
        found = self._db.project_usage(access.project_id, month_period(now))
        if found is None:  # deleted under a key still cached
            raise errors.NotFound("no such project", code="project-not-found")
        return found

    def get_object(self, access: Access, bucket: str, key: str, now: int) -> ObjectInfo:
        check_location(bucket, key)
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
        check_location(bucket, key)
        check_index(index)
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

    def report_segment(
        self,
        access: Access,
        bucket: str,
        key: str,
        stream_id: bytes,
        index: int,
        outcomes: Sequence[Reported],
        now: int,
    ) -> tuple[int, int]:
        """Take a download's report of its piece transfers of one segment (needs READ): the
        outcomes that name a piece of the segment and the node holding it count toward that
        node's performance, and pieces reported bad are queued for audit. (counted, queued)"""
        check_location(bucket, key)
        check_index(index)
        access.require(Op.READ, bucket, key, now)
        found = self._db.segment_pieces(
            access.project_id, bucket, key, index, stream_id, self._overlay.online_since(now)
        )
        if found is None:
            raise errors.NotFound("no such segment of this object", code="segment-not-found")
        holders = {p.piece_number: p.node_id.raw for p in found.pieces}
        valid = [o for o in outcomes if holders.get(o.piece_number) == o.node_id]
        if self._reports is None or not valid:
            return 0, 0
        counted = self._reports.record(valid, now)
        bad = [
            BadPiece(found.root_piece_id, o.piece_number, o.node_id)
            for o in valid
            if o.outcome == "bad-piece"
        ]
        return counted, self._reports.audit_soon(bad, now) if bad else 0

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
        check_key(prefix, allow_empty=True)
        check_key(cursor, allow_empty=True)
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
            raise no_bucket(bucket)
        return Listing(page, page[-1].key if more else None)

    def delete_object(self, access: Access, bucket: str, key: str, now: int) -> None:
        check_location(bucket, key)
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
        destination, and DELETE there to replace an object. A copy onto the object's own key
        replaces its metadata in place (S3's copy with a REPLACE metadata directive): same
        stream, commit time now; it needs DELETE like any replace.
        """
        check_location(bucket, key)
        check_location(new_bucket, new_key)
        if (bucket, key) == (new_bucket, new_key) and not copy:
            raise errors.InvalidRequest("the new key is the object's own", code="same-key")
        check_size("object metadata", encrypted_metadata, MAX_OBJECT_METADATA)
        metadata: dict[int, bytes | None] = {}
        for index, segment_metadata in segments:
            check_index(index)
            check_size("segment metadata", segment_metadata, MAX_SEGMENT_METADATA)
            if index in metadata:
                raise errors.InvalidRequest(f"segment {index} is given twice")
            metadata[index] = segment_metadata
        access.require(Op.READ, bucket, key, now)
        if not copy:
            access.require(Op.DELETE, bucket, key, now)
        access.require(Op.WRITE, new_bucket, new_key, now)
        allow_replace = allows(access, Op.DELETE, new_bucket, new_key, now)
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
            raise no_bucket(new_bucket)
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
        raise_for(outcome, new_bucket)
        assert info is not None
        return info

    def _missing_object(self, project_id: str, bucket: str) -> errors.BridgeError:
        if not self._db.bucket_exists(project_id, bucket):
            return no_bucket(bucket)
        return errors.NotFound("no object at this key", code="object-not-found")


def _shuffled(items: Sequence[T], randbytes: Callable[[int], bytes]) -> list[T]:
    # Sort by random keys rather than random.shuffle: the randomness source is injectable.
    keyed = [(randbytes(8), position) for position in range(len(items))]
    keyed.sort()
    return [items[position] for _, position in keyed]


def _prefix_end(prefix: str) -> str:
    """The smallest key above every key that starts with `prefix` (keys are printable ASCII)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
