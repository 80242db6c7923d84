"""S3 multipart uploads on metadisk segments: Create, UploadPart, UploadPartCopy, Complete,
Abort, ListParts and ListMultipartUploads.

A multipart upload is one pending upload at the bridge. Each part is encrypted and stored as
segments of it as it arrives, in a slot of segment indices of its own (`parts`); completing
names the winning parts' segments in part order and the bridge makes them the object, so no
byte is read, moved or encrypted again. Parts arrive concurrently (ten at once from boto3) and
each streams through the pipeline like a PUT.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from metadisk.client import NotFound
from metadisk.gateway import conditions, listing, metadata, s3xml
from metadisk.gateway.bodies import MAX_PUT, RequestBody
from metadisk.gateway.buckets import owner
from metadisk.gateway.objects import _stat, copy_source, read_range
from metadisk.gateway.parts import Part, TooManyParts, Upload
from metadisk.gateway.replies import count, empty, url_encoding, xml
from metadisk.gateway.s3errors import S3Error

if TYPE_CHECKING:
    from metadisk.gateway.server import Call

# Bridges reclaim an upload left uncommitted for a day (their `upload_ttl`); so does the list.
RECLAIMED_AFTER = 24 * 3600


async def create(call: Call) -> web.StreamResponse:
    s3xml.check_key(call.key)
    stored = metadata.from_headers(call.headers)
    upload_id = await call.project.begin_upload(call.bucket, call.key)
    call.gateway.parts.begin(
        Upload(
            upload_id=upload_id,
            access_key=call.access_key,
            bucket=call.bucket,
            key=call.key,
            content_type=stored.content_type,
            metadata=stored.custom,
            initiated=time.time(),
        )
    )
    return xml(s3xml.initiate_multipart_upload(call.bucket, call.key, upload_id))


async def upload_part(call: Call) -> web.StreamResponse:
    upload, number = _upload(call), _part_number(call)
    body = RequestBody(call.request, call.verified)
    part = await _store_part(call, upload, number, body.chunks(), body.size, lambda: body.md5)
    return empty(ETag=f'"{part.etag}"')


async def upload_part_copy(call: Call) -> web.StreamResponse:
    upload, number = _upload(call), _part_number(call)
    source_bucket, source_key = copy_source(call.headers)
    source = await _stat(call.project, source_bucket, source_key)
    conditions.check(
        call.headers, metadata.etag_of(source), source.created_at, prefix="x-amz-copy-source-"
    )
    offset, length = 0, source.size
    wanted = call.headers.get("x-amz-copy-source-range")
    if wanted is not None:
        span = conditions.byte_range(wanted, source.size)
        if span is None:
            raise S3Error("InvalidArgument", "x-amz-copy-source-range must be bytes=first-last")
        offset, length = span
    if length > MAX_PUT:
        raise S3Error("EntityTooLarge", "a part is at most 5 GiB")
    md5 = hashlib.md5(usedforsecurity=False)

    async def hashed() -> AsyncIterator[bytes]:
        async for chunk in read_range(call.project, source_bucket, source_key, offset, length):
            md5.update(chunk)
            yield chunk

    part = await _store_part(call, upload, number, hashed(), length, md5.hexdigest)
    body = s3xml.copy_part_result(part.etag, metadata.moment(part.last_modified))
    return xml(body)


async def _store_part(
    call: Call,
    upload: Upload,
    number: int,
    source: AsyncIterator[bytes],
    size: int | None,
    etag: Callable[[], str],
) -> Part:
    store = call.gateway.parts
    try:
        first = store.take_slot(upload.upload_id, number)
    except TooManyParts:
        raise S3Error(
            "InvalidArgument", f"part {number} was uploaded more often than this gateway allows"
        ) from None
    except KeyError:
        raise _no_upload(upload.upload_id) from None
    try:
        async with call.gateway.uploads:
            written = await call.project.upload_part(
                upload.bucket, upload.key, upload.upload_id, source, first_index=first, size=size
            )
    except NotFound as exc:
        if exc.code != "upload-not-found":
            raise
        store.forget(upload.upload_id)  # reclaimed by the bridge
        raise _no_upload(upload.upload_id) from exc
    part = Part(number, tuple(written.indices), written.size, etag(), time.time())
    if not store.put_part(upload.upload_id, part):
        raise _no_upload(upload.upload_id)
    return part


async def complete(call: Call) -> web.StreamResponse:
    upload = _upload(call)
    document = await RequestBody(call.request, call.verified).read_all(s3xml.MAX_COMPLETE_BODY)
    asked = s3xml.parse_complete_multipart(document)  # ascending, 1 to 10,000, not empty
    stored = {part.part_number: part for part in call.gateway.parts.parts(upload.upload_id)}
    chosen: list[Part] = []
    for number, etag in asked:
        part = stored.get(number)
        if part is None or part.etag != etag.strip('"'):
            raise S3Error(
                "InvalidPart",
                "One or more of the specified parts could not be found or its ETag did not match.",
                PartNumber=number,
                ETag=etag,
            )
        chosen.append(part)
    least = call.gateway.config.min_part_size
    for part in chosen[:-1]:
        if part.size < least:
            raise S3Error(
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed object size.",
                PartNumber=part.part_number,
                MinSizeAllowed=least,
            )
    etag = metadata.multipart_etag(bytes.fromhex(part.etag) for part in chosen)
    custom = {**upload.metadata, metadata.ETAG: etag}
    segments = [index for part in chosen for index in part.indices]
    try:
        await call.project.commit_upload(
            upload.bucket,
            upload.key,
            upload.upload_id,
            segments,
            content_type=upload.content_type,
            metadata=custom,
        )
    except NotFound as exc:
        if exc.code == "upload-not-found":
            raise _no_upload(upload.upload_id) from exc
        raise
    call.gateway.parts.forget(upload.upload_id)
    location = f"{call.gateway.url}/{upload.bucket}/{upload.key}"
    return xml(s3xml.complete_multipart_upload(location, upload.bucket, upload.key, etag))


async def abort(call: Call) -> web.StreamResponse:
    upload = _upload(call)
    # Reclaimed by the bridge already: forgetting it is all that is left.
    with contextlib.suppress(NotFound):
        await call.project.abort_upload(upload.upload_id)
    call.gateway.parts.forget(upload.upload_id)
    return empty(204)


async def list_parts(call: Call) -> web.StreamResponse:
    upload = _upload(call)
    marker = _int(call.query.get("part-number-marker", "0"), "part-number-marker")
    most = count(call.query, "max-parts")
    parts = [
        listing.Part(p.part_number, p.size, p.etag, metadata.moment(p.last_modified))
        for p in call.gateway.parts.parts(upload.upload_id)
    ]
    page = listing.page_parts(parts, part_number_marker=marker, max_parts=most)
    body = s3xml.list_parts(
        upload.bucket,
        upload.key,
        upload.upload_id,
        page,
        part_number_marker=marker,
        max_parts=most,
        owner=owner(call),
    )
    return xml(body)


async def list_uploads(call: Call) -> web.StreamResponse:
    query = call.query
    prefix = query.get("prefix", "")
    delimiter = query.get("delimiter") or None
    most = count(query, "max-uploads")
    key_marker = query.get("key-marker", "")
    id_marker = query.get("upload-id-marker", "")
    await call.project.get_bucket(call.bucket)  # NoSuchBucket for a missing bucket
    call.gateway.parts.forget_older(time.time() - RECLAIMED_AFTER)
    uploads = [
        listing.Upload(u.key, u.upload_id, metadata.moment(u.initiated))
        for u in call.gateway.parts.uploads(call.access_key, call.bucket, prefix)
    ]
    uploads.sort(key=lambda u: (listing.sort_key(u.key), u.upload_id))
    page = listing.page_uploads(
        uploads,
        upload_id=lambda u: u.upload_id,
        prefix=prefix,
        delimiter=delimiter,
        key_marker=key_marker,
        upload_id_marker=id_marker,
        max_uploads=most,
    )
    body = s3xml.list_multipart_uploads(
        call.bucket,
        page,
        prefix=prefix,
        delimiter=delimiter,
        key_marker=key_marker,
        upload_id_marker=id_marker,
        max_uploads=most,
        encoding_url=url_encoding(query),
        owner=owner(call),
    )
    return xml(body)


def _upload(call: Call) -> Upload:
    upload_id = call.query["uploadId"]
    upload = call.gateway.parts.get(call.access_key, upload_id)
    if upload is None or (upload.bucket, upload.key) != (call.bucket, call.key):
        raise _no_upload(upload_id)
    return upload


def _no_upload(upload_id: str) -> S3Error:
    return S3Error(
        "NoSuchUpload",
        "The specified multipart upload does not exist. The upload ID might be invalid, or "
        "the multipart upload might have been aborted or completed.",
        UploadId=upload_id,
    )


def _part_number(call: Call) -> int:
    number = _int(call.query.get("partNumber", ""), "partNumber")
    if not 1 <= number <= listing.MAX_PART_NUMBER:
        raise S3Error(
            "InvalidArgument",
            f"Part number must be an integer between 1 and {listing.MAX_PART_NUMBER}, inclusive",
        )
    return number


def _int(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise S3Error("InvalidArgument", f"{name} must be an integer") from None
