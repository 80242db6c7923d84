"""The file manager's pages: buckets, a folder, a preview, sharing, importing a grant.

Pages are GETs that change nothing; each form on them posts back with the session's CSRF token.
Shares are restricted grants (`AsyncProject.share`): read and list only, optionally until a time.
"""

from __future__ import annotations

import contextlib
import datetime
import urllib.parse

from aiohttp import web

from metadisk.client import AsyncProject, ClientError, Permissions
from metadisk.core.errors import DecodeError
from metadisk.core.grant import AccessGrant
from metadisk.gateway.web import Ctx, Handler, paging
from metadisk.gateway.web.session import PATH, Refused

TEXT_PREVIEW = 64 * 1024
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
TEXT_SUFFIXES = (".txt", ".md", ".csv", ".json", ".log", ".py", ".toml", ".yaml", ".yml", ".xml")
IMAGE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                  ".gif": "image/gif", ".webp": "image/webp"}  # fmt: skip


def link(path: str, **query: str | None) -> str:
    """A file manager URL with its query (None values left out)."""
    pairs = {name: value for name, value in query.items() if value is not None}
    return PATH + path + ("?" + urllib.parse.urlencode(pairs) if pairs else "")


def crumbs(ctx: Ctx, bucket: str, prefix: str) -> list[tuple[str, str | None]]:
    """(name, link) of the bucket and each folder down to `prefix`; no link where an imported
    grant does not reach (above its shared folders)."""
    reach = [p for b, p in roots(ctx.project) if b == bucket] if ctx.shared else [""]
    parts = prefix.split("/")[:-1]
    folders = [""] + ["/".join(parts[: depth + 1]) + "/" for depth in range(len(parts))]
    names = [bucket] + [part or "(empty)" for part in parts]
    found: list[tuple[str, str | None]] = []
    for name, folder in zip(names, folders, strict=True):
        reached = any(folder.startswith(root) for root in reach)
        found.append(
            (name, link("browse", bucket=bucket, prefix=folder or None) if reached else None)
        )
    return found


def preview_kind(key: str, content_type: str) -> str | None:
    """'image' or 'text' for what the page can preview, else None."""
    lowered = key.lower()
    if content_type in IMAGE_TYPES or lowered.endswith(tuple(IMAGE_SUFFIXES)):
        return "image"
    if content_type.startswith("text/") or lowered.endswith(TEXT_SUFFIXES):
        return "text"
    return None


def roots(project: AsyncProject) -> list[tuple[str, str]]:
    """(bucket, folder) a shared grant reaches, from its path keys."""
    return sorted(
        (key.bucket, key.path + "/" if key.path else "")
        for key in project.grant.encryption.path_keys
    )


async def home(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    if ctx.shared:
        places = [(b, p, link("browse", bucket=b, prefix=p)) for b, p in roots(ctx.project)]
        return ctx.manager.render(ctx, "home.html", buckets=[], places=places)
    buckets = await ctx.project.list_buckets()
    listed = [(b.name, _when(b.created_at), link("browse", bucket=b.name)) for b in buckets]
    return ctx.manager.render(ctx, "home.html", buckets=listed, places=[])


async def create_bucket(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    name = ctx.field("name").strip()
    await ctx.project.create_bucket(name)
    ctx.session.notes.append(f"Bucket {name} created.")
    raise web.HTTPSeeOther(link("browse", bucket=name))


async def browse(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    bucket, prefix = request.query.get("bucket", ""), request.query.get("prefix", "")
    if not bucket or (prefix and not prefix.endswith("/")):
        raise Refused(400, "a folder is a bucket and a prefix ending in '/'")
    text = request.query.get("q", "")
    page = await paging.folder_page(
        ctx.project, bucket, prefix, cursor=request.query.get("cursor") or None, text=text
    )
    folders = [
        (paging.name_of(i, prefix), link("browse", bucket=bucket, prefix=i.key))
        for i in page.folders
    ]
    files = [
        {
            "name": paging.name_of(i, prefix),
            "key": i.key,
            "size": i.size,
            "when": _when(i.created_at),
            "open": link("file", bucket=bucket, key=i.key),
            "download": link("download", bucket=bucket, key=i.key),
        }
        for i in page.files
    ]
    more = None
    if page.cursor is not None:
        more = link("browse", bucket=bucket, prefix=prefix, q=text or None, cursor=page.cursor)
    return ctx.manager.render(
        ctx,
        "folder.html",
        bucket=bucket,
        prefix=prefix,
        crumbs=crumbs(ctx, bucket, prefix),
        folders=folders,
        files=files,
        more=more,
        text=text,
        scanned=page.scanned,
        first=link("browse", bucket=bucket, prefix=prefix, q=text or None),
        share=link("share", bucket=bucket, prefix=prefix),
    )


async def file_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    bucket, key = _object(request)
    info = await ctx.project.stat(bucket, key)
    folder = key[: key.rfind("/") + 1]
    return ctx.manager.render(
        ctx,
        "file.html",
        bucket=bucket,
        key=key,
        info=info,
        when=_when(info.created_at),
        kind=preview_kind(key, info.content_type),
        crumbs=crumbs(ctx, bucket, folder),
        raw=link("raw", bucket=bucket, key=key),
        download=link("download", bucket=bucket, key=key),
        back=link("browse", bucket=bucket, prefix=folder),
        share=link("share", bucket=bucket, prefix=folder),
        text_limit=TEXT_PREVIEW,
    )


async def share_form(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    bucket, prefix = request.query.get("bucket", ""), request.query.get("prefix", "")
    return ctx.manager.render(ctx, "share.html", bucket=bucket, prefix=prefix, grant=None)


async def share(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    bucket, prefix = ctx.field("bucket"), ctx.field("prefix")
    until = None
    if ctx.field("days").strip():
        try:
            days = float(ctx.field("days"))
        except ValueError:
            raise Refused(400, "the expiry is a number of days") from None
        until = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)
    grant = ctx.project.share(
        [(bucket, prefix)], Permissions(read=True, list=True), not_after=until
    )
    return ctx.manager.render(
        ctx, "share.html", bucket=bucket, prefix=prefix, grant=grant, until=until
    )


async def grant_form(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return ctx.manager.render(ctx, "grant.html")


async def import_grant(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    text = ctx.field("grant").strip()
    try:
        AccessGrant.parse(text)
    except (DecodeError, ValueError) as exc:
        raise Refused(400, f"not an access grant ({exc})") from exc
    options = {} if ctx.manager.gateway.client is None else {"config": ctx.manager.gateway.client}
    opened = await AsyncProject.open(text, **options)
    await _forget(ctx)
    ctx.session.imported = opened
    ctx.session.notes.append("Browsing with the imported grant (kept for this session only).")
    raise web.HTTPSeeOther(PATH)


async def forget_grant(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    await _forget(ctx)
    ctx.session.notes.append("Back to the gateway's own grant.")
    raise web.HTTPSeeOther(PATH)


async def _forget(ctx: Ctx) -> None:
    if ctx.session.imported is not None:
        project, ctx.session.imported = ctx.session.imported, None
        with contextlib.suppress(ClientError):
            await project.aclose()


async def confirm_delete(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    bucket, key = _object(request)
    back = link("browse", bucket=bucket, prefix=key[: key.rfind("/") + 1])
    return ctx.manager.render(ctx, "delete.html", bucket=bucket, key=key, back=back)


async def rename_form(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    bucket, key = _object(request)
    back = link("browse", bucket=bucket, prefix=key[: key.rfind("/") + 1])
    return ctx.manager.render(ctx, "rename.html", bucket=bucket, key=key, back=back)


def _object(request: web.Request) -> tuple[str, str]:
    bucket, key = request.query.get("bucket", ""), request.query.get("key", "")
    if not bucket or not key:
        raise Refused(400, "name a bucket and an object")
    return bucket, key


def _when(created_at: int) -> str:
    if not created_at:
        return ""
    moment = datetime.datetime.fromtimestamp(created_at, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


ROUTES: list[tuple[str, str, Handler, bool]] = [
    ("POST", "buckets", create_bucket, True),
    ("GET", "browse", browse, False),
    ("GET", "file", file_page, False),
    ("GET", "share", share_form, False),
    ("POST", "share", share, True),
    ("GET", "grant", grant_form, False),
    ("POST", "grant", import_grant, True),
    ("POST", "grant/forget", forget_grant, True),
    ("GET", "delete", confirm_delete, False),
    ("GET", "rename", rename_form, False),
]
