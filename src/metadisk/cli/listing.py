"""`metadisk mb|rb|ls`: make and remove buckets, list buckets and objects.

Apart from the transfer commands (`metadisk.cli.objects`) so that `ls`, the command people run
most, imports neither the transfer plan nor the progress bars (see `metadisk.cli.main.COMMANDS`).
Listings go to stdout, sorted by name.
"""

from __future__ import annotations

import contextlib
import datetime
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from metadisk.cli import units
from metadisk.cli.context import about, current, run
from metadisk.cli.errors import CliError
from metadisk.cli.remote import RemotePath, check_bucket_name, parse_bucket, parse_remote
from metadisk.client import Conflict, NotFound

if TYPE_CHECKING:
    from metadisk.client import AsyncProject, Bucket, ObjectInfo

Recursive = Annotated[
    bool, typer.Option("--recursive", "-r", help="Everything below a folder or directory.")
]


def register(app: typer.Typer) -> None:
    """Add the bucket and listing commands to the root app."""
    for command in (mb, rb, ls):
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
