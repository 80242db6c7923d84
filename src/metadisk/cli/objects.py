"""`metadisk mb|rb|ls|cp|mv|rm|cat|share`: buckets and objects under the configured grant.

Remote paths look like ``md://bucket/path``. Data goes to stdout (``cat``, ``share``'s grant,
listings); progress and notes go to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import time
from dataclasses import dataclass
from typing import Annotated

import typer

from metadisk.cli import grants, units
from metadisk.cli.context import about, current, run, stderr
from metadisk.cli.errors import EXIT_INTERRUPTED, CliError, UsageError
from metadisk.cli.progress import TransferProgress
from metadisk.cli.remote import (
    RemotePath,
    check_bucket_name,
    parse_bucket,
    parse_object,
    parse_remote,
)
from metadisk.cli.transfers import (
    STDIO,
    Upload,
    execute,
    first_failure,
    folder_meant,
    plan,
    upload_stdin,
    write_stdout,
)
from metadisk.client import AsyncProject, Bucket, Conflict, NotFound, ObjectInfo

Parallelism = Annotated[
    int, typer.Option("--parallelism", "-p", min=1, max=64, help="Objects moved at once.")
]
Recursive = Annotated[
    bool, typer.Option("--recursive", "-r", help="Everything below a folder or directory.")
]


def register(app: typer.Typer) -> None:
    """Add the object commands to the root app."""
    for command in (mb, rb, ls, cp, mv, rm, cat, share):
        app.command()(command)


def mb(
    bucket: Annotated[str, typer.Argument(help="The bucket to make, as md://name.")],
    profile: Annotated[
        str | None, typer.Option(help="Redundancy profile (the bridge's default if not given).")
    ] = None,
) -> None:
    """Make a bucket."""
    name = parse_bucket(bucket)
    check_bucket_name(name)

    async def work() -> None:
        async with current().project() as project:
            with about(f"md://{name}"):
                made = await project.create_bucket(name, profile=profile)
        scheme = made.redundancy
        typer.echo(
            f"made md://{made.name} ({made.profile}: any {scheme.k} of {scheme.n} pieces rebuild)"
        )

    run(work())


def rb(
    bucket: Annotated[str, typer.Argument(help="The bucket to remove, as md://name.")],
    force: Annotated[bool, typer.Option(help="Also delete every object in it.")] = False,
) -> None:
    """Remove a bucket (it must be empty unless --force)."""
    name = parse_bucket(bucket)

    async def work() -> None:
        async with current().project() as project:
            try:
                with about(f"md://{name}"):
                    await project.delete_bucket(name, force=force)
            except CliError as exc:
                if isinstance(exc.__cause__, Conflict) and exc.__cause__.code == "bucket-not-empty":
                    raise CliError(
                        f"md://{name} is not empty (add --force to delete it and its objects)",
                        status=exc.status,
                    ) from exc
                raise
        typer.echo(f"removed md://{name}")

    run(work())


def ls(
    path: Annotated[
        str | None, typer.Argument(help="md://bucket or md://bucket/folder (none: buckets).")
    ] = None,
    recursive: Recursive = False,
    long: Annotated[
        bool, typer.Option("--long", "-l", help="Also the content type of each object.")
    ] = False,
    human: Annotated[
        bool, typer.Option("--human-readable", "-h", help="Sizes in KiB, MiB, GiB.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document instead of lines.")
    ] = False,
) -> None:
    """List buckets, or the objects and folders in a bucket or folder.

    A folder with nothing in it lists nothing.
    """
    remote = parse_remote(path) if path is not None else None
    style = _Style(long=long, human=human)

    async def work() -> None:
        async with current().project() as project:
            if remote is None:
                with about("buckets"):
                    buckets = await project.list_buckets()
                if as_json:
                    typer.echo(json.dumps({"buckets": [_bucket_json(b) for b in buckets]}))
                    return
                for bucket in buckets:
                    scheme = bucket.redundancy
                    redundancy = f"{scheme.k}/{scheme.m}/{scheme.o}/{scheme.n}"
                    typer.echo(
                        f"{_when(bucket.created_at)}  {bucket.profile:>8} {redundancy:>12}  "
                        f"md://{bucket.name}"
                    )
                return
            with about(remote):
                found = await _list(project, remote, recursive)
            if as_json:
                document = {
                    "bucket": remote.bucket,
                    "prefix": remote.folder,
                    "objects": [_object_json(item) for item, _ in found],
                }
                typer.echo(json.dumps(document))
                return
            for item, name in found:
                typer.echo(_line(item, name, style))

    run(work())


@dataclass(frozen=True, slots=True)
class _Style:
    long: bool = False
    human: bool = False


async def _list(
    project: AsyncProject, remote: RemotePath, recursive: bool
) -> list[tuple[ObjectInfo, str]]:
    # The bridge lists in the order of the *encrypted* names, which looks random: collect the
    # folder and return it sorted by name, as people expect from ls.
    found: list[ObjectInfo] = []
    items = project.list_objects(remote.bucket, remote.folder, recursive=recursive)
    async with contextlib.aclosing(items):
        async for item in items:
            found.append(item)
    if not found and not remote.is_folder:
        # Nothing below "x/": the path may name one object, or nothing at all (an empty or
        # unknown folder), which lists nothing, as `ls` of an empty directory does.
        try:
            return [(await project.stat(remote.bucket, remote.key), remote.name)]
        except NotFound as exc:
            if exc.code == "bucket-not-found":
                raise
            return []
    return [(i, i.key[len(remote.folder) :]) for i in sorted(found, key=lambda i: i.key)]


def _line(item: ObjectInfo, name: str, style: _Style = _Style()) -> str:
    width = 10 if style.human else 12
    if item.is_prefix:
        line = f"{'':16}  {'PRE':>{width}}  "
        return line + (f"{'':24}  {name}" if style.long else name)
    line = f"{_when(item.created_at)}  {units.size(item.size, human=style.human):>{width}}  "
    if style.long:
        line += f"{item.content_type or '-':24}  "
    return line + name


def _when(moment: int) -> str:
    return datetime.datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M")


def _object_json(item: ObjectInfo) -> dict[str, object]:
    if item.is_prefix:
        return {"key": item.key, "is_prefix": True}
    return {
        "key": item.key,
        "is_prefix": False,
        "size": item.size,
        "modified": item.created_at,
        "content_type": item.content_type,
        "segments": item.segment_count,
        "metadata": dict(item.metadata),
    }


def _bucket_json(bucket: Bucket) -> dict[str, object]:
    scheme = bucket.redundancy
    return {
        "name": bucket.name,
        "created_at": bucket.created_at,
        "profile": bucket.profile,
        "redundancy": {"k": scheme.k, "m": scheme.m, "o": scheme.o, "n": scheme.n},
    }


Sources = Annotated[
    list[str],
    typer.Argument(
        metavar="SRC",
        help="Local paths or md://bucket/paths; '-' reads stdin.",
        show_default=False,
    ),
]
Destination = Annotated[
    str, typer.Argument(metavar="DST", help="A local path or md://bucket/path; '-' is stdout.")
]


def cp(
    src: Sources, dst: Destination, recursive: Recursive = False, parallelism: Parallelism = 4
) -> None:
    """Copy files to metadisk, objects from it, or objects within it.

    As with POSIX cp, a destination that is a folder (ending in "/", a bare md://bucket, an
    existing directory or folder, or the destination of several sources) receives each source
    under its own name: `cp -r src md://b/` gives md://b/src/... . "-" streams: `tar c dir |
    metadisk cp - md://b/dir.tar` and `metadisk cp md://b/dir.tar - | tar x`. An interrupted
    upload of a file resumes when the same command runs again.
    """
    _transfer(src, dst, recursive=recursive, parallelism=parallelism, move=False)


def mv(
    src: Sources, dst: Destination, recursive: Recursive = False, parallelism: Parallelism = 4
) -> None:
    """Move: like cp, then remove each source once its copy is complete."""
    _transfer(src, dst, recursive=recursive, parallelism=parallelism, move=True)


def _transfer(
    sources: list[str], dst: str, *, recursive: bool, parallelism: int, move: bool
) -> None:
    if STDIO in (*sources, dst):
        _stream(sources, dst, move=move)
        return
    context = current()
    resumable = False

    async def work() -> None:
        nonlocal resumable
        async with context.project() as project:
            jobs = await plan(project, sources, dst, recursive=recursive)
            if not jobs:
                raise CliError(f"nothing to copy: {' '.join(sources)} is empty", status=1)
            resumable = any(isinstance(job, Upload) for job in jobs)
            total = sum(job.size for job in jobs)
            with TransferProgress(stderr(), files=len(jobs), total_bytes=total) as bars:
                await execute(
                    project,
                    jobs,
                    move=move,
                    parallelism=parallelism,
                    bars=bars,
                    uploads_dir=context.uploads_dir,
                    report=bars.report,
                )

    try:
        run(work())
    except KeyboardInterrupt:
        if not resumable:
            raise
        # What was stored is kept (the resume state in the config dir names it).
        raise CliError(
            "interrupted; run the same command again to resume the upload where it stopped",
            status=EXIT_INTERRUPTED,
        ) from None


def _stream(sources: list[str], dst: str, *, move: bool) -> None:
    """`cp - md://b/key` (stdin up) or `cp md://b/key -` (the object to stdout)."""
    if move:
        raise UsageError("mv cannot stream: use cp with '-'")
    if len(sources) != 1 or (sources[0] == STDIO) == (dst == STDIO):
        raise UsageError("'-' goes alone: cp - md://bucket/key, or cp md://bucket/key -")
    if sources[0] == STDIO:
        target = parse_remote(dst)

        async def up() -> None:
            async with current().project() as project:
                with TransferProgress(stderr(), files=1) as bars:
                    size = await upload_stdin(project, target, bars)
            typer.echo(f"copied - -> {target} ({size} bytes)")

        run(up())
        return
    source = parse_object(sources[0])

    async def down() -> None:
        async with current().project() as project:
            await write_stdout(project, source, offset=0, length=None)

    run(down())  # a reader that goes away (`| head`) is handled at the edge, like `ls | head`


def rm(
    path: Annotated[str, typer.Argument(help="md://bucket/key, or a folder with --recursive.")],
    recursive: Recursive = False,
    parallelism: Parallelism = 8,
) -> None:
    """Remove an object, or with --recursive everything below a folder."""
    remote = parse_remote(path)
    if remote.is_folder and not recursive:
        raise UsageError(f"{remote} is a folder or bucket (add --recursive)")

    async def work() -> None:
        async with current().project() as project:
            targets = [remote]
            if recursive:
                with about(remote):
                    targets = [
                        RemotePath(remote.bucket, item.key)
                        async for item in project.list_objects(
                            remote.bucket, remote.folder, recursive=True
                        )
                        if not item.is_prefix
                    ]
                if not remote.is_folder:
                    with contextlib.suppress(NotFound):  # "x" may be a folder only
                        await project.stat(remote.bucket, remote.key)
                        targets.append(remote)
                if not targets:
                    raise CliError(f"{remote}: nothing to remove", status=3)
            gate = asyncio.Semaphore(parallelism)

            async def remove(target: RemotePath) -> None:
                async with gate:
                    try:
                        with about(target):
                            await project.delete(target.bucket, target.key)
                    except CliError as exc:
                        if not recursive and await folder_meant(project, target, exc):
                            raise UsageError(
                                f"{target} is a folder, not an object (to remove everything in "
                                f"it: metadisk rm --recursive {target}/)"
                            ) from exc
                        raise
                    typer.echo(f"removed {target}")

            await first_failure([remove(target) for target in targets])

    run(work())


def cat(
    path: Annotated[str, typer.Argument(help="md://bucket/key")],
    offset: Annotated[int, typer.Option(min=0, help="First byte to write.")] = 0,
    length: Annotated[
        int | None, typer.Option(min=0, help="Bytes to write (default: to the end).")
    ] = None,
) -> None:
    """Write an object (or a byte range of it) to stdout."""
    remote = parse_object(path)

    async def work() -> None:
        async with current().project() as project:
            await write_stdout(project, remote, offset=offset, length=length)

    run(work())  # a reader that goes away (`| head`) is handled at the edge, like `ls | head`


def share(
    paths: Annotated[
        list[str], typer.Argument(help="Folders to share: md://bucket or md://bucket/folder.")
    ],
    readonly: Annotated[
        bool, typer.Option("--readonly", help="Read and list only (the default).")
    ] = False,
    write: Annotated[
        bool, typer.Option("--write", help="Also upload, replace and delete.")
    ] = False,
    expires: Annotated[
        str | None, typer.Option(help="Lifetime, e.g. 30m, 24h or 7d (default: never).")
    ] = None,
) -> None:
    """Print a grant that reaches some folders only, to give to someone.

    They import it with `metadisk setup --grant GRANT`, and get those folders' keys and nothing
    above or beside them. Revoke it with `metadisk access revoke GRANT`.
    """
    folders = [parse_remote(p) for p in paths]
    allowed = grants.Allowed.from_flags(readonly=readonly, write=write)
    not_after = int(time.time()) + grants.parse_duration(expires) if expires else None
    context = current()
    grant = context.config().access_grant(context.config_dir)
    shared = grants.restrict(grant, folders, allowed, not_after=not_after)
    typer.echo(shared.serialize())
    where = ", ".join(str(RemotePath(f.bucket, f.folder)) for f in folders)
    until = "never expires" if not_after is None else f"expires {grants.describe_time(not_after)}"
    stderr().print(f"shared {where}: {', '.join(allowed.names())}; {until}", soft_wrap=True)
