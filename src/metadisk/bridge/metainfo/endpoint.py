"""HTTP routes of uploads, objects, listings and downloads (API key bearer auth); bodies are
`metadisk.wire.api.objects`.

Object keys travel in JSON bodies and in the ``key`` query parameter, never in the URL path, so
that no client or proxy normalizes them (``a//b``, trailing slashes). The routes that answer with
order limits or objects serialize their model straight to JSON (`json_response`).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Path, Query, Response

from metadisk.bridge import errors
from metadisk.bridge.auth.service import KeyAuthority
from metadisk.bridge.buckets.endpoint import BUCKET
from metadisk.bridge.health.reports import Reported
from metadisk.bridge.http import COMMON_ERRORS, RATE_LIMITED, Runner, api_key_token, json_response
from metadisk.bridge.metainfo.common import SegmentOrders
from metadisk.bridge.metainfo.db import (
    ObjectInfo,
    PendingUpload,
    ProjectUsage,
    SegmentInfo,
    Upload,
)
from metadisk.bridge.metainfo.objects import Listing, ObjectsService
from metadisk.bridge.metainfo.uploads import UploadsService
from metadisk.wire.api import accounts as wa
from metadisk.wire.api import objects as w
from metadisk.wire.api import routes
from metadisk.wire.fields import HEX_PATTERN, KEY_PATTERN

STREAM_ID = Path(min_length=32, max_length=32, pattern=HEX_PATTERN)
INDEX = Path(ge=0, le=w.MAX_SEGMENT_INDEX)
# Key rules are published, and checked by the service (invalid-key).
KEY = Query(
    min_length=1,
    max_length=w.MAX_KEY,
    description="the object's encrypted path",
    json_schema_extra={"pattern": KEY_PATTERN},
)
OPTIONAL_KEY = Query(
    None,
    min_length=1,
    max_length=w.MAX_KEY,
    description="the object's encrypted path (or give prefix)",
    json_schema_extra={"pattern": KEY_PATTERN},
)
UPLOADS_PREFIX = Query(
    None,
    max_length=w.MAX_KEY,
    description="an encrypted folder: empty (the bucket) or ending in '/' (or give key)",
    json_schema_extra={"pattern": r"^([!-~]*/)?$"},
)
EXCLUDE = Query(
    [],
    max_length=w.MAX_PIECES,
    json_schema_extra={"items": {"type": "integer", "minimum": 0, "maximum": w.MAX_PIECES - 1}},
    description="piece numbers (0-254) not wanted: already fetched or found bad; limits go to "
    "other online pieces only, possibly none",
)


def router(
    uploads: UploadsService,
    objects: ObjectsService,
    authority: KeyAuthority,
    clock: Callable[[], int],
    run: Runner,
) -> APIRouter:
    api = APIRouter(tags=["objects"], responses=COMMON_ERRORS)

    @api.get(routes.USAGE)
    async def usage(token: str = Depends(api_key_token)) -> wa.ProjectUsage:
        """The key's project: usage against its limits, and what pending uploads reserve (needs
        a key for every bucket of the project)."""

        def work() -> wa.ProjectUsage:
            return usage_out(objects.usage(authority.resolve(token), clock()))

        return await run(work)

    @api.get(routes.OBJECT, response_model=w.Object)
    async def get_object(
        bucket: str = BUCKET, key: str = KEY, token: str = Depends(api_key_token)
    ) -> Response:
        """An object's segments, sizes and metadata, and the data of an inline object."""

        def work() -> w.Object:
            access = authority.resolve(token)
            return object_out(objects.get_object(access, bucket, key, clock()))

        return json_response(await run(work))

    @api.post(routes.OBJECTS, status_code=201, response_model=w.Object)
    async def put_inline(
        body: w.NewInlineObject, bucket: str = BUCKET, token: str = Depends(api_key_token)
    ) -> Response:
        """Store a small object (ciphertext <= 4 KiB + 16 bytes) in the bridge's database."""
        now = clock()

        def work() -> bytes:
            access = authority.resolve(token)
            return uploads.put_inline(
                access, bucket, body.key, body.data, body.plain_size, body.encrypted_metadata, now
            )

        stream_id = await run(work)
        info = ObjectInfo(stream_id, bucket, body.key, now, len(body.data), body.plain_size, 0,
                          body.encrypted_metadata, body.data, [])  # fmt: skip
        return json_response(object_out(info), status=201)

    @api.get(routes.OBJECTS, response_model=w.Listing)
    async def list_objects(
        bucket: str = BUCKET,
        prefix: str = Query(
            "",
            max_length=w.MAX_KEY,
            description="empty or ending in '/'",
            json_schema_extra={"pattern": r"^([!-~]*/)?$"},
        ),
        recursive: bool = Query(False, description="list every key, not one level"),
        cursor: str = Query(
            "",
            max_length=w.MAX_KEY,
            description="next_cursor of the last page (within the prefix)",
            json_schema_extra={"pattern": KEY_PATTERN},
        ),
        limit: int = Query(w.MAX_PAGE, ge=1, le=w.MAX_PAGE),
        token: str = Depends(api_key_token),
    ) -> Response:
        """Objects and (unless recursive) common prefixes under a prefix, in key order."""

        def work() -> w.Listing:
            access = authority.resolve(token)
            listing = objects.list_objects(
                access, bucket, prefix, recursive, cursor, limit, clock()
            )
            return listing_out(listing)

        return json_response(await run(work))

    @api.delete(routes.OBJECT, status_code=204)
    async def delete_object(
        bucket: str = BUCKET, key: str = KEY, token: str = Depends(api_key_token)
    ) -> Response:
        """Delete an object; its pieces are queued for deletion on their farmers."""

        def work() -> None:
            objects.delete_object(authority.resolve(token), bucket, key, clock())

        await run(work)
        return Response(status_code=204)

    @api.post(routes.OBJECT_MOVE, response_model=w.Object)
    async def move_object(
        body: w.Relocation, bucket: str = BUCKET, token: str = Depends(api_key_token)
    ) -> Response:
        """Rename an object (to another bucket of the project too), atomically, moving no data.

        Needs READ and DELETE on the source, WRITE on the destination (and DELETE there to
        replace an object); every segment's re-wrapped metadata is given exactly once.
        """
        return await relocate(body, bucket, token, copy=False)

    @api.post(routes.OBJECT_COPY, response_model=w.Object)
    async def copy_object(
        body: w.Relocation, bucket: str = BUCKET, token: str = Depends(api_key_token)
    ) -> Response:
        """A new object sharing the original's pieces (deleting either keeps the other whole).

        Needs READ on the source, WRITE on the destination (and DELETE there to replace an
        object); the copy counts toward the project's storage and segments like any object.
        """
        return await relocate(body, bucket, token, copy=True)

    async def relocate(body: w.Relocation, bucket: str, token: str, *, copy: bool) -> Response:
        pinned = None if body.stream_id is None else bytes.fromhex(body.stream_id)
        segments = [(g.index, g.encrypted_metadata) for g in body.segments]

        def work() -> w.Object:
            info = objects.relocate(
                authority.resolve(token),
                bucket,
                body.key,
                pinned,
                body.new_bucket,
                body.new_key,
                body.encrypted_metadata,
                segments,
                clock(),
                copy=copy,
            )
            return object_out(info)

        return json_response(await run(work))

    @api.get(routes.BUCKET_UPLOADS)
    async def list_uploads(
        bucket: str = BUCKET,
        key: str | None = OPTIONAL_KEY,
        prefix: str | None = UPLOADS_PREFIX,
        token: str = Depends(api_key_token),
    ) -> w.UploadList:
        """The pending uploads to a key (to resume one whose stream id was lost), or below a
        folder (``prefix``, to see and abort what interrupted uploads left), oldest first."""
        if (key is None) == (prefix is None):
            raise errors.InvalidRequest("give either key or prefix")

        def work() -> w.UploadList:
            access = authority.resolve(token)
            if prefix is not None:
                pending = uploads.list_uploads_under(access, bucket, prefix, clock())
            else:
                pending = uploads.list_uploads(access, bucket, key or "", clock())
            return w.UploadList(uploads=[upload_summary(u) for u in pending])

        return await run(work)

    @api.post(
        routes.BUCKET_UPLOADS, status_code=201, response_model=w.BeganUpload, responses=RATE_LIMITED
    )
    async def begin_object(
        body: w.BeginObject, bucket: str = BUCKET, token: str = Depends(api_key_token)
    ) -> Response:
        """Begin uploading an object; it stays invisible until committed."""

        def work() -> w.BeganUpload:
            began = uploads.begin_object(authority.resolve(token), bucket, body.key, clock())
            return w.BeganUpload(
                stream_id=began.stream_id.hex(),
                redundancy=began.redundancy,
                deadline=began.deadline,
            )

        return json_response(await run(work), status=201)

    @api.post(
        routes.SEGMENTS, status_code=201, response_model=w.SegmentOrders, responses=RATE_LIMITED
    )
    async def begin_segment(
        body: w.BeginSegment, stream_id: str = STREAM_ID, token: str = Depends(api_key_token)
    ) -> Response:
        """Signed PUT order limits for each piece of a segment, one farmer each."""
        stream = bytes.fromhex(stream_id)

        def work() -> w.SegmentOrders:
            found = uploads.begin_segment(
                authority.resolve(token),
                stream,
                body.index,
                body.encrypted_size,
                body.piece_size,
                clock(),
            )
            return orders_out(found)

        return json_response(await run(work), status=201)

    @api.post(routes.SEGMENT_REPLACEMENTS, response_model=w.SegmentOrders)
    async def replace_pieces(
        body: w.Replacement,
        stream_id: str = STREAM_ID,
        index: int = INDEX,
        token: str = Depends(api_key_token),
    ) -> Response:
        """New order limits on fresh farmers for pieces whose farmer failed mid-upload."""
        stream = bytes.fromhex(stream_id)

        def work() -> w.SegmentOrders:
            found = uploads.replace_pieces(
                authority.resolve(token), stream, index, body.piece_numbers, body.node_ids, clock()
            )
            return orders_out(found)

        return json_response(await run(work))

    @api.post(routes.SEGMENT_COMMIT)
    async def commit_segment(
        body: w.CommitSegment,
        stream_id: str = STREAM_ID,
        index: int = INDEX,
        token: str = Depends(api_key_token),
    ) -> w.SegmentCommit:
        """Record a segment's pieces from the farmers' signed receipts (at least o valid)."""
        stream = bytes.fromhex(stream_id)

        def work() -> w.SegmentCommit:
            commit = uploads.commit_segment(
                authority.resolve(token),
                stream,
                index,
                body.receipts,
                body.plain_size,
                body.encrypted_metadata,
                clock(),
                reported(body.outcomes),
            )
            rejected = [
                w.Rejection(position=r.position, code=r.code, message=r.message)
                for r in commit.rejected
            ]
            return w.SegmentCommit(index=commit.index, pieces=commit.pieces, rejected=rejected)

        return await run(work)

    @api.post(routes.UPLOAD_COMMIT, response_model=w.Object)
    async def commit_object(
        body: w.CommitObject, stream_id: str = STREAM_ID, token: str = Depends(api_key_token)
    ) -> Response:
        """Make the upload the visible object at its key (replacing an older one) atomically.

        With `segments`, the object is those committed segments (sparse indices allowed: parts
        uploaded apart) and the upload's other segments are dropped, their pieces deleted."""
        stream = bytes.fromhex(stream_id)

        def work() -> w.Object:
            access = authority.resolve(token)
            info = uploads.commit_object(
                access, stream, body.encrypted_metadata, clock(), segments=body.segments
            )
            return object_out(info)

        return json_response(await run(work))

    @api.get(routes.UPLOAD)
    async def get_upload(
        stream_id: str = STREAM_ID, token: str = Depends(api_key_token)
    ) -> w.PendingUpload:
        """A pending upload and its committed segments, to resume it (needs WRITE on its key)."""
        stream = bytes.fromhex(stream_id)

        def work() -> w.PendingUpload:
            pending = uploads.get_upload(authority.resolve(token), stream, clock())
            return pending_out(pending)

        return await run(work)

    @api.delete(routes.UPLOAD, status_code=204)
    async def abort_upload(
        stream_id: str = STREAM_ID, token: str = Depends(api_key_token)
    ) -> Response:
        """Abandon an upload; any pieces already stored are queued for deletion."""
        stream = bytes.fromhex(stream_id)

        def work() -> None:
            uploads.abort_upload(authority.resolve(token), stream, clock())

        await run(work)
        return Response(status_code=204)

    @api.get(routes.OBJECT_SEGMENT, response_model=w.SegmentOrders)
    async def download_segment(
        bucket: str = BUCKET,
        index: int = INDEX,
        key: str = KEY,
        stream_id: str | None = Query(
            None,
            min_length=32,
            max_length=32,
            pattern=HEX_PATTERN,
            description="pin the object version from get object",
        ),
        exclude: list[int] = EXCLUDE,
        token: str = Depends(api_key_token),
    ) -> Response:
        """Signed GET order limits for k plus a few spare online farmers of a segment."""
        pinned = None if stream_id is None else bytes.fromhex(stream_id)
        if any(not 0 <= number < w.MAX_PIECES for number in exclude):
            raise errors.InvalidRequest("exclude: piece numbers are 0 to 254")
        skipped = frozenset(exclude)

        def work() -> w.SegmentOrders:
            found = objects.download_segment(
                authority.resolve(token), bucket, key, index, pinned, clock(), skipped
            )
            return orders_out(found)

        return json_response(await run(work))

    @api.post(routes.SEGMENT_REPORT)
    async def report_segment(
        body: w.SegmentReport,
        bucket: str = BUCKET,
        index: int = INDEX,
        token: str = Depends(api_key_token),
    ) -> w.ReportAccepted:
        """How a download's piece transfers of one segment went (needs READ on the object):
        feeds the farmers' performance, and queues an audit of each piece reported bad."""
        stream = bytes.fromhex(body.stream_id)

        def work() -> w.ReportAccepted:
            counted, queued = objects.report_segment(
                authority.resolve(token),
                bucket,
                body.key,
                stream,
                index,
                reported(body.outcomes),
                clock(),
            )
            return w.ReportAccepted(recorded=counted, audits=queued)

        return await run(work)

    return api


def reported(outcomes: list[w.PieceOutcome]) -> list[Reported]:
    return [
        Reported(o.piece_number, o.node_id.raw, o.outcome, o.latency_ms, o.code) for o in outcomes
    ]


def orders_out(found: SegmentOrders) -> w.SegmentOrders:
    return w.SegmentOrders(
        index=found.index,
        piece_size=found.piece_size,
        redundancy=found.redundancy,
        order_limits=[
            w.AddressedLimit(
                piece_number=order.piece_number,
                node_id=order.order_limit.node_id,
                address=order.address,
                piece_id=order.order_limit.piece_id.hex(),
                order_limit=order.order_limit,
                public_key=order.public_key,
                piece_hash=order.piece_hash,
            )
            for order in found.orders
        ],
    )


def segment_out(segment: SegmentInfo) -> w.Segment:
    return w.Segment(
        index=segment.index,
        encrypted_size=segment.encrypted_size,
        plain_size=segment.plain_size,
        piece_size=segment.piece_size,
        redundancy=segment.redundancy,
        encrypted_metadata=segment.encrypted_metadata,
    )


def object_out(info: ObjectInfo) -> w.Object:
    return w.Object(
        key=info.key,
        stream_id=info.stream_id.hex(),
        created_at=info.created_at,
        encrypted_size=info.encrypted_size,
        plain_size=info.plain_size,
        segment_count=info.segment_count,
        encrypted_metadata=info.encrypted_metadata,
        inline_data=info.inline_data,
        segments=[segment_out(segment) for segment in info.segments],
    )


def pending_out(pending: PendingUpload) -> w.PendingUpload:
    upload = pending.upload
    return w.PendingUpload(
        stream_id=upload.stream_id.hex(),
        bucket=upload.bucket,
        key=upload.key,
        redundancy=upload.redundancy,
        created_at=upload.created_at,
        deadline=upload.deadline,
        segments=[segment_out(segment) for segment in pending.segments],
    )


def upload_summary(upload: Upload) -> w.UploadSummary:
    return w.UploadSummary(
        stream_id=upload.stream_id.hex(),
        key=upload.key,
        created_at=upload.created_at,
        deadline=upload.deadline,
    )


def listing_out(listing: Listing) -> w.Listing:
    items = []
    for item in listing.items:
        obj = item.obj
        if obj is None:
            items.append(w.ListItem(key=item.key, is_prefix=True))
        else:
            items.append(
                w.ListItem(
                    key=obj.key,
                    is_prefix=False,
                    stream_id=obj.stream_id.hex(),
                    created_at=obj.created_at,
                    encrypted_size=obj.encrypted_size,
                    plain_size=obj.plain_size,
                    encrypted_metadata=obj.encrypted_metadata,
                )
            )
    return w.Listing(items=items, next_cursor=listing.next_cursor)


def usage_out(found: ProjectUsage) -> wa.ProjectUsage:
    return wa.ProjectUsage(
        limits=wa.Limits(
            buckets=found.max_buckets,
            storage_bytes=found.max_storage,
            egress_bytes=found.max_egress,
            segments=found.max_segments,
        ),
        usage=wa.Usage(
            buckets=found.buckets,
            storage_bytes=found.storage_bytes,
            egress_bytes=found.egress_bytes,
            segments=found.segments,
        ),
        objects=found.objects,
        pending=wa.PendingUsage(
            uploads=found.pending_uploads,
            storage_bytes=found.pending_storage,
            segments=found.pending_segments,
        ),
    )
