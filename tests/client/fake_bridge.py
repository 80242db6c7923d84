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

from metadisk.client.bridge_api import (
    AddressedLimit,
    BucketPage,
    BucketRecord,
    ListedRecord,
    ListPage,
    ObjectRecord,
    PendingUpload,
    SegmentCommitRecord,
    SegmentOrders,
    SegmentRecord,
    SegmentRekey,
    UploadRecord,
)
from metadisk.client.errors import BridgeError, Conflict, NotFound
from metadisk.core.erasure import LOCAL, RedundancyScheme
from metadisk.core.identity import Identity, NodeId
from metadisk.core.messages import Action, OrderLimit, PieceReceipt, derive_piece_id
from tests.client.doubles import Farmer


@dataclass
class _Segment:
    record: SegmentRecord
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
        self.buckets: dict[str, BucketRecord] = {}
        self.uploads: dict[str, _Upload] = {}
        self.objects: dict[tuple[str, str], tuple[ObjectRecord, dict[int, _Segment]]] = {}
        self.calls: list[str] = []
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

    async def create_bucket(self, name: str, profile: str | None = None) -> BucketRecord:
        if name in self.buckets:
            raise Conflict("exists", code="bucket-exists", status=409)
        self.buckets[name] = BucketRecord(name, profile or "local", LOCAL, int(time.time()))
        return self.buckets[name]

    async def get_bucket(self, name: str) -> BucketRecord:
        if name not in self.buckets:
            raise NotFound("no bucket", code="bucket-not-found", status=404)
        return self.buckets[name]

    async def list_buckets(self, cursor: str = "", limit: int = 1000) -> BucketPage:
        return BucketPage(tuple(self.buckets[n] for n in sorted(self.buckets)), None)

    async def delete_bucket(self, name: str, *, force: bool = False) -> None:
        self.buckets.pop(name)

    # -- uploads

    async def begin_object(self, bucket: str, key: str) -> UploadRecord:
        self.calls.append("begin_object")
        await self.get_bucket(bucket)
        stream_id = os.urandom(16).hex()
        self.uploads[stream_id] = _Upload(stream_id, bucket, key, LOCAL)
        return UploadRecord(stream_id, LOCAL, int(time.time()) + 3600, self.inline_limit)

    def _upload(self, stream_id: str) -> _Upload:
        if stream_id not in self.uploads:
            raise NotFound("no upload", code="upload-not-found", status=404)
        return self.uploads[stream_id]

    async def begin_segment(
        self, stream_id: str, index: int, encrypted_size: int, piece_size: int
    ) -> SegmentOrders:
        self.calls.append(f"begin_segment {index}")
        upload = self._upload(stream_id)
        record = SegmentRecord(index, encrypted_size, 0, piece_size, upload.scheme, None)
        segment = _Segment(record, os.urandom(32))
        upload.segments[index] = segment
        limits = []
        for number in range(upload.scheme.n):
            farmer = self.farmers[number]
            segment.placements[number] = farmer
            piece_id = derive_piece_id(segment.root, farmer.node_id, number)
            limit = self._limit(farmer, piece_id, Action.PUT, piece_size)
            limits.append(AddressedLimit(number, farmer.address, limit, farmer.public_key, None))
        return SegmentOrders(index, piece_size, upload.scheme, tuple(limits))

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
            limits.append(AddressedLimit(number, farmer.address, limit, farmer.public_key, None))
        return SegmentOrders(index, segment.record.piece_size, upload.scheme, tuple(limits))

    async def commit_segment(
        self,
        stream_id: str,
        index: int,
        receipts: Sequence[bytes],
        plain_size: int,
        encrypted_metadata: bytes,
    ) -> SegmentCommitRecord:
        self.calls.append(f"commit_segment {index}")
        upload = self._upload(stream_id)
        segment = upload.segments[index]
        for raw in receipts:
            receipt = PieceReceipt.decode(raw)
            number = next(n for n, f in segment.placements.items() if f.node_id == receipt.node_id)
            receipt.verify_signature(segment.placements[number].public_key)
            segment.receipts[number] = receipt
        if len(segment.receipts) < upload.scheme.o:
            raise BridgeError("too few", code="not-enough-pieces", status=400)
        segment.record = replace(
            segment.record, plain_size=plain_size, encrypted_metadata=encrypted_metadata
        )
        segment.committed = True
        return SegmentCommitRecord(index, len(segment.receipts), ())

    async def commit_object(self, stream_id: str, encrypted_metadata: bytes) -> ObjectRecord:
        upload = self.uploads.pop(stream_id)
        segments = {i: s for i, s in upload.segments.items() if s.committed}
        if sorted(segments) != list(range(len(segments))):
            raise BridgeError("gap", code="segments-missing", status=400)
        record = ObjectRecord(
            upload.key,
            stream_id,
            int(time.time()),
            sum(s.record.encrypted_size for s in segments.values()),
            sum(s.record.plain_size for s in segments.values()),
            len(segments),
            encrypted_metadata,
            None,
            tuple(segments[i].record for i in sorted(segments)),
        )
        self.objects[(upload.bucket, upload.key)] = (record, segments)
        return record

    async def abort_upload(self, stream_id: str) -> None:
        self.calls.append("abort_upload")
        self.uploads.pop(stream_id, None)

    async def get_upload(self, stream_id: str) -> PendingUpload:
        self.calls.append("get_upload")
        upload = self._upload(stream_id)
        committed = tuple(s.record for i, s in sorted(upload.segments.items()) if s.committed)
        return PendingUpload(stream_id, upload.key, upload.scheme, 0, committed)

    async def put_inline(
        self, bucket: str, key: str, data: bytes, plain_size: int, encrypted_metadata: bytes
    ) -> ObjectRecord:
        self.calls.append("put_inline")
        await self.get_bucket(bucket)
        if len(data) > self.inline_limit:
            raise BridgeError("inline data too large", code="inline-too-large", status=400)
        record = ObjectRecord(
            key,
            os.urandom(16).hex(),
            int(time.time()),
            len(data),
            plain_size,
            0,
            encrypted_metadata,
            data,
            (),
        )
        self.objects[(bucket, key)] = (record, {})
        return record

    # -- objects

    def _object(self, bucket: str, key: str) -> tuple[ObjectRecord, dict[int, _Segment]]:
        if (bucket, key) not in self.objects:
            raise NotFound("no object", code="object-not-found", status=404)
        return self.objects[(bucket, key)]

    async def get_object(self, bucket: str, key: str) -> ObjectRecord:
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
    ) -> ListPage:
        items = [
            ListedRecord(
                k,
                False,
                r.stream_id,
                r.created_at,
                r.encrypted_size,
                r.plain_size,
                r.encrypted_metadata,
            )
            for (b, k), (r, _) in sorted(self.objects.items())
            if b == bucket and k.startswith(prefix)
        ]
        return ListPage(tuple(items), None)

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
            limits.append(AddressedLimit(number, farmer.address, limit, None, receipt.piece_hash))
        return SegmentOrders(index, segment.record.piece_size, LOCAL, tuple(limits))

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
    ) -> ObjectRecord:
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
                old, record=replace(old.record, encrypted_metadata=change.encrypted_metadata)
            )
        moved = replace(
            record,
            key=new_key,
            encrypted_metadata=encrypted_metadata,
            segments=tuple(rekeyed[i].record for i in sorted(rekeyed)),
        )
        if not copy:
            del self.objects[(bucket, key)]
        self.objects[(new_bucket, new_key)] = (moved, rekeyed)
        return moved
