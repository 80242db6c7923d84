"""Request and response bodies of the objects API.

Binary values travel as base64url without padding; ids (stream, node, piece) as lowercase hex.
Object keys are encrypted paths: opaque strings to the bridge.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from metadisk.bridge.buckets.schemas import RedundancyOut
from metadisk.bridge.http import B64_PATTERN, HEX_PATTERN
from metadisk.bridge.metainfo.db import ListedObject, ObjectInfo, PendingUpload, SegmentInfo, Upload
from metadisk.bridge.metainfo.service import (
    MAX_KEY,
    MAX_SEGMENTS,
    AddressedOrder,
    Listing,
    SegmentCommit,
    SegmentOrders,
)
from metadisk.core.encoding import b64encode
from metadisk.core.erasure import RedundancyScheme

_MAX_U63 = (1 << 63) - 1
_B64_META = Field(default=None, max_length=12000, pattern=B64_PATTERN)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else b64encode(data)


class BeginObject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=MAX_KEY, description="encrypted path")


class UploadOut(BaseModel):
    stream_id: str = Field(description="hex; names the upload in the calls that follow")
    redundancy: RedundancyOut
    deadline: int = Field(description="uncommitted uploads are reclaimed after this time")
    max_inline_size: int


class BeginSegment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    index: int = Field(ge=0, le=_MAX_U63)
    encrypted_size: int = Field(ge=0, le=_MAX_U63, description="ciphertext bytes of the segment")
    piece_size: int = Field(ge=0, le=_MAX_U63, description="bytes of each erasure-coded piece")


class OrderLimitOut(BaseModel):
    piece_number: int
    node_id: str = Field(description="hex")
    address: str = Field(description="the farmer's base URL")
    piece_id: str = Field(description="hex; the id this farmer knows the piece by")
    order_limit: str = Field(description="base64url of the signed OrderLimit")
    public_key: str | None = Field(
        default=None,
        description="PUT: base64url of the farmer's Ed25519 key (hashes to node_id); "
        "its receipt must verify under it",
    )
    piece_hash: str | None = Field(
        default=None,
        description="GET: base64url of the stored piece's hash, from its upload receipt",
    )

    @classmethod
    def of(cls, order: AddressedOrder) -> OrderLimitOut:
        limit = order.order_limit
        return cls(
            piece_number=order.piece_number,
            node_id=limit.node_id.hex(),
            address=order.address,
            piece_id=limit.piece_id.hex(),
            order_limit=b64encode(limit.encode()),
            public_key=_b64(order.public_key),
            piece_hash=_b64(order.piece_hash),
        )


class SegmentOrdersOut(BaseModel):
    index: int
    piece_size: int
    redundancy: RedundancyOut
    order_limits: list[OrderLimitOut]

    @classmethod
    def of(cls, found: SegmentOrders) -> SegmentOrdersOut:
        return cls(
            index=found.index,
            piece_size=found.piece_size,
            redundancy=RedundancyOut.of(found.redundancy),
            order_limits=[OrderLimitOut.of(order) for order in found.orders],
        )


class Replacement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    piece_numbers: list[int] = Field(default_factory=list, max_length=255)
    node_ids: list[str] = Field(
        default_factory=list, max_length=255, description="hex ids of nodes that failed"
    )


class CommitSegment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    receipts: list[str] = Field(
        max_length=255, description="base64url of each farmer's signed PieceReceipt"
    )
    plain_size: int = Field(default=0, ge=0, le=_MAX_U63)
    encrypted_metadata: str | None = Field(
        default=None, max_length=2048, pattern=B64_PATTERN,
        description="opaque, e.g. the segment's wrapped content key",
    )  # fmt: skip


class RejectionOut(BaseModel):
    position: int = Field(description="index of the receipt in the request")
    code: str
    message: str


class SegmentCommitOut(BaseModel):
    index: int
    pieces: int = Field(description="pieces recorded")
    rejected: list[RejectionOut]

    @classmethod
    def of(cls, commit: SegmentCommit) -> SegmentCommitOut:
        return cls(
            index=commit.index,
            pieces=commit.pieces,
            rejected=[
                RejectionOut(position=r.position, code=r.code, message=r.message)
                for r in commit.rejected
            ],
        )


class CommitObject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    encrypted_metadata: str | None = _B64_META


class InlineObjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=MAX_KEY, description="encrypted path")
    data: str = Field(
        max_length=6000, pattern=B64_PATTERN, description="ciphertext, <= 4 KiB + 16 bytes"
    )
    plain_size: int = Field(default=0, ge=0, le=_MAX_U63)
    encrypted_metadata: str | None = _B64_META


class SegmentOut(BaseModel):
    index: int
    encrypted_size: int
    plain_size: int
    piece_size: int
    redundancy: RedundancyOut
    encrypted_metadata: str | None

    @classmethod
    def of(cls, segment: SegmentInfo) -> SegmentOut:
        return cls(
            index=segment.index,
            encrypted_size=segment.encrypted_size,
            plain_size=segment.plain_size,
            piece_size=segment.piece_size,
            redundancy=RedundancyOut.of(segment.redundancy),
            encrypted_metadata=_b64(segment.encrypted_metadata),
        )


class ObjectOut(BaseModel):
    key: str
    stream_id: str
    created_at: int
    encrypted_size: int
    plain_size: int
    segment_count: int
    encrypted_metadata: str | None
    inline_data: str | None = Field(description="base64url ciphertext of an inline object")
    segments: list[SegmentOut]

    @classmethod
    def of(cls, info: ObjectInfo) -> ObjectOut:
        return cls(
            key=info.key,
            stream_id=info.stream_id.hex(),
            created_at=info.created_at,
            encrypted_size=info.encrypted_size,
            plain_size=info.plain_size,
            segment_count=info.segment_count,
            encrypted_metadata=_b64(info.encrypted_metadata),
            inline_data=_b64(info.inline_data),
            segments=[SegmentOut.of(segment) for segment in info.segments],
        )


class PendingUploadOut(BaseModel):
    stream_id: str
    bucket: str
    key: str
    redundancy: RedundancyOut
    created_at: int
    deadline: int = Field(description="the upload is reclaimed after this time")
    segments: list[SegmentOut] = Field(description="the committed segments, by index")

    @classmethod
    def of(cls, pending: PendingUpload) -> PendingUploadOut:
        upload = pending.upload
        return cls(
            stream_id=upload.stream_id.hex(),
            bucket=upload.bucket,
            key=upload.key,
            redundancy=RedundancyOut.of(upload.redundancy),
            created_at=upload.created_at,
            deadline=upload.deadline,
            segments=[SegmentOut.of(segment) for segment in pending.segments],
        )


class UploadItemOut(BaseModel):
    stream_id: str
    created_at: int
    deadline: int


class UploadListOut(BaseModel):
    uploads: list[UploadItemOut] = Field(description="pending uploads to the key, oldest first")

    @classmethod
    def of(cls, uploads: list[Upload]) -> UploadListOut:
        items = [
            UploadItemOut(stream_id=u.stream_id.hex(), created_at=u.created_at, deadline=u.deadline)
            for u in uploads
        ]
        return cls(uploads=items)


class SegmentRekeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    index: int = Field(ge=0, le=_MAX_U63)
    encrypted_metadata: str | None = Field(
        max_length=2048, pattern=B64_PATTERN,
        description="the segment's new opaque metadata (its content key re-wrapped)",
    )  # fmt: skip


class RelocateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=MAX_KEY, description="the object's encrypted path")
    stream_id: str | None = Field(
        default=None, min_length=32, max_length=32, pattern=HEX_PATTERN,
        description="the version read with get object; another one at the key is a 409",
    )  # fmt: skip
    new_bucket: str = Field(min_length=1, max_length=63)
    new_key: str = Field(min_length=1, max_length=MAX_KEY, description="encrypted path")
    encrypted_metadata: str | None = _B64_META
    segments: list[SegmentRekeyIn] = Field(
        max_length=MAX_SEGMENTS, description="every segment of the object, each exactly once"
    )


class ListItemOut(BaseModel):
    key: str = Field(description="an object key, or a prefix ending in '/' if is_prefix")
    is_prefix: bool
    stream_id: str | None = None
    created_at: int | None = None
    encrypted_size: int | None = None
    plain_size: int | None = None
    encrypted_metadata: str | None = None

    @classmethod
    def of_object(cls, obj: ListedObject) -> ListItemOut:
        return cls(
            key=obj.key,
            is_prefix=False,
            stream_id=obj.stream_id.hex(),
            created_at=obj.created_at,
            encrypted_size=obj.encrypted_size,
            plain_size=obj.plain_size,
            encrypted_metadata=_b64(obj.encrypted_metadata),
        )


class ListingOut(BaseModel):
    items: list[ListItemOut]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null: done")

    @classmethod
    def of(cls, listing: Listing) -> ListingOut:
        items = [
            ListItemOut.of_object(item.obj)
            if item.obj is not None
            else ListItemOut(key=item.key, is_prefix=True)
            for item in listing.items
        ]
        return cls(items=items, next_cursor=listing.next_cursor)


# Hot responses skip the pydantic round trip (build model, validate, dump): the endpoints return
# these dicts as JSON directly. tests/bridge/test_schemas.py pins them to the models above.


def redundancy_json(rs: RedundancyScheme) -> dict[str, int]:
    return {"k": rs.k, "m": rs.m, "o": rs.o, "n": rs.n}


def object_json(info: ObjectInfo) -> dict[str, Any]:
    return {
        "key": info.key,
        "stream_id": info.stream_id.hex(),
        "created_at": info.created_at,
        "encrypted_size": info.encrypted_size,
        "plain_size": info.plain_size,
        "segment_count": info.segment_count,
        "encrypted_metadata": _b64(info.encrypted_metadata),
        "inline_data": _b64(info.inline_data),
        "segments": [
            {
                "index": segment.index,
                "encrypted_size": segment.encrypted_size,
                "plain_size": segment.plain_size,
                "piece_size": segment.piece_size,
                "redundancy": redundancy_json(segment.redundancy),
                "encrypted_metadata": _b64(segment.encrypted_metadata),
            }
            for segment in info.segments
        ],
    }


def listing_json(listing: Listing) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for item in listing.items:
        obj = item.obj
        if obj is None:
            items.append({"key": item.key, "is_prefix": True})
        else:
            items.append(
                {
                    "key": obj.key,
                    "is_prefix": False,
                    "stream_id": obj.stream_id.hex(),
                    "created_at": obj.created_at,
                    "encrypted_size": obj.encrypted_size,
                    "plain_size": obj.plain_size,
                    "encrypted_metadata": _b64(obj.encrypted_metadata),
                }
            )
    return {"items": items, "next_cursor": listing.next_cursor}
