"""`metadisk stat md://bucket/key`: what the bridge and the sealed metadata say about one object.

Objects are never changed in place (every write stores a new version), so an object's
modification time is the time its version was stored: ``modified`` equals ``created``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from metadisk.cli.context import about, current, run
from metadisk.cli.humanize import utc
from metadisk.cli.remote import parse_object
from metadisk.client import ObjectInfo


def register(app: typer.Typer) -> None:
    """Add `stat` to the root app."""
    app.command()(stat)


def stat(
    path: Annotated[str, typer.Argument(help="The object, as md://bucket/key.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show an object's size, times, content type, metadata, segments, redundancy and checksum."""
    remote = parse_object(path)

    async def work() -> ObjectInfo:
        async with current().project() as project:
            with about(f"md://{remote.bucket}/{remote.key}"):
                return await project.stat(remote.bucket, remote.key)

    info = run(work())
    facts = describe(info)
    if as_json:
        typer.echo(json.dumps(facts, sort_keys=True))
        return
    scheme, checksum = facts["redundancy"], facts["checksum"]
    lines = [
        ("object", f"md://{info.bucket}/{info.key}"),
        ("size", f"{info.size:,} bytes"),
        ("created", utc(info.created_at)),
        ("modified", utc(info.created_at)),
        ("content type", info.content_type),
        ("segments", str(info.segment_count)),
        (
            "redundancy",
            "inline at the bridge"
            if scheme is None
            else "k={k} m={m} o={o} n={n}".format(**scheme),
        ),
        (
            "checksum",
            "none (stored before checksums)" if checksum is None else f"blake3:{checksum}",
        ),
    ]
    lines += [(f"meta {name}", value) for name, value in sorted(info.metadata.items())]
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        typer.echo(f"{label + ':':<{width + 1}} {value}")


def describe(info: ObjectInfo) -> dict[str, Any]:
    """The object as `stat --json` prints it (times in unix seconds, checksum in hex)."""
    scheme = info.redundancy
    return {
        "bucket": info.bucket,
        "key": info.key,
        "size": info.size,
        "created": info.created_at,
        "modified": info.created_at,
        "content_type": info.content_type,
        "metadata": dict(info.metadata),
        "segments": info.segment_count,
        "redundancy": None
        if scheme is None
        else {"k": scheme.k, "m": scheme.m, "o": scheme.o, "n": scheme.n},
        "checksum": None if info.checksum is None else info.checksum.hex(),
        "checksum_algorithm": "blake3-256",
    }
