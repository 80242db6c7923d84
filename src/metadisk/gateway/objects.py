"""S3's object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects and
CopyObject, each one call or a stream through `AsyncProject`.

A PUT streams the request body into the upload pipeline while its MD5 (the ETag) and the
client's checksums are taken; the object becomes visible only once every check passed. A GET
streams the object's plaintext into the response as it is decrypted, so memory stays flat and a
slow reader slows the download down instead of filling memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web

from metadisk.client import AsyncProject, ClientError, NotFound, ObjectInfo
from metadisk.gateway import conditions, metadata, s3xml
from metadisk.gateway.bodies import RequestBody
from metadisk.gateway.failures import s3_error
from metadisk.gateway.replies import empty, xml
from metadisk.gateway.s3errors import S3Error
from metadisk.runtime.logs import event

if TYPE_CHECKING:
    from metadisk.gateway.server import Call

log = logging.getLogger("metadisk.gateway")

# Objects up to this size are read whole and stored inline at the bridge in one call.
INLINE = 4096
DELETES_AT_ONCE = 16
# ?response-* parameters a (presigned) GET may set on its answer.
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


async def put_object(call: Call) -> web.StreamResponse:
    s3xml.check_key(call.key)
    body = RequestBody(call.request, call.verified)
    stored = metadata.from_headers(call.headers)
    info = await store(
        call.project, call.bucket, call.key, body, stored, uploads=call.gateway.uploads
    )
    return empty(ETag=f'"{metadata.etag_of(info)}"')


async def store(
    project: AsyncProject,
    bucket: str,
    key: str,
    body: RequestBody,
    stored: metadata.Stored,
    *,
    uploads: asyncio.Semaphore,
) -> ObjectInfo:
    """Upload `body` as the object at `key`, its MD5 as the ETag; nothing is visible if any
    check of the body fails. An object past the inline size waits for a turn among `uploads`
    (the gateway's cap) with its body unread."""
    if body.size is not None and body.size <= INLINE:
        data = b"".join([block async for block in body.chunks()])
        final = metadata.with_etag(stored, body.md5)
        return await project.upload(
            bucket, key, data, content_type=final.content_type, metadata=final.custom
        )
    async with uploads:
        return await _store_segments(project, bucket, key, body, stored)


async def _store_segments(
    project: AsyncProject, bucket: str, key: str, body: RequestBody, stored: metadata.Stored
) -> ObjectInfo:
    upload_id = await project.begin_upload(bucket, key)
    try:
        part = await project.upload_part(
            bucket, key, upload_id, body.chunks(), first_index=0, size=body.size
        )
        final = metadata.with_etag(stored, body.md5)
        return await project.commit_upload(
            bucket,
            key,
            upload_id,
            part.indices,
            content_type=final.content_type,
            metadata=final.custom,
            checksum=part.checksum,
        )
    except BaseException:
        with contextlib.suppress(ClientError, asyncio.CancelledError):
            await asyncio.shield(project.abort_upload(upload_id))
        raise


async def head_object(call: Call) -> web.StreamResponse:
    return await get_object(call)


async def get_object(call: Call) -> web.StreamResponse:
    info = await _stat(call.project, call.bucket, call.key)
    etag = metadata.etag_of(info)
    conditions.check(call.headers, etag, info.created_at)
    headers = metadata.response_headers(info)
    for parameter, header in RESPONSE_OVERRIDES.items():
        if parameter in call.query:
            headers[header] = call.query[parameter]
    span = conditions.byte_range(call.headers.get("range"), info.size)
    offset, length = span if span is not None else (0, info.size)
    response = web.StreamResponse(status=206 if span is not None else 200, headers=headers)
    if span is not None:
        response.headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{info.size}"
    response.content_length = length
    if call.request.method == "HEAD":
        length = 0
    return await send_body(
        call.request, response, call.project, info, offset, length, downloads=call.gateway.downloads
    )


async def send_body(
    request: web.Request,
    response: web.StreamResponse,
    project: AsyncProject,
    info: ObjectInfo,
    offset: int,
    length: int,
    *,
    downloads: asyncio.Semaphore,
) -> web.StreamResponse:
    """Answer with bytes [offset, offset + length) of the object `info` describes, streamed.

    An object on farmers waits for a turn among `downloads` (the gateway's cap). The first bytes
    are read before the answer starts, so a failure then is still an error answer; a failure
    after that cuts the answer short, which the client sees against its Content-Length.
    """
    if length == 0:
        await response.prepare(request)
        await response.write_eof()
        return response
    # Small objects come inline with the object's record: only those on farmers wait their turn.
    turn = downloads if info.segment_count else contextlib.nullcontext()
    chunks = project.stream(info.bucket, info.key, offset=offset, length=length)
    async with turn, contextlib.aclosing(chunks):
        first = await anext(chunks)
        await response.prepare(request)
        await response.write(first)
        try:
            async for chunk in chunks:
                await response.write(chunk)  # waits while the client's socket is full
        except ClientError as exc:
            event(log, logging.WARNING, "download failed mid-answer", code=exc.code)
            raise ConnectionResetError(f"download failed: {exc.code}") from exc
    await response.write_eof()
    return response


async def delete_object(call: Call) -> web.StreamResponse:
    try:
        await call.project.delete(call.bucket, call.key)
    except NotFound as exc:
        if exc.code == "bucket-not-found":
            raise
        # Deleting what is not there succeeds in S3.
    return empty(204)


async def delete_objects(call: Call) -> web.StreamResponse:
    document = await RequestBody(call.request, call.verified).read_all(s3xml.MAX_DELETE_BODY)
    quiet, keys = s3xml.parse_delete(document)
    deleted: list[str] = []
    failed: list[tuple[str, S3Error]] = []
    gate = asyncio.Semaphore(DELETES_AT_ONCE)

    async def one(key: str) -> None:
        if not key:
            failed.append((key, S3Error("InvalidArgument", "An object key must not be empty.")))
            return
        async with gate:
            try:
                await call.project.delete(call.bucket, key)
            except NotFound as exc:
                if exc.code == "bucket-not-found":
                    failed.append((key, s3_error(exc)))
                    return
            except ClientError as exc:
                failed.append((key, s3_error(exc)))
                return
            deleted.append(key)

    async with asyncio.TaskGroup() as group:
        for key in keys:
            group.create_task(one(key))
    failed.sort(key=lambda failure: failure[0])
    return xml(s3xml.delete_result(sorted(deleted), failed, quiet=quiet))


async def copy_object(call: Call) -> web.StreamResponse:
    source_bucket, source_key = copy_source(call.headers)
    source = await _stat(call.project, source_bucket, source_key)
    conditions.check(
        call.headers, metadata.etag_of(source), source.created_at, prefix="x-amz-copy-source-"
    )
    directive = call.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "x-amz-metadata-directive is COPY or REPLACE")
    s3xml.check_key(call.key)
    same = (source_bucket, source_key) == (call.bucket, call.key)
    if same and directive == "COPY":
        raise S3Error(
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata.",
        )
    if directive == "REPLACE":
        replaced = metadata.with_etag(metadata.from_headers(call.headers), metadata.etag_of(source))
        copied = await call.project.copy(
            source_bucket,
            source_key,
            call.bucket,
            call.key,
            content_type=replaced.content_type,
            metadata=replaced.custom,
        )
    else:
        copied = await call.project.copy(source_bucket, source_key, call.bucket, call.key)
    body = s3xml.copy_object_result(metadata.etag_of(copied), metadata.moment(copied.created_at))
    return xml(body)


def copy_source(headers: dict[str, str]) -> tuple[str, str]:
    """(bucket, key) of ``x-amz-copy-source`` (``bucket/key`` or ``/bucket/key``, URL-encoded)."""
    raw = headers.get("x-amz-copy-source", "")
    path, _, version = raw.partition("?")
    if version:
        raise S3Error("NotImplemented", "objects are not versioned: no versionId to copy")
    bucket, _, key = urllib.parse.unquote(path).lstrip("/").partition("/")
    if not bucket or not key:
        raise S3Error("InvalidArgument", "x-amz-copy-source must be bucket/key")
    return bucket, key


async def _stat(project: AsyncProject, bucket: str, key: str) -> ObjectInfo:
    try:
        return await project.stat(bucket, key)
    except NotFound as exc:
        if exc.code == "bucket-not-found":
            raise S3Error("NoSuchBucket", str(exc)) from exc
        raise S3Error("NoSuchKey", "The specified key does not exist.") from exc


async def read_range(
    project: AsyncProject, bucket: str, key: str, offset: int, length: int
) -> AsyncIterator[bytes]:
    """Bytes [offset, offset + length) of an object, closing the download if stopped early."""
    chunks = project.stream(bucket, key, offset=offset, length=length)
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            yield chunk
