"""`metadisk usage` (also `du`): where space went, for the project or below one prefix.

The project's numbers come from the bridge (it counts encrypted bytes, as the limits do); a
prefix's come from a recursive listing (plaintext sizes), as the bridge cannot see names.
"""

from __future__ import annotations

import contextlib
import json
from typing import Annotated

import typer

from metadisk.cli import units
from metadisk.cli.context import about, current, run
from metadisk.cli.remote import parse_remote
from metadisk.wire.api.accounts import ProjectUsage
from metadisk.wire.fields import MAX_U63

Json = Annotated[bool, typer.Option("--json", help="One JSON document instead of lines.")]
Path = Annotated[
    str | None,
    typer.Argument(help="md://bucket or md://bucket/folder/: the size below it (none: project)."),
]


def register(app: typer.Typer) -> None:
    """Add `usage` and its alias `du` to the root app."""
    app.command()(usage)
    app.command("du", help="The same as `metadisk usage`.")(usage)


def usage(path: Path = None, as_json: Json = False) -> None:
    """The project's storage, egress, objects and segments against its limits, or the size of
    everything below an md:// path.

    Project storage counts encrypted bytes (as the limits do); a path's size counts the bytes
    as stored by you. Pending uploads reserve room until they are committed or aborted (see
    `metadisk uploads`).
    """
    remote = parse_remote(path) if path is not None else None

    async def work() -> None:
        async with current().project() as project:
            if remote is None:
                with about("usage"):
                    found = await project.usage()
                typer.echo(json.dumps(found.model_dump()) if as_json else _table(found))
                return
            size = objects = 0
            with about(remote):
                items = project.list_objects(remote.bucket, remote.folder, recursive=True)
                async with contextlib.aclosing(items):
                    async for item in items:
                        size += item.size
                        objects += 1
            where = f"md://{remote.bucket}/{remote.folder}"
            if as_json:
                typer.echo(json.dumps({"path": where, "bytes": size, "objects": objects}))
            else:
                typer.echo(f"{units.size(size, human=True)}  {_count(objects, 'object')}  {where}")

    run(work())


def _table(found: ProjectUsage) -> str:
    used, limits, pending = found.usage, found.limits, found.pending
    rows = [
        ("storage", _of(used.storage_bytes, limits.storage_bytes, sizes=True)),
        ("egress", _of(used.egress_bytes, limits.egress_bytes, sizes=True) + " this month"),
        ("buckets", _of(used.buckets, limits.buckets)),
        ("objects", str(found.objects)),
        ("segments", _of(used.segments, limits.segments)),
        (
            "pending",
            f"{_count(pending.uploads, 'upload')} reserving "
            f"{units.size(pending.storage_bytes, human=True)} and "
            f"{_count(pending.segments, 'segment')}",
        ),
    ]
    return "\n".join(f"{name:<9} {text}" for name, text in rows)


def _of(used: int, limit: int, *, sizes: bool = False) -> str:
    def show(value: int) -> str:
        return units.size(value, human=True) if sizes else str(value)

    if limit >= MAX_U63:  # the bridge's "no limit"
        return f"{show(used)} (no limit)"
    share = f" ({100 * used / limit:.0f}%)" if limit else ""
    return f"{show(used)} of {show(limit)}{share}"


def _count(amount: int, noun: str) -> str:
    return f"{amount} {noun}" if amount == 1 else f"{amount} {noun}s"
