"""Bodies of uploads, objects, listings and downloads (API key bearer auth).

Object keys are encrypted paths, opaque strings to the bridge; they travel in JSON bodies and in
the ``key`` query parameter, never in the URL path, so that no client or proxy normalizes them
(``a//b``, trailing slashes). Stream ids are 32 lowercase hex digits.
"""

from __future__ import annotations

import typing
from typing import Annotated, Literal

from pydantic import Field

from metadisk.wire.fields import (
    B64,
    BUCKET_PATTERN,
    HEX_PATTERN,
    JSON_INT,
    KEY_PATTERN,
    MAX_BUCKET_NAME,
    MAX_REQUEST_INT,
    MIN_BUCKET_NAME,
    HexNodeId,
    JsonInt,
    Redundancy,
    SignedOrderLimit,
    b64_schema,
)
from metadisk.wire.models import Answer, Request

MAX_KEY = 2048  # bytes; keeps (project, bucket, key) inside PostgreSQL's btree entry limit
MAX_OBJECT_METADATA = 8192
MAX_SEGMENT_METADATA = 1024
MAX_INLINE_BODY = 8192  # what a body may carry; the bridge's own inline limit is lower
# The bridge's inline limit (4 KiB of plaintext and the GCM tag), as the document states it; the
# bridge checks it itself and answers inline-too-large.
MAX_INLINE_DATA = 4096 + 16
# An object has at most MAX_SEGMENTS segments, but their indices need not be 0..count-1: an
# object assembled from separately uploaded parts keeps each segment's index (its nonces and
# wrapped key are bound to it), so indices may be sparse, up to MAX_SEGMENT_INDEX (the nonce's
# u32, kept within a signed 32-bit database integer).
MAX_SEGMENTS = 1 << 20
MAX_SEGMENT_INDEX = (1 << 31) - 1
MAX_PAGE = 1000
MAX_PIECES = 255
MAX_RECEIPT = 1024  # characters of one base64url receipt (an encoded receipt is ~300)

ObjectMetadata = Annotated[
    B64, Field(max_length=MAX_OBJECT_METADATA), b64_schema(MAX_OBJECT_METADATA)
]
SegmentMetadata = Annotated[
    B64, Field(max_length=MAX_SEGMENT_METADATA), b64_schema(MAX_SEGMENT_METADATA)
]
StreamId = Annotated[
    str,
    Field(min_length=32, max_length=32, pattern=HEX_PATTERN, description="hex stream id"),
]
ObjectKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_KEY,
        description="encrypted path",
        json_schema_extra={"pattern": KEY_PATTERN},
    ),
]
BucketName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_BUCKET_NAME,
        json_schema_extra={"pattern": BUCKET_PATTERN, "minLength": MIN_BUCKET_NAME},
    ),
]
PieceNumber = Annotated[int, Field(ge=0, lt=MAX_PIECES), JSON_INT]


class BeginObject(Request):
    key: ObjectKey


class BeganUpload(Answer):
    stream_id: str = Field(description="hex; names the upload in the calls that follow")
    redundancy: Redundancy
    deadline: int = Field(description="uncommitted uploads are reclaimed after this time")


SegmentIndex = Annotated[int, Field(ge=0, le=MAX_SEGMENT_INDEX), JSON_INT]


class BeginSegment(Request):
    index: JsonInt = Field(ge=0, le=MAX_SEGMENT_INDEX)
    encrypted_size: JsonInt = Field(
        ge=1, le=MAX_REQUEST_INT, description="ciphertext bytes of the segment"
    )
    piece_size: JsonInt = Field(
        ge=1, le=MAX_REQUEST_INT, description="bytes of each erasure-coded piece"
    )


class AddressedLimit(Answer):
    """One signed order limit, the farmer to use it at, and what the bridge adds about it."""

    piece_number: int
    node_id: HexNodeId
    address: str = Field(description="the farmer's base URL")
    piece_id: str = Field(description="hex; the id this farmer knows the piece by")
    order_limit: SignedOrderLimit
    public_key: B64 | None = Field(
        default=None,
        description="PUT: the farmer's Ed25519 key (hashes to node_id); its receipt must "
        "verify under it",
    )
    piece_hash: B64 | None = Field(
        default=None, description="GET: the stored piece's hash, from its upload receipt"
    )


class SegmentOrders(Answer):
    index: int
    piece_size: int
    redundancy: Redundancy
    order_limits: list[AddressedLimit]


class Replacement(Request):
    piece_numbers: list[PieceNumber] = Field(default_factory=list, max_length=MAX_PIECES)
    node_ids: list[HexNodeId] = Field(
        default_factory=list, max_length=MAX_PIECES, description="nodes that failed"
    )


PieceOutcomeKind = Literal[
    "success",  # stored (upload) or fetched and checked (download)
    "failed",  # the farmer refused, failed or could not be reached
    "slow",  # cancelled as a straggler or stalled: enough pieces came from others first
    "bad-piece",  # the farmer served bytes that do not match the piece's hash
]
PIECE_OUTCOMES: tuple[PieceOutcomeKind, ...] = typing.get_args(PieceOutcomeKind)
MAX_LATENCY_MS = 24 * 3600 * 1000


class PieceOutcome(Request):
    """How one piece transfer with one farmer went, as the client saw it."""

    piece_number: PieceNumber
    node_id: HexNodeId
    outcome: PieceOutcomeKind
    latency_ms: JsonInt = Field(
        ge=0, le=MAX_LATENCY_MS, description="from the request's start to its end or failure"
    )
    code: str = Field(default="", max_length=64, description="the failure's code, if it failed")


PieceOutcomes = Annotated[
    list[PieceOutcome],
    Field(
        default_factory=list,
        max_length=4 * MAX_PIECES,
        description="each piece transfer tried, for the bridge's view of farmer performance",
    ),
]


class SegmentReport(Request):
    """``POST .../object/segments/{index}/report``: how a download's piece transfers went."""

    key: ObjectKey
    stream_id: StreamId
    outcomes: PieceOutcomes


class ReportAccepted(Answer):
    recorded: int = Field(description="outcomes counted (those naming the segment's farmers)")
    audits: int = Field(description="pieces queued for an audit (reported bad)")


class CommitSegment(Request):
    # Text, not decoded receipts: one malformed receipt is rejected on its own (see
    # `SegmentCommit.rejected`), not the whole commit.
    receipts: list[Annotated[str, Field(max_length=MAX_RECEIPT)]] = Field(
        max_length=MAX_PIECES, description="base64url of each farmer's signed PieceReceipt"
    )
    plain_size: JsonInt = Field(default=0, ge=0, le=MAX_REQUEST_INT)
    encrypted_metadata: SegmentMetadata | None = Field(
        default=None, description="opaque, e.g. the segment's wrapped content key"
    )
    outcomes: PieceOutcomes


class Rejection(Answer):
    position: int = Field(description="index of the receipt in the request")
    code: str
    message: str


class SegmentCommit(Answer):
    index: int
    pieces: int = Field(description="pieces recorded")
    rejected: list[Rejection]


class CommitObject(Request):
    encrypted_metadata: ObjectMetadata | None = None
    segments: list[SegmentIndex] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SEGMENTS,
        description="the indices of the committed segments that make the object, strictly "
        "increasing (an object assembled from parts; indices may be sparse). Every other segment "
        "of the upload is dropped and its pieces deleted. Absent: every segment of the upload, "
        "which must be 0, 1, 2, ... all committed",
    )


class NewInlineObject(Request):
    """A small object stored in the bridge's database in one call."""

    key: ObjectKey
    data: Annotated[B64, Field(max_length=MAX_INLINE_BODY), b64_schema(MAX_INLINE_DATA)] = Field(
        description="ciphertext; the bridge stores up to 4 KiB + 16 bytes inline and answers "
        "inline-too-large above"
    )
    plain_size: JsonInt = Field(default=0, ge=0, le=MAX_REQUEST_INT)
    encrypted_metadata: ObjectMetadata | None = None


class Segment(Answer):
    index: int
    encrypted_size: int
    plain_size: int
    piece_size: int
    redundancy: Redundancy
    encrypted_metadata: B64 | None


class Object(Answer):
    key: str
    stream_id: str
    created_at: int
    encrypted_size: int
    plain_size: int
    segment_count: int
    encrypted_metadata: B64 | None
    inline_data: B64 | None = Field(description="ciphertext of an inline object")
    segments: list[Segment]


class PendingUpload(Answer):
    """A begun, uncommitted upload and its committed segments (for resuming it)."""

    stream_id: str
    bucket: str
    key: str
    redundancy: Redundancy
    created_at: int
    deadline: int = Field(description="the upload is reclaimed after this time")
    segments: list[Segment] = Field(description="the committed segments, by index")


class UploadSummary(Answer):
    """A pending upload to a key, as the list of uploads names it."""

    stream_id: str
    key: str = Field(default="", description="the encrypted key it will commit to")
    created_at: int
    deadline: int


class UploadList(Answer):
    uploads: list[UploadSummary] = Field(
        description="pending uploads to the key or below the prefix, oldest first"
    )


class SegmentRekey(Request):
    """A segment's new opaque metadata (its content key re-wrapped) for a move or copy."""

    index: JsonInt = Field(ge=0, le=MAX_SEGMENT_INDEX)
    encrypted_metadata: SegmentMetadata | None = Field(
        description="the segment's new opaque metadata (its content key re-wrapped)"
    )


class Relocation(Request):
    """``POST .../object/move`` and ``.../object/copy``."""

    key: ObjectKey
    stream_id: StreamId | None = Field(
        default=None,
        description="the version read with get object; another one at the key is a 409",
    )
    new_bucket: BucketName
    new_key: ObjectKey
    encrypted_metadata: ObjectMetadata | None = None
    segments: list[SegmentRekey] = Field(
        max_length=MAX_SEGMENTS, description="every segment of the object, each exactly once"
    )


class ListItem(Answer):
    key: str = Field(description="an object key, or a prefix ending in '/' if is_prefix")
    is_prefix: bool
    stream_id: str | None = None
    created_at: int | None = None
    encrypted_size: int | None = None
    plain_size: int | None = None
    encrypted_metadata: B64 | None = None


class Listing(Answer):
    items: list[ListItem]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null: done")
