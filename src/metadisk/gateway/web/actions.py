"""What the file manager does to files: upload, download, range reads, rename, delete, folders.

An upload is the file's bytes as the body of one request (a script sends each file with XHR, so
the page can show progress and cancel): the body streams into the upload pipeline through the
S3 side's own `objects.store`, a block at a time, so memory stays flat whatever the file's
size, and a cancelled request leaves nothing behind (the pending upload is aborted). A download
streams the decrypted object back with ``Content-Disposition: attachment``; ``raw`` answers
range reads for previews, as a download that the browser must never run: only a few image types
keep their type, anything else is plain text, under a sandboxing CSP.
"""

from __future__ import annotations

import urllib.parse

from aiohttp import web

from metadisk.client import NotFound
from metadisk.gateway import conditions, metadata, objects
from metadisk.gateway.bodies import RequestBody
from metadisk.gateway.sigv4 import ChunkSigning, Payload, Verified
from metadisk.gateway.web import Ctx, Handler, pages
from metadisk.gateway.web.session import Refused
from metadisk.runtime import web as shared

# A browser's upload is not SigV4-signed: the session and CSRF checks stand in for it.
_UNSIGNED = Verified("", "", Payload.UNSIGNED, ChunkSigning(b"", "", "", ""))
_RAW_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"
FOLDER_MARKER_TYPE = "application/x-directory"


async def upload(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    bucket, key = request.query.get("bucket", ""), request.query.get("key", "")
    if not bucket or not key or key.endswith("/"):
        raise Refused(400, "name a bucket and a file name")
    body = RequestBody(request, _UNSIGNED)
    kind = request.headers.get("Content-Type", "") or metadata.DEFAULT_CONTENT_TYPE
    stored = metadata.Stored(kind.split(";")[0].strip(), {})
    info = await objects.store(
        ctx.project, bucket, key, body, stored, uploads=ctx.manager.gateway.uploads
    )
    return _json({"bucket": bucket, "key": info.key, "size": info.size})


async def download(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _send(request, ctx, attachment=True)


async def raw(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return await _send(request, ctx, attachment=False)


async def _send(request: web.Request, ctx: Ctx, *, attachment: bool) -> web.StreamResponse:
    bucket, key = request.query.get("bucket", ""), request.query.get("key", "")
    info = await ctx.project.stat(bucket, key)
    span = conditions.byte_range(request.headers.get("Range"), info.size)
    offset, length = span if span is not None else (0, info.size)
    response = web.StreamResponse(status=206 if span is not None else 200)
    response.headers.update(shared.SECURITY_HEADERS)
    name = key.rsplit("/", 1)[-1]
    if attachment:
        response.content_type = "application/octet-stream"
        quoted = urllib.parse.quote(name, safe="")
        response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quoted}"
    else:
        kind = pages.preview_kind(key, info.content_type)
        image = pages.IMAGE_SUFFIXES.get(name[name.rfind(".") :].lower(), info.content_type)
        response.content_type = image if kind == "image" else "text/plain"
        response.charset = None if kind == "image" else "utf-8"
        response.headers["Content-Security-Policy"] = _RAW_CSP
    response.headers["Accept-Ranges"] = "bytes"
    if span is not None:
        response.headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{info.size}"
    response.content_length = length
    downloads = ctx.manager.gateway.downloads
    return await objects.send_body(
        request, response, ctx.project, info, offset, length, downloads=downloads
    )


async def delete(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    bucket, key = ctx.field("bucket"), ctx.field("key")
    try:
        await ctx.project.delete(bucket, key)
    except NotFound as exc:
        if exc.code == "bucket-not-found":
            raise
    ctx.session.notes.append(f"Deleted {key}.")
    # An empty folder's marker ("a/b/") goes back to the folder above it.
    folder = _folder(key.removesuffix("/"))
    raise web.HTTPSeeOther(pages.link("browse", bucket=bucket, prefix=folder or None))


async def rename(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    bucket, key = ctx.field("bucket"), ctx.field("key")
    target = ctx.field("target").strip().lstrip("/")
    new_bucket = ctx.field("target_bucket").strip() or bucket
    if not target or target.endswith("/"):
        raise Refused(400, "the new name is a path that does not end in '/'")
    if "/" not in target:
        target = _folder(key) + target  # a bare name renames within the folder
    await ctx.project.move(bucket, key, new_bucket, target)
    ctx.session.notes.append(f"Renamed {key} to {target}.")
    raise web.HTTPSeeOther(pages.link("browse", bucket=new_bucket, prefix=_folder(target)))


async def new_folder(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    bucket, prefix = ctx.field("bucket"), ctx.field("prefix")
    name = ctx.field("name").strip().strip("/")
    if not name:
        raise Refused(400, "a folder needs a name")
    # An empty folder is an empty object named "folder/", as S3 consoles make them; the
    # listing shows it as the folder and hides it inside.
    marker = f"{prefix}{name}/"
    await ctx.project.upload(bucket, marker, b"", content_type=FOLDER_MARKER_TYPE)
    raise web.HTTPSeeOther(pages.link("browse", bucket=bucket, prefix=marker))


def _folder(key: str) -> str:
    return key[: key.rfind("/") + 1]


def _json(value: object) -> web.Response:
    response = web.json_response(value)
    response.headers.update(shared.SECURITY_HEADERS)
    return response


ROUTES: list[tuple[str, str, Handler, bool]] = [
    ("PUT", "upload", upload, True),
    ("GET", "download", download, False),
    ("GET", "raw", raw, False),
    ("POST", "delete", delete, True),
    ("POST", "rename", rename, True),
    ("POST", "folder", new_folder, True),
]
