"""`metadisk uploads`: the pending (resumable) uploads that reserve room, and aborting them.

An upload interrupted for good (a file since deleted, a copy never re-run) keeps its reservation
against the project's limits, and its pieces on farmers, until the bridge reclaims it at its
deadline; this lists them and aborts them sooner.
"""

from __future__ import annotations

import json
import re
import time
from typing import Annotated

import typer

from metadisk.cli import humanize
from metadisk.cli.context import about, current, run
from metadisk.cli.errors import EXIT_NOT_FOUND, CliError, UsageError
from metadisk.cli.remote import RemotePath, parse_remote
from metadisk.client import AsyncProject, PendingUploadInfo

_STREAM_ID = re.compile(r"[0-9a-f]{32}")

Words = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[abort] [PATH|ID]...",
        help="md://bucket or md://bucket/folder/ to list (none: every bucket); after `abort`, "
        "md://bucket/key (its pending uploads), md://bucket/folder/ (every one below it) or an "
        "upload id.",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    """Add `uploads` to the root app."""
    app.command()(uploads)


def uploads(
    words: Words = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document instead of lines.")
    ] = False,
) -> None:
    """List pending (interrupted or running) uploads, or `abort` them.

    Each reserves room against the project's limits until it is committed, aborted, or
    reclaimed by the bridge at its deadline. `metadisk uploads abort md://b/key` aborts the
    uploads to one key; the next copy of that file starts over.
    """
    args = list(words or [])
    if args and args[0] == "abort":
        targets = args[1:]
        if not targets:
            raise UsageError("uploads abort: name md://bucket/key, md://bucket/folder/ or an id")
        run(_abort(targets, as_json))
        return
    if len(args) > 1:
        raise UsageError("uploads lists one md:// path (or `uploads abort ...`)")
    run(_list(parse_remote(args[0]) if args else None, as_json))


async def _list(remote: RemotePath | None, as_json: bool) -> None:
    async with current().project() as project:
        found: list[PendingUploadInfo] = []
        if remote is None:
            with about("buckets"):
                names = [b.name for b in await project.list_buckets()]
        else:
            names = [remote.bucket]
        for name in names:
            where = remote or RemotePath(name)
            with about(where):
                found += await _pending(project, where)
    if as_json:
        typer.echo(json.dumps({"uploads": [_as_json(u) for u in found]}))
        return
    now = time.time()
    for upload in found:
        typer.echo(
            f"{humanize.utc(upload.created_at)}  {upload.stream_id}  md://{upload.bucket}/"
            f"{upload.key}  (reclaimed {humanize.ago(upload.deadline, now)})"
        )


async def _pending(project: AsyncProject, where: RemotePath) -> list[PendingUploadInfo]:
    """The pending uploads at `where`: to the key it names, or below it as a folder."""
    if where.is_folder:
        return await project.list_uploads(where.bucket, where.folder)
    parent = where.key[: len(where.key) - len(where.name)]
    below = await project.list_uploads(where.bucket, parent)
    return [u for u in below if u.key == where.key]


async def _abort(targets: list[str], as_json: bool) -> None:
    aborted: list[dict[str, str]] = []
    async with current().project() as project:
        for target in targets:
            if _STREAM_ID.fullmatch(target):
                with about(f"upload {target}"):
                    await project.abort_upload(target)
                aborted.append({"stream_id": target})
                continue
            where = parse_remote(target)
            with about(where):
                pending = await _pending(project, where)
                if not pending:
                    raise CliError(f"{where}: no pending upload", status=EXIT_NOT_FOUND)
                for upload in pending:
                    await project.abort_upload(upload.stream_id)
                    aborted.append(
                        {
                            "stream_id": upload.stream_id,
                            "path": f"md://{upload.bucket}/{upload.key}",
                        }
                    )
    if as_json:
        typer.echo(json.dumps({"aborted": aborted}))
        return
    for done in aborted:
        typer.echo(f"aborted {done.get('path', 'upload')} ({done['stream_id']})")


def _as_json(upload: PendingUploadInfo) -> dict[str, object]:
    return {
        "bucket": upload.bucket,
        "key": upload.key,
        "stream_id": upload.stream_id,
        "created_at": upload.created_at,
        "deadline": upload.deadline,
    }
