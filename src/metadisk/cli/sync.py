"""`metadisk sync SRC DST`: make DST hold what SRC holds, moving only what differs.

Either side is a local directory or an md:// folder (both md://: a server-side copy). A file is
unchanged when its size and modification time match; uploads store the source file's mtime in
the object's user metadata (key ``mtime``, seconds with nanoseconds) and downloads set it on the
file, so a second run moves nothing. ``--checksum`` compares whole-object BLAKE3 checksums where
the objects carry one. An interrupted sync resumes for free: finished files match and are
skipped, a download lands under its real name only when complete, and an interrupted upload
resumes through the library's resume state, as ``cp`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mimetypes
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from metadisk.cli.context import about, current, run, stderr
from metadisk.cli.errors import CliError, UsageError
from metadisk.cli.progress import FileBar, TransferProgress
from metadisk.cli.remote import RemotePath, is_remote, parse_remote
from metadisk.cli.transfers import first_failure, local_path
from metadisk.client import AsyncProject

MTIME_KEY = "mtime"
# A download in progress, named so listings of the local side never take it for a file.
PART_PREFIX = ".md-sync."
PART_SUFFIX = ".part"
# Clocks and file systems round: mtimes closer than this are the same time.
MTIME_WINDOW_NS = 1_000_000
HASH_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Entry:
    """One file or object of a tree, by its "/"-separated path relative to the tree's root."""

    size: int
    mtime_ns: int | None  # None: an object stored without an mtime (by `cp`, or another tool)
    created_ns: int = 0  # an object's creation time; a file's is its mtime
    checksum: bytes | None = None  # objects only, when the library provides one


@dataclass(frozen=True, slots=True)
class Side:
    """A tree named on the command line: a local directory or a remote folder."""

    local: Path | None
    remote: RemotePath | None

    def __str__(self) -> str:
        return str(self.remote) if self.remote is not None else str(self.local)

    def show(self, relative: str) -> str:
        if self.remote is not None:
            return str(self.remote.join(relative))
        assert self.local is not None
        return str(self.local / relative)


class Filters:
    """rclone-like --include/--exclude globs.

    A pattern starting with "/" matches from the root of the tree; any other pattern matches the
    end of a path at a "/" boundary ("*.jpg" matches "a/b.jpg"). "*" and "?" stay within one
    path component, "**" crosses them. A path matching any --exclude is left out; with
    --include, only paths matching one of them are taken. Left-out paths are neither copied
    nor deleted.
    """

    def __init__(self, include: Sequence[str], exclude: Sequence[str]) -> None:
        self._include = [_compile(p) for p in include]
        self._exclude = [_compile(p) for p in exclude]

    def wants(self, relative: str) -> bool:
        if any(rule.search(relative) for rule in self._exclude):
            return False
        return not self._include or any(rule.search(relative) for rule in self._include)


def _compile(pattern: str) -> re.Pattern[str]:
    if not pattern or pattern == "/":
        raise UsageError(f"empty filter pattern {pattern!r}")
    anchored = pattern.startswith("/")
    body = pattern.lstrip("/")
    out, i = [], 0
    while i < len(body):
        if body.startswith("**", i):
            out.append(".*")
            i += 2
        elif body[i] == "*":
            out.append("[^/]*")
            i += 1
        elif body[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(body[i]))
            i += 1
    return re.compile(("^" if anchored else "(?:^|/)") + "".join(out) + "$")


# -- listing ----------------------------------------------------------------------------------


def _side(text: str) -> Side:
    if is_remote(text):
        remote = parse_remote(text)
        return Side(None, RemotePath(remote.bucket, remote.folder))
    return Side(Path(text), None)


def _walk_local(root: Path) -> dict[str, Entry]:
    if not root.exists():
        return {}
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory (sync works on directories and folders)")
    found: dict[str, Entry] = {}
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name.startswith(PART_PREFIX) and name.endswith(PART_SUFFIX):
                continue  # a download a killed sync left behind
            path = Path(directory, name)
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                if path.is_file():
                    relative = path.relative_to(root).as_posix()
                    found[relative] = Entry(st.st_size, st.st_mtime_ns, st.st_mtime_ns)
    return found


async def _list_remote(project: AsyncProject, folder: RemotePath) -> dict[str, Entry]:
    found: dict[str, Entry] = {}
    with about(folder):
        items = project.list_objects(folder.bucket, folder.folder, recursive=True)
        async with contextlib.aclosing(items):
            async for item in items:
                if item.is_prefix:
                    continue
                relative = item.key[len(folder.folder) :]
                checksum = getattr(item, "checksum", None)  # newer libraries only
                found[relative] = Entry(
                    item.size,
                    _parse_mtime(item.metadata.get(MTIME_KEY)),
                    item.created_at * 1_000_000_000,
                    checksum if isinstance(checksum, bytes) else None,
                )
    return found


async def _list(project: AsyncProject, side: Side) -> dict[str, Entry]:
    if side.remote is not None:
        return await _list_remote(project, side.remote)
    assert side.local is not None
    return await asyncio.to_thread(_walk_local, side.local)


def _format_mtime(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def _parse_mtime(text: str | None) -> int | None:
    if text is None:
        return None
    whole, _, fraction = text.partition(".")
    try:
        return int(whole) * 1_000_000_000 + int((fraction + "000000000")[:9] or "0")
    except ValueError:
        return None  # written by something else: treat as absent


# -- comparing --------------------------------------------------------------------------------


def _file_blake3(path: Path) -> bytes:
    import blake3  # only --checksum needs it; keep the CLI's start-up light

    hasher = blake3.blake3()
    with path.open("rb") as file:
        while chunk := file.read(HASH_CHUNK):
            hasher.update(chunk)
    return bytes(hasher.digest())


def _same_time(source: Entry, target: Entry) -> bool:
    source_ns = source.mtime_ns if source.mtime_ns is not None else source.created_ns
    if target.mtime_ns is None:
        # Stored by a tool that keeps no mtime: unchanged if written after the source changed.
        return target.created_ns >= source_ns - MTIME_WINDOW_NS
    return abs(source_ns - target.mtime_ns) <= MTIME_WINDOW_NS


@dataclass
class Plan:
    transfers: list[str]
    deletes: list[str]
    unchanged: int
    fallback: int  # --checksum comparisons that fell back to size and mtime


async def _plan(
    src: Side,
    dst: Side,
    source: dict[str, Entry],
    target: dict[str, Entry],
    *,
    checksum: bool,
    delete: bool,
) -> Plan:
    plan = Plan([], [], 0, 0)
    for relative in sorted(source):
        have, want = target.get(relative), source[relative]
        if have is None or have.size != want.size:
            plan.transfers.append(relative)
            continue
        if checksum:
            mine = await _checksum_of(src, relative, want)
            theirs = await _checksum_of(dst, relative, have)
            if mine is not None and theirs is not None:
                if mine != theirs:
                    plan.transfers.append(relative)
                else:
                    plan.unchanged += 1
                continue
            plan.fallback += 1
        if _same_time(want, have):
            plan.unchanged += 1
        else:
            plan.transfers.append(relative)
    if delete:
        plan.deletes = sorted(set(target) - set(source))
    return plan


async def _checksum_of(side: Side, relative: str, entry: Entry) -> bytes | None:
    if side.local is not None:
        return await asyncio.to_thread(_file_blake3, side.local / relative)
    return entry.checksum


# -- doing ------------------------------------------------------------------------------------


async def _upload(
    project: AsyncProject, path: Path, target: RemotePath, bar: FileBar, uploads_dir: Path
) -> None:
    stat = await asyncio.to_thread(path.stat)
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    # The same resume dir as `cp` would use for this (file, destination).
    absolute = await asyncio.to_thread(path.absolute)
    identity = f"{absolute}\0{target}".encode()
    resume_dir = uploads_dir / hashlib.blake2b(identity, digest_size=16).hexdigest()
    await project.upload(
        target.bucket,
        target.key,
        str(path),
        content_type=content_type,
        metadata={MTIME_KEY: _format_mtime(stat.st_mtime_ns)},
        progress=bar.update,
        resume_dir=resume_dir,
    )
    with contextlib.suppress(OSError):  # done: the library removed its state; drop the dir
        resume_dir.rmdir()


async def _download(
    project: AsyncProject, source: RemotePath, path: Path, entry: Entry, bar: FileBar
) -> None:
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=PART_PREFIX, suffix=PART_SUFFIX)
    os.close(fd)
    try:
        await project.download(source.bucket, source.key, temp, progress=bar.update)
        mtime = entry.mtime_ns if entry.mtime_ns is not None else entry.created_ns
        os.utime(temp, ns=(mtime, mtime))
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


async def _execute(
    project: AsyncProject,
    src: Side,
    dst: Side,
    plan: Plan,
    source: dict[str, Entry],
    *,
    parallelism: int,
    uploads_dir: Path,
    report: Callable[[str], None],
) -> None:
    gate = asyncio.Semaphore(parallelism)
    total = sum(source[r].size for r in plan.transfers)

    async def transfer(relative: str, bars: TransferProgress) -> None:
        entry = source[relative]
        async with gate:
            bar = bars.file(relative, entry.size)
            if src.local is not None:
                assert dst.remote is not None
                target = dst.remote.join(relative)
                with about(target):
                    await _upload(project, src.local / relative, target, bar, uploads_dir)
            elif dst.local is not None:
                assert src.remote is not None
                origin = src.remote.join(relative)
                with about(origin):
                    path = local_path(dst.local, relative)
                    await _download(project, origin, path, entry, bar)
            else:
                assert src.remote is not None and dst.remote is not None
                origin, target = src.remote.join(relative), dst.remote.join(relative)
                with about(origin):
                    await project.copy(origin.bucket, origin.key, target.bucket, target.key)
                bar.update(entry.size, entry.size)
            bar.finish()
            report(f"copied {src.show(relative)} -> {dst.show(relative)}")

    async def remove(relative: str) -> None:
        async with gate:
            if dst.remote is not None:
                target = dst.remote.join(relative)
                with about(target):
                    await project.delete(target.bucket, target.key)
            else:
                assert dst.local is not None
                await asyncio.to_thread(local_path(dst.local, relative).unlink, missing_ok=True)
            report(f"deleted {dst.show(relative)}")

    files = len(plan.transfers)
    with TransferProgress(stderr(), files=max(files, 1), total_bytes=total) as bars:
        await first_failure([transfer(r, bars) for r in plan.transfers])
    # Deletes only once every transfer succeeded, so a failed sync never leaves less than before.
    await first_failure([remove(r) for r in plan.deletes])


def register(app: typer.Typer) -> None:
    """Add `sync` to the root app."""
    app.command()(sync)


def sync(
    src: Annotated[str, typer.Argument(help="A local directory or md://bucket/folder.")],
    dst: Annotated[str, typer.Argument(help="A local directory or md://bucket/folder.")],
    delete: Annotated[
        bool, typer.Option("--delete", help="Remove from DST what is not in SRC.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Print what would happen; change nothing.")
    ] = False,
    checksum: Annotated[
        bool,
        typer.Option(
            "--checksum", "-c", help="Compare checksums, not modification times, where known."
        ),
    ] = False,
    include: Annotated[
        list[str] | None,
        typer.Option("--include", help="Only paths matching this glob (repeatable)."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="Leave out paths matching this glob (repeatable)."),
    ] = None,
    parallelism: Annotated[
        int, typer.Option("--parallelism", "-p", min=1, max=64, help="Files moved at once.")
    ] = 4,
) -> None:
    """Make DST the same as SRC, copying only new and changed files.

    SRC's contents go into DST (rsync's "SRC/"). A file is unchanged when its size and
    modification time match, or with --checksum when the checksums match (objects without a
    checksum fall back to size and time, and the output says so). Running the same sync again
    after an interruption moves only what is missing.

    Filters (rclone-like): `*` and `?` match within a path component, `**` across them. A
    pattern starting with `/` matches from the top of the tree, any other the end of a path
    (`*.log` matches `a/b.log`). Exclusions win over inclusions; with --include only matching
    paths are synced. Paths left out are neither copied nor deleted.

    Example: `metadisk sync --delete --exclude '*.tmp' ~/photos md://backup/photos/`
    """
    source_side, target_side = _side(src), _side(dst)
    if source_side.local is not None and target_side.local is not None:
        raise UsageError("SRC or DST must be an md:// path (use rsync for two local directories)")
    filters = Filters(include or [], exclude or [])
    context = current()

    async def work() -> None:
        if source_side.local is not None and not source_side.local.is_dir():
            what = "not a directory" if source_side.local.exists() else "No such directory"
            raise CliError(f"{source_side.local}: {what}", status=2)
        async with context.project() as project:
            source, target = await asyncio.gather(
                _list(project, source_side), _list(project, target_side)
            )
            if not source and delete and target:
                # A mistyped md:// folder lists as empty: never read that as "delete it all".
                raise CliError(
                    f"{source_side} is empty or missing: refusing to --delete everything in "
                    f"{target_side}",
                    status=1,
                )
            source = {r: e for r, e in source.items() if filters.wants(r)}
            target = {r: e for r, e in target.items() if filters.wants(r)}
            plan = await _plan(
                source_side, target_side, source, target, checksum=checksum, delete=delete
            )
            if plan.fallback:
                stderr().print(
                    f"note: {plan.fallback} object(s) carry no checksum: compared by size and "
                    "modification time instead",
                    soft_wrap=True,
                )
            if dry_run:
                for relative in plan.transfers:
                    typer.echo(
                        f"would copy {source_side.show(relative)} -> {target_side.show(relative)}"
                    )
                for relative in plan.deletes:
                    typer.echo(f"would delete {target_side.show(relative)}")
            else:
                await _execute(
                    project,
                    source_side,
                    target_side,
                    plan,
                    source,
                    parallelism=parallelism,
                    uploads_dir=context.uploads_dir,
                    report=typer.echo,
                )
            verb = "would copy" if dry_run else "copied"
            stderr().print(
                f"sync: {verb} {len(plan.transfers)}, unchanged {plan.unchanged}, "
                f"{'would delete' if dry_run else 'deleted'} {len(plan.deletes)}",
                soft_wrap=True,
            )

    run(work())
