"""S3's service and bucket operations: ListBuckets, Create/Head/DeleteBucket, GetBucketLocation,
GetBucketVersioning and ListObjects (v1 and v2)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from aiohttp import web

from metadisk.client import Conflict, NotFound, ObjectInfo
from metadisk.gateway import listing, s3xml
from metadisk.gateway.bodies import RequestBody
from metadisk.gateway.metadata import etag_of, moment
from metadisk.gateway.replies import count, empty, url_encoding, xml
from metadisk.gateway.s3errors import S3Error

if TYPE_CHECKING:
    from metadisk.gateway.server import Call


def owner(call: Call) -> s3xml.Owner:
    """A stable owner per credential (S3 shows a canonical user id)."""
    return s3xml.Owner(hashlib.sha256(call.access_key.encode()).hexdigest(), "metadisk")


async def list_buckets(call: Call) -> web.StreamResponse:
    found = await call.project.list_buckets()
    body = s3xml.list_buckets([(b.name, moment(b.created_at)) for b in found], owner=owner(call))
    return xml(body)


async def create_bucket(call: Call) -> web.StreamResponse:
    document = await RequestBody(call.request, call.verified).read_all(s3xml.MAX_CREATE_BUCKET_BODY)
    if document.strip():
        s3xml.parse_create_bucket(document)  # any region: ours are all one place
    try:
        await call.project.create_bucket(call.bucket)
    except Conflict as exc:
        if exc.code == "bucket-exists":
            raise S3Error("BucketAlreadyOwnedByYou", BucketName=call.bucket) from exc
        raise
    return empty(Location=f"/{call.bucket}")


async def head_bucket(call: Call) -> web.StreamResponse:
    await _existing(call)
    return web.Response(headers={"x-amz-bucket-region": call.gateway.config.region})


async def delete_bucket(call: Call) -> web.StreamResponse:
    try:
        await call.project.delete_bucket(call.bucket)
    except NotFound as exc:
        raise S3Error("NoSuchBucket", BucketName=call.bucket) from exc
    return empty(204)


async def get_location(call: Call) -> web.StreamResponse:
    await _existing(call)
    return xml(s3xml.location_constraint(call.gateway.config.region))


async def get_versioning(call: Call) -> web.StreamResponse:
    await _existing(call)
    return xml(s3xml.versioning_configuration())


async def _existing(call: Call) -> None:
    try:
        await call.project.get_bucket(call.bucket)
    except NotFound as exc:
        raise S3Error("NoSuchBucket", BucketName=call.bucket) from exc


async def list_objects(call: Call) -> web.StreamResponse:
    """ListObjects v1 (``marker``) and v2 (``list-type=2``, ``continuation-token``)."""
    query = call.query
    v2 = query.get("list-type") == "2"
    prefix = query.get("prefix", "")
    delimiter = query.get("delimiter") or None
    max_keys = count(query, "max-keys")
    encode = url_encoding(query)
    token = query.get("continuation-token") if v2 else None
    if v2:
        after = listing.resume_after(query.get("start-after"), token)
    else:
        after = query.get("marker") or None
    items = await call.gateway.listings.names(
        call.project,
        call.access_key,
        call.bucket,
        prefix,
        slash_delimited=delimiter == "/",
        continuing=bool(after),
    )
    entries = [_entry(item) for item in items]
    page = listing.page(entries, prefix=prefix, delimiter=delimiter, after=after, max_keys=max_keys)
    if v2:
        body = s3xml.list_objects_v2(
            call.bucket,
            page,
            prefix=prefix,
            delimiter=delimiter,
            max_keys=max_keys,
            start_after=query.get("start-after"),
            continuation_token=token,
            encoding_url=encode,
            owner=owner(call) if query.get("fetch-owner") == "true" else None,
        )
    else:
        body = s3xml.list_objects_v1(
            call.bucket,
            page,
            prefix=prefix,
            delimiter=delimiter,
            max_keys=max_keys,
            marker=query.get("marker", ""),
            encoding_url=encode,
            owner=owner(call),
        )
    return xml(body)


def _entry(item: ObjectInfo) -> listing.Entry:
    if item.is_prefix:
        return listing.Entry(item.key, 0, "", moment(0))
    return listing.Entry(item.key, item.size, etag_of(item), moment(item.created_at))
