"""An in-memory stand-in for `BridgeAPI`, for unit tests of the client's side of resume, move
and copy (interrupting uploads at exact points, counting calls) without any process.

`AsyncProject` runs against this double with `MemoryFarmers` as the farmers; the integration
tests in `test_project.py` run the same features against a real bridge and real farmers.

It follows the routes' documented shapes and checks what the client must get right (receipts
signed by the farmer the order named, segments committed before the object, keys it knows).
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace

from metadisk.client.errors import BridgeError, Conflict, NotFound
from metadisk.core.erasure import LOCAL, RedundancyScheme
from metadisk.core.identity import Identity, NodeId
from metadisk.core.messages import Action, OrderLimit, PieceReceipt, derive_piece_id
from metadisk.wire.api.buckets import Bucket, BucketPage
from metadisk.wire.api.objects import (
    AddressedLimit,
    BeganUpload,
    Listing,
    ListItem,
    Object,
    PendingUpload,
    PieceOutcome,
    ReportAccepted,
    Segment,
    SegmentCommit,
    SegmentOrders,
    SegmentRekey,
    SegmentReport,
)
from tests.client.doubles import Farmer


@dataclass
class _Segment:
    record: Segment
    root: bytes
    placements: dict[int, Farmer] = field(default_factory=dict)
    receipts: dict[int, PieceReceipt] = field(default_factory=dict)
    committed: bool = False


@dataclass
class _Upload:
    stream_id: str
    bucket: str
    key: str
    scheme: RedundancyScheme
    segments: dict[int, _Segment] = field(default_factory=dict)


class FakeBridgeAPI:
    """`BridgeAPI`'s methods over dicts, order limits signed by a real bridge identity."""

    url = "http://fake-bridge.invalid"

    def __init__(self, farmers: list[Farmer], identity: Identity) -> None:
        self.farmers = farmers
        self.identity = identity
        self.buckets: dict[str, Bucket] = {}
        self.uploads: dict[str, _Upload] = {}
        self.objects: dict[tuple[str, str], tuple[Object, dict[int, _Segment]]] = {}
        self.calls: list[str] = []
        self.outcomes: list[PieceOutcome] = []  # committed with segments
        self.reports: list[SegmentReport] = []
        self.inline_limit = 4096 + 16  # ciphertext bytes put_inline accepts

    async def aclose(self) -> None:
        pass

    def _limit(self, farmer: Farmer, piece_id: bytes, action: Action, size: int) -> OrderLimit:
        now = int(time.time())
        return OrderLimit(
            os.urandom(16),
            self.identity.node_id,
            farmer.node_id,
            piece_id,
            action,
            size,
            now,
            now + 3600,
        ).signed_by(self.identity)

    # -- buckets

    async def create_bucket(self, name: str, profile: str | None = None) -> Bucket:
        if name in self.buckets:
            raise Conflict("exists", code="bucket-exists", status=409)
        self.buckets[name] = Bucket(
            name=name, profile=profile or "local", redundancy=LOCAL, created_at=int(time.time())
        )
        return self.buckets[name]

    async def get_bucket(self, name: str) -> Bucket:
        if name not in self.buckets:
            raise NotFound("no bucket", code="bucket-not-found", status=404)
        return self.buckets[name]

    async def list_buckets(self, cursor: str = "", limit: int = 1000) -> BucketPage:
        return BucketPage(buckets=[self.buckets[n] for n in sorted(self.buckets)], next_cursor=None)

    async def delete_bucket(self, name: str, *, force: bool = False) -> None:
        self.buckets.pop(name)

    # -- uploads

    async def begin_object(self, bucket: str, key: str) -> BeganUpload:
        self.calls.append("begin_object")
        await self.get_bucket(bucket)
        stream_id = os.urandom(16).hex()
        self.uploads[stream_id] = _Upload(stream_id, bucket, key, LOCAL)
        return BeganUpload(stream_id=stream_id, redundancy=LOCAL, deadline=int(time.time()) + 3600)

    def _upload(self, stream_id: str) -> _Upload:
        if stream_id not in self.uploads:
            raise NotFound("no upload", code="upload-not-found", status=404)
        return self.uploads[stream_id]

    async def begin_segment(
        self, stream_id: str, index: int, encrypted_size: int, piece_size: int
    ) -> SegmentOrders:
        self.calls.append(f"begin_segment {index}")
        upload = self._upload(stream_id)
        record = Segment(
            index=index,
            encrypted_size=encrypted_size,
            plain_size=0,
            piece_size=piece_size,
            redundancy=upload.scheme,
            encrypted_metadata=None,
        )
        segment = _Segment(record, os.urandom(32))
        upload.segments[index] = segment
        limits = []
        for number in range(upload.scheme.n):
            farmer = self.farmers[number]
            segment.placements[number] = farmer
            piece_id = derive_piece_id(segment.root, farmer.node_id, number)
            limit = self._limit(farmer, piece_id, Action.PUT, piece_size)
            limits.append(_addressed(number, farmer, limit, public_key=farmer.public_key))
        return SegmentOrders(
            index=index, piece_size=piece_size, redundancy=upload.scheme, order_limits=limits
        )

    async def replace_pieces(
        self, stream_id: str, index: int, piece_numbers: Sequence[int], node_ids: Sequence[NodeId]
    ) -> SegmentOrders:
        upload = self._upload(stream_id)
        segment = upload.segments[index]
        used = {f.node_id for f in segment.placements.values()}
        spare = [f for f in self.farmers if f.node_id not in used]
        limits = []
        for number, farmer in zip(piece_numbers, spare, strict=False):
            segment.placements[number] = farmer
            piece_id = derive_piece_id(segment.root, farmer.node_id, number)
            limit = self._limit(farmer, piece_id, Action.PUT, segment.record.piece_size)
            limits.append(_addressed(number, farmer, limit, public_key=farmer.public_key))
        return SegmentOrders(
            index=index,
            piece_size=segment.record.piece_size,
            redundancy=upload.scheme,
            order_limits=limits,
        )

    async def commit_segment(
        self,
        stream_id: str,
        index: int,
        receipts: Sequence[PieceReceipt],
        plain_size: int,
        encrypted_metadata: bytes,
        outcomes: Sequence[PieceOutcome] = (),
    ) -> SegmentCommit:
        self.calls.append(f"commit_segment {index}")
        self.outcomes.extend(outcomes)
        upload = self._upload(stream_id)
        segment = upload.segments[index]
        for receipt in receipts:
            number = next(n for n, f in segment.placements.items() if f.node_id == receipt.node_id)
            receipt.verify_signature(segment.placements[number].public_key)
            segment.receipts[number] = receipt
        if len(segment.receipts) < upload.scheme.o:
            raise BridgeError("too few", code="not-enough-pieces", status=400)
        segment.record = segment.record.model_copy(
            update={"plain_size": plain_size, "encrypted_metadata": encrypted_metadata}
        )
        segment.committed = True
        return SegmentCommit(index=index, pieces=len(segment.receipts), rejected=[])

    async def commit_object(self, stream_id: str, encrypted_metadata: bytes) -> Object:
        upload = self.uploads.pop(stream_id)
        segments = {i: s for i, s in upload.segments.items() if s.committed}
        if sorted(segments) != list(range(len(segments))):
            raise BridgeError("gap", code="segments-missing", status=400)
        record = Object(
            key=upload.key,
            stream_id=stream_id,
            created_at=int(time.time()),
            encrypted_size=sum(s.record.encrypted_size for s in segments.values()),
            plain_size=sum(s.record.plain_size for s in segments.values()),
            segment_count=len(segments),
            encrypted_metadata=encrypted_metadata,
            inline_data=None,
            segments=[segments[i].record for i in sorted(segments)],
        )
        self.objects[(upload.bucket, upload.key)] = (record, segments)
        return record

    async def abort_upload(self, stream_id: str) -> None:
        self.calls.append("abort_upload")
        self.uploads.pop(stream_id, None)

    async def get_upload(self, stream_id: str) -> PendingUpload:
        self.calls.append("get_upload")
        upload = self._upload(stream_id)
        committed = [s.record for i, s in sorted(upload.segments.items()) if s.committed]
        return PendingUpload(
            stream_id=stream_id,
            bucket=upload.bucket,
            key=upload.key,
            redundancy=upload.scheme,
            created_at=0,
            deadline=0,
            segments=committed,
        )

    async def put_inline(
        self, bucket: str, key: str, data: bytes, plain_size: int, encrypted_metadata: bytes
    ) -> Object:
        self.calls.append("put_inline")
        await self.get_bucket(bucket)
        if len(data) > self.inline_limit:
            raise BridgeError("inline data too large", code="inline-too-large", status=400)
        record = Object(
            key=key,
            stream_id=os.urandom(16).hex(),
            created_at=int(time.time()),
            encrypted_size=len(data),
            plain_size=plain_size,
            segment_count=0,
            encrypted_metadata=encrypted_metadata,
            inline_data=data,
            segments=[],
        )
        self.objects[(bucket, key)] = (record, {})
        return record

    # -- objects

    def _object(self, bucket: str, key: str) -> tuple[Object, dict[int, _Segment]]:
        if (bucket, key) not in self.objects:
            raise NotFound("no object", code="object-not-found", status=404)
        return self.objects[(bucket, key)]

    async def get_object(self, bucket: str, key: str) -> Object:
        return self._object(bucket, key)[0]

    async def delete_object(self, bucket: str, key: str) -> None:
        self._object(bucket, key)
        del self.objects[(bucket, key)]

    async def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        *,
        recursive: bool = False,
        cursor: str = "",
        limit: int = 1000,
    ) -> Listing:
        items = [
            ListItem(
                key=k,
                is_prefix=False,
                stream_id=r.stream_id,
                created_at=r.created_at,
                encrypted_size=r.encrypted_size,
                plain_size=r.plain_size,
                encrypted_metadata=r.encrypted_metadata,
            )
            for (b, k), (r, _) in sorted(self.objects.items())
            if b == bucket and k.startswith(prefix)
        ]
        return Listing(items=items, next_cursor=None)

    async def download_segment(
        self,
        bucket: str,
        key: str,
        index: int,
        stream_id: str | None = None,
        *,
        exclude: Collection[int] = (),
    ) -> SegmentOrders:
        _, segments = self._object(bucket, key)
        segment = segments[index]
        limits = []
        for number, receipt in sorted(segment.receipts.items()):
            if number in exclude:
                continue
            farmer = segment.placements[number]
            limit = self._limit(farmer, receipt.piece_id, Action.GET, receipt.size)
            limits.append(_addressed(number, farmer, limit, piece_hash=receipt.piece_hash))
        return SegmentOrders(
            index=index,
            piece_size=segment.record.piece_size,
            redundancy=LOCAL,
            order_limits=limits,
        )

    async def report_segment(
        self,
        bucket: str,
        key: str,
        index: int,
        stream_id: str,
        outcomes: Sequence[PieceOutcome],
    ) -> ReportAccepted:
        self.reports.append(SegmentReport(key=key, stream_id=stream_id, outcomes=list(outcomes)))
        return ReportAccepted(recorded=len(outcomes), audits=0)

    async def move_object(
        self,
        bucket: str,
        key: str,
        new_bucket: str,
        new_key: str,
        encrypted_metadata: bytes | None,
        segments: Sequence[SegmentRekey],
        *,
        copy: bool = False,
        stream_id: str | None = None,
    ) -> Object:
        self.calls.append("copy_object" if copy else "move_object")
        record, stored = self._object(bucket, key)
        if stream_id is not None and stream_id != record.stream_id:
            raise Conflict("another version", code="object-changed", status=409)
        await self.get_bucket(new_bucket)
        if sorted(s.index for s in segments) != sorted(stored):
            raise BridgeError("every segment needs its new key", code="invalid-request")
        rekeyed = {}
        for change in segments:
            old = stored[change.index]
            rekeyed[change.index] = replace(
                old,
                record=old.record.model_copy(
                    update={"encrypted_metadata": change.encrypted_metadata}
                ),
            )
        moved = record.model_copy(
            update={
                "key": new_key,
                "encrypted_metadata": encrypted_metadata,
                "segments": [rekeyed[i].record for i in sorted(rekeyed)],
            }
        )
        if not copy:
            del self.objects[(bucket, key)]
        self.objects[(new_bucket, new_key)] = (moved, rekeyed)
        return moved


def _addressed(
    number: int,
    farmer: Farmer,
    limit: OrderLimit,
    *,
    public_key: bytes | None = None,
    piece_hash: bytes | None = None,
) -> AddressedLimit:
    return AddressedLimit(
        piece_number=number,
        node_id=farmer.node_id,
        address=farmer.address,
        piece_id=limit.piece_id.hex(),
        order_limit=limit,
        public_key=public_key,
        piece_hash=piece_hash,
    )
