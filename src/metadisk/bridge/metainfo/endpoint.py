"""HTTP routes of uploads, objects, listings and downloads (API key bearer auth).

Object keys travel in JSON bodies and in the ``key`` query parameter, never in the URL path, so
that no client or proxy normalizes them (``a//b``, trailing slashes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import JSONResponse

from metadisk.bridge import errors
from metadisk.bridge.auth.service import KeyAuthority
from metadisk.bridge.buckets.endpoint import BUCKET
from metadisk.bridge.buckets.schemas import RedundancyOut
from metadisk.bridge.config import MAX_INLINE_SIZE
from metadisk.bridge.http import (
    COMMON_ERRORS,
    HEX_PATTERN,
    Runner,
    api_key_token,
    decode_b64,
    decode_hex,
)
from metadisk.bridge.metainfo import schemas as s
from metadisk.bridge.metainfo.db import ObjectInfo
from metadisk.bridge.metainfo.service import MAX_KEY, MAX_PAGE, MetainfoService
from metadisk.core.identity import NodeId

STREAM_ID = Path(min_length=32, max_length=32, pattern=HEX_PATTERN)
INDEX = Path(ge=0, le=(1 << 31) - 1)
KEY = Query(min_length=1, max_length=MAX_KEY, description="the object's encrypted path")
EXCLUDE = Query(
    [],
    max_length=255,
    description="piece numbers (0-254) not wanted: already fetched or found bad; limits go to "
    "other online pieces only, possibly none",
)


def router(
    service: MetainfoService, authority: KeyAuthority, clock: Callable[[], int], run: Runner
) -> APIRouter:
    api = APIRouter(prefix="/v1", tags=["objects"], responses=COMMON_ERRORS)

    @api.get("/buckets/{bucket}/object", response_model=s.ObjectOut)
    async def get_object(
        bucket: str = BUCKET, key: str = KEY, token: str = Depends(api_key_token)
    ) -> Response:
        """An object's segments, sizes and metadata, and the data of an inline object."""

        def work() -> dict[str, Any]:
            access = authority.resolve(token)
            return s.object_json(service.get_object(access, bucket, key, clock()))

        return JSONResponse(await run(work))

    @api.post("/buckets/{bucket}/objects", status_code=201, response_model=s.ObjectOut)
    async def put_inline(
        body: s.InlineObjectIn, bucket: str = BUCKET, token: str = Depends(api_key_token)
    ) -> Response:
        """Store a small object (ciphertext <= 4 KiB) in the bridge's database, in one call."""
        data = decode_b64(body.data, "data") or b""
        metadata = decode_b64(body.encrypted_metadata, "encrypted_metadata")
        now = clock()

        def work() -> bytes:
            access = authority.resolve(token)
            return service.put_inline(
                access, bucket, body.key, data, body.plain_size, metadata, now
            )

        stream_id = await run(work)
        info = ObjectInfo(stream_id, bucket, body.key, now, len(data), body.plain_size, 0,
                          metadata, data, [])  # fmt: skip
        return JSONResponse(s.object_json(info), status_code=201)

    @api.get("/buckets/{bucket}/objects", response_model=s.ListingOut)
    async def list_objects(
        bucket: str = BUCKET,
        prefix: str = Query("", max_length=MAX_KEY, description="empty or ending in '/'"),
        recursive: bool = Query(False, description="list every key, not one level"),
        cursor: str = Query("", max_length=MAX_KEY, description="next_cursor of the last page"),
        limit: int = Query(MAX_PAGE, ge=1, le=MAX_PAGE),
        token: str = Depends(api_key_token),
    ) -> Response:
        """Objects and (unless recursive) common prefixes under a prefix, in key order."""

        def work() -> dict[str, Any]:
            access = authority.resolve(token)
            listing = service.list_objects(
                access, bucket, prefix, recursive, cursor, limit, clock()
            )
            return s.listing_json(listing)

        return JSONResponse(await run(work))

    @api.delete("/buckets/{bucket}/object", status_code=204)
    async def delete_object(
        bucket: str = BUCKET, key: str = KEY, token: str = Depends(api_key_token)
    ) -> Response:
        """Delete an object; its pieces are queued for deletion on their farmers."""

        def work() -> None:
            service.delete_object(authority.resolve(token), bucket, key, clock())

        await run(work)
        return Response(status_code=204)

    @api.post("/buckets/{bucket}/object/move")
    async def move_object(
        body: s.RelocateIn, bucket: str = BUCKET, token: str = Depends(api_key_token)
    ) -> s.ObjectOut:
        """Rename an object (to another bucket of the project too), atomically, moving no data.

        Needs READ and DELETE on the source, WRITE on the destination (and DELETE there to
        replace an object); every segment's re-wrapped metadata is given exactly once.
        """
        return await relocate(body, bucket, token, copy=False)

    @api.post("/buckets/{bucket}/object/copy")
    async def copy_object(
        body: s.RelocateIn, bucket: str = BUCKET, token: str = Depends(api_key_token)
    ) -> s.ObjectOut:
        """A new object sharing the original's pieces (deleting either keeps the other whole).

        Needs READ on the source, WRITE on the destination (and DELETE there to replace an
        object); the copy counts toward the project's storage and segments like any object.
        """
        return await relocate(body, bucket, token, copy=True)

    async def relocate(body: s.RelocateIn, bucket: str, token: str, *, copy: bool) -> s.ObjectOut:
        pinned = None if body.stream_id is None else decode_hex(body.stream_id, "stream_id", 16)
        metadata = decode_b64(body.encrypted_metadata, "encrypted_metadata")
        segments = [
            (g.index, decode_b64(g.encrypted_metadata, "segments.encrypted_metadata"))
            for g in body.segments
        ]

        def work() -> s.ObjectOut:
            info = service.relocate(
                authority.resolve(token),
                bucket,
                body.key,
                pinned,
                body.new_bucket,
                body.new_key,
                metadata,
                segments,
                clock(),
                copy=copy,
            )
            return s.ObjectOut.of(info)

        return await run(work)

    @api.get("/buckets/{bucket}/uploads")
    async def list_uploads(
        bucket: str = BUCKET, key: str = KEY, token: str = Depends(api_key_token)
    ) -> s.UploadListOut:
        """The pending uploads to a key, oldest first: to resume one whose stream id was lost."""

        def work() -> s.UploadListOut:
            uploads = service.list_uploads(authority.resolve(token), bucket, key, clock())
            return s.UploadListOut.of(uploads)

        return await run(work)

    @api.post("/buckets/{bucket}/uploads", status_code=201)
    async def begin_object(
        body: s.BeginObject, bucket: str = BUCKET, token: str = Depends(api_key_token)
    ) -> s.UploadOut:
        """Begin uploading an object; it stays invisible until committed."""

        def work() -> s.UploadOut:
            began = service.begin_object(authority.resolve(token), bucket, body.key, clock())
            return s.UploadOut(
                stream_id=began.stream_id.hex(),
                redundancy=RedundancyOut.of(began.redundancy),
                deadline=began.deadline,
                max_inline_size=MAX_INLINE_SIZE,
            )

        return await run(work)

    @api.post("/uploads/{stream_id}/segments", status_code=201)
    async def begin_segment(
        body: s.BeginSegment, stream_id: str = STREAM_ID, token: str = Depends(api_key_token)
    ) -> s.SegmentOrdersOut:
        """Signed PUT order limits for each piece of a segment, one farmer each."""
        stream = decode_hex(stream_id, "stream_id", 16)

        def work() -> s.SegmentOrdersOut:
            found = service.begin_segment(
                authority.resolve(token),
                stream,
                body.index,
                body.encrypted_size,
                body.piece_size,
                clock(),
            )
            return s.SegmentOrdersOut.of(found)

        return await run(work)

    @api.post("/uploads/{stream_id}/segments/{index}/replacements")
    async def replace_pieces(
        body: s.Replacement,
        stream_id: str = STREAM_ID,
        index: int = INDEX,
        token: str = Depends(api_key_token),
    ) -> s.SegmentOrdersOut:
        """New order limits on fresh farmers for pieces whose farmer failed mid-upload."""
        stream = decode_hex(stream_id, "stream_id", 16)
        nodes = [NodeId(decode_hex(n, "node_ids", 32)) for n in body.node_ids]

        def work() -> s.SegmentOrdersOut:
            found = service.replace_pieces(
                authority.resolve(token), stream, index, body.piece_numbers, nodes, clock()
            )
            return s.SegmentOrdersOut.of(found)

        return await run(work)

    @api.post("/uploads/{stream_id}/segments/{index}/commit")
    async def commit_segment(
        body: s.CommitSegment,
        stream_id: str = STREAM_ID,
        index: int = INDEX,
        token: str = Depends(api_key_token),
    ) -> s.SegmentCommitOut:
        """Record a segment's pieces from the farmers' signed receipts (at least o valid)."""
        stream = decode_hex(stream_id, "stream_id", 16)
        metadata = decode_b64(body.encrypted_metadata, "encrypted_metadata")

        def work() -> s.SegmentCommitOut:
            commit = service.commit_segment(
                authority.resolve(token),
                stream,
                index,
                body.receipts,
                body.plain_size,
                metadata,
                clock(),
            )
            return s.SegmentCommitOut.of(commit)

        return await run(work)

    @api.post("/uploads/{stream_id}/commit")
    async def commit_object(
        body: s.CommitObject, stream_id: str = STREAM_ID, token: str = Depends(api_key_token)
    ) -> s.ObjectOut:
        """Make the upload the visible object at its key (replacing an older one) atomically."""
        stream = decode_hex(stream_id, "stream_id", 16)
        metadata = decode_b64(body.encrypted_metadata, "encrypted_metadata")

        def work() -> s.ObjectOut:
            info = service.commit_object(authority.resolve(token), stream, metadata, clock())
            return s.ObjectOut.of(info)

        return await run(work)

    @api.get("/uploads/{stream_id}")
    async def get_upload(
        stream_id: str = STREAM_ID, token: str = Depends(api_key_token)
    ) -> s.PendingUploadOut:
        """A pending upload and its committed segments, to resume it (needs WRITE on its key)."""
        stream = decode_hex(stream_id, "stream_id", 16)

        def work() -> s.PendingUploadOut:
            pending = service.get_upload(authority.resolve(token), stream, clock())
            return s.PendingUploadOut.of(pending)

        return await run(work)

    @api.delete("/uploads/{stream_id}", status_code=204)
    async def abort_upload(
        stream_id: str = STREAM_ID, token: str = Depends(api_key_token)
    ) -> Response:
        """Abandon an upload; any pieces already stored are queued for deletion."""
        stream = decode_hex(stream_id, "stream_id", 16)

        def work() -> None:
            service.abort_upload(authority.resolve(token), stream, clock())

        await run(work)
        return Response(status_code=204)

    @api.get("/buckets/{bucket}/object/segments/{index}")
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
    ) -> s.SegmentOrdersOut:
        """Signed GET order limits for k plus a few spare online farmers of a segment."""
        pinned = None if stream_id is None else decode_hex(stream_id, "stream_id", 16)
        if any(not 0 <= number < 255 for number in exclude):
            raise errors.InvalidRequest("exclude: piece numbers are 0 to 254")
        skipped = frozenset(exclude)

        def work() -> s.SegmentOrdersOut:
            found = service.download_segment(
                authority.resolve(token), bucket, key, index, pinned, clock(), skipped
            )
            return s.SegmentOrdersOut.of(found)

        return await run(work)

    return api
