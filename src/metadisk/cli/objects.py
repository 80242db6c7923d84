"""`metadisk cp|mv|rm|cat|share`: objects under the configured grant (`ls`, `mb` and `rb` are in
`metadisk.cli.listing`).

Remote paths look like ``md://bucket/path``. Data goes to stdout (``cat``, ``share``'s grant);
progress and notes go to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated

import typer

from metadisk.cli import grants
from metadisk.cli.context import about, current, run, stderr
from metadisk.cli.errors import EXIT_INTERRUPTED, CliError, UsageError
from metadisk.cli.listing import Recursive
from metadisk.cli.progress import TransferProgress
from metadisk.cli.remote import RemotePath, parse_object, parse_remote
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
from metadisk.client import NotFound

Parallelism = Annotated[
    int, typer.Option("--parallelism", "-p", min=1, max=64, help="Objects moved at once.")
]


def register(app: typer.Typer) -> None:
    """Add the transfer and object commands to the root app."""
    for command in (cp, mv, rm, cat, share):
        app.command()(command)


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
