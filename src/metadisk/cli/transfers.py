"""Planning and running copies and moves: local <-> md:// and md:// -> md://.

`plan` turns the SRC and DST a user typed into a list of jobs (one per object), checking
everything it can before any byte moves; `execute` runs them a few at a time with progress bars
and stops at the first failure. Downloads land in a temporary file that is renamed into place
only when complete, so a failed or interrupted download never leaves a truncated file under the
real name. Uploads of files keep resume state in the config dir, so running the same ``cp``
again after an interruption sends only what is missing (where the bridge supports it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mimetypes
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from metadisk.cli.context import about
from metadisk.cli.errors import EXIT_NOT_FOUND, CliError, UsageError
from metadisk.cli.progress import FileBar, TransferProgress
from metadisk.cli.remote import RemotePath, is_remote, parse_remote
from metadisk.client import AsyncProject, ClientError, NotFound


@dataclass(frozen=True, slots=True)
class Upload:
    source: Path
    target: RemotePath
    size: int


@dataclass(frozen=True, slots=True)
class Download:
    source: RemotePath
    target: Path
    size: int


@dataclass(frozen=True, slots=True)
class Copy:
    source: RemotePath
    target: RemotePath
    size: int


Job = Upload | Download | Copy


async def plan(
    project: AsyncProject, sources: Sequence[str], dst: str, *, recursive: bool
) -> list[Job]:
    """The jobs that copy `sources` to `dst`, named as POSIX ``cp`` would name the results.

    A destination that is a folder (``md://b``, ``md://b/dir/``, a folder that already holds
    objects, an existing local directory, a path ending in "/", or any destination of several
    sources) receives each source under its own name: ``cp -r src md://b/`` gives
    ``md://b/src/...``. Otherwise the destination is the new name: ``cp -r src md://b/dst``
    gives ``md://b/dst/...``, as ``cp -r src dst`` does when dst does not exist.
    """
    if not sources:
        raise UsageError("nothing to copy: give SRC... DST")
    several = len(sources) > 1
    if is_remote(dst):
        target = parse_remote(dst)
        await _check_bucket(project, target.bucket)
        into = several or target.is_folder or await is_folder(project, target)
    else:
        destination = Path(dst)
        into = several or dst.endswith(("/", os.sep)) or await asyncio.to_thread(destination.is_dir)
    jobs: list[Job] = []
    for src in sources:
        if not is_remote(src) and not is_remote(dst):
            raise UsageError(
                "SRC or DST must be an md:// path (use your shell's cp for local files)"
            )
        if not is_remote(src):
            # A directory walk blocks; nothing else runs yet, but keep the loop free on principle.
            found = await asyncio.to_thread(_local_sources, Path(src), recursive=recursive)
            jobs += [
                Upload(path, _remote_name(target, name, into), size) for path, name, size in found
            ]
            continue
        objects = await _remote_sources(project, parse_remote(src), recursive=recursive)
        if is_remote(dst):
            jobs += [
                Copy(obj, _remote_name(target, name, into), size) for obj, name, size in objects
            ]
        else:
            jobs += [
                Download(obj, _local_name(destination, name, into), size)
                for obj, name, size in objects
            ]
    return jobs


def _remote_name(target: RemotePath, name: str, into: bool) -> RemotePath:
    """Where a source called `name` ("tree/rel/path" for a folder's files) lands in `target`."""
    if into:
        return target.join(name)
    _, _, below = name.partition("/")  # the destination renames the top of a tree
    return target.join(below) if below else target


def _local_name(destination: Path, name: str, into: bool) -> Path:
    if into:
        return local_path(destination, name)
    _, _, below = name.partition("/")
    return local_path(destination, below) if below else destination


async def _check_bucket(project: AsyncProject, bucket: str) -> None:
    """Refuse a missing destination bucket by name, before any byte moves.

    Without this an upload into it fails at its first request with the bridge's
    ``upload-not-found``, which does not say that the bucket is what is missing.
    """
    try:
        await project.get_bucket(bucket)
    except NotFound as exc:
        raise CliError(
            f"no bucket md://{bucket} (make it with: metadisk mb md://{bucket})",
            status=EXIT_NOT_FOUND,
        ) from exc
    except ClientError:
        # Not ours to judge here (a grant that may not read the bucket's record can still
        # write below it): the transfer itself reports what is wrong.
        pass


async def _any_below(project: AsyncProject, target: RemotePath) -> bool:
    with about(target):
        items = project.list_objects(target.bucket, target.folder)
        async with contextlib.aclosing(items):
            async for _ in items:
                return True
    return False


def _local_sources(source: Path, *, recursive: bool) -> list[tuple[Path, str, int]]:
    """(file, name, size) of each file `source` names; a directory's files are "dir/rel"."""
    if source.is_dir():
        if not recursive:
            raise UsageError(f"{source} is a directory (add --recursive)")
        top = source.resolve().name if source.name in ("", ".", "..") else source.name
        found = []
        for root, dirs, files in os.walk(source):
            dirs.sort()  # walk in a stable order, so output and progress are predictable
            for name in sorted(files):
                path = Path(root, name)
                if path.is_file():  # skip sockets, fifos and dangling links
                    relative = path.relative_to(source).as_posix()
                    found.append((path, f"{top}/{relative}", path.stat().st_size))
        return found
    size = source.stat().st_size  # FileNotFoundError becomes "SRC: No such file or directory"
    if not source.is_file():
        raise UsageError(f"{source} is not a regular file")
    return [(source, source.name, size)]


async def _remote_sources(
    project: AsyncProject, source: RemotePath, *, recursive: bool
) -> list[tuple[RemotePath, str, int]]:
    """(object, name, size) of each object `source` names; a folder's objects are "dir/rel"."""
    with about(source):
        if recursive:
            top = source.folder.rstrip("/").rsplit("/", 1)[-1] or source.bucket
            found = []
            async for item in project.list_objects(source.bucket, source.folder, recursive=True):
                if not item.is_prefix:
                    relative = item.key[len(source.folder) :]
                    found.append(
                        (RemotePath(source.bucket, item.key), f"{top}/{relative}", item.size)
                    )
            if found or source.is_folder:
                return found
            # "md://b/x" with nothing below "x/": the object x itself
        elif source.is_folder:
            raise UsageError(f"{source} is a folder (add --recursive)")
        info = await project.stat(source.bucket, source.key)
        return [(source, source.name, info.size)]


def local_path(directory: Path, relative: str) -> Path:
    """`directory` / `relative`, refusing names that would land outside `directory`.

    Object names are whatever their writer chose, and a shared folder may come from someone
    else: "../../.bashrc" must not become a path.
    """
    parts = relative.split("/")
    if any(part in ("", ".", "..") or "\x00" in part or os.sep in part for part in parts):
        raise CliError(f"refusing to write object {relative!r}: it is not a safe file name")
    return directory.joinpath(*parts)


async def execute(
    project: AsyncProject,
    jobs: Sequence[Job],
    *,
    move: bool,
    parallelism: int,
    bars: TransferProgress,
    uploads_dir: Path,
    report: Callable[[str], None],
) -> None:
    """Run `jobs`, `parallelism` at a time; with `move`, remove each source once copied."""
    gate = asyncio.Semaphore(parallelism)
    verb = "moved" if move else "copied"

    async def one(job: Job) -> None:
        async with gate:
            bar = bars.file(_label(job), job.size)
            with about(job.target if isinstance(job, Upload) else job.source):
                if isinstance(job, Upload):
                    await _upload(project, job, bar, uploads_dir, move=move)
                elif isinstance(job, Download):
                    await _download(project, job, bar, move=move)
                else:
                    await _copy(project, job, bar, move=move)
            bar.finish()
            report(f"{verb} {job.source} -> {job.target}")

    await first_failure([one(job) for job in jobs])


async def first_failure(work: Sequence[Awaitable[None]]) -> None:
    """Await all of `work`; on the first error cancel the rest and raise that error alone."""
    tasks = [asyncio.ensure_future(item) for item in work]
    if not tasks:
        return
    try:
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:  # cancelled (Ctrl-C): stop everything before leaving
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            error = task.exception()
            assert error is not None
            raise error


async def _upload(
    project: AsyncProject, job: Upload, bar: FileBar, uploads_dir: Path, *, move: bool
) -> None:
    content_type = mimetypes.guess_type(job.source.name)[0] or "application/octet-stream"
    # One resume dir per (file, destination): the library keeps its state file in it, and the
    # CLI can drop the whole dir without knowing that file's name or format.
    identity = f"{job.source.absolute()}\0{job.target}".encode()
    resume_dir = uploads_dir / hashlib.blake2b(identity, digest_size=16).hexdigest()

    await project.upload(
        job.target.bucket,
        job.target.key,
        str(job.source),
        content_type=content_type,
        progress=bar.update,
        resume_dir=resume_dir,
    )
    with contextlib.suppress(OSError):  # done: the library removed its state; drop the dir
        resume_dir.rmdir()
    if move:
        await asyncio.to_thread(job.source.unlink)


async def _download(project: AsyncProject, job: Download, bar: FileBar, *, move: bool) -> None:
    target = job.target
    await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    try:
        await project.download(job.source.bucket, job.source.key, temp, progress=bar.update)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if move:
        await project.delete(job.source.bucket, job.source.key)


async def _copy(project: AsyncProject, job: Copy, bar: FileBar, *, move: bool) -> None:
    # Server-side: segment keys are re-wrapped for the new name and no piece moves.
    source, target = job.source, job.target
    if move:
        await project.move(source.bucket, source.key, target.bucket, target.key)
    else:
        await project.copy(source.bucket, source.key, target.bucket, target.key)
    bar.update(job.size, job.size)


STDIO = "-"
_CHUNK = 1 << 20  # what one read from stdin asks for; the segmenter buffers one segment at most


async def upload_stdin(project: AsyncProject, target: RemotePath, bars: TransferProgress) -> int:
    """Store stdin, a stream of unknown size, at `target`; the number of bytes stored."""
    if target.is_folder:
        raise UsageError(f"name the object stdin becomes: {target} is a folder")
    await _check_bucket(project, target.bucket)
    bar = bars.file("stdin", None)
    with about(target):
        info = await project.upload(target.bucket, target.key, _stdin_chunks(), progress=bar.update)
    bar.finish()
    return info.size


async def _stdin_chunks() -> AsyncIterator[bytes]:
    stream = sys.stdin.buffer
    while True:
        # A blocking read in a thread: the loop keeps sending pieces while a slow writer
        # (tar, a network pipe) fills the next chunk.
        chunk = await asyncio.to_thread(stream.read, _CHUNK)
        if not chunk:
            return
        yield chunk


async def write_stdout(
    project: AsyncProject, source: RemotePath, *, offset: int, length: int | None
) -> None:
    """Write `source` (or a byte range of it) to stdout; a folder meant is said so."""
    out = sys.stdout.buffer
    try:
        with about(source):
            chunks = project.stream(source.bucket, source.key, offset=offset, length=length)
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    # A slow reader must not stall the event loop and the piece fetches.
                    await asyncio.to_thread(out.write, chunk)
    except CliError as exc:
        if await folder_meant(project, source, exc):
            raise UsageError(
                f"{source} is a folder, not an object (list it with: metadisk ls {source}/, "
                f"or copy it with: metadisk cp --recursive {source}/ DIR)"
            ) from exc
        raise
    await asyncio.to_thread(out.flush)


def _object_missing(exc: CliError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, NotFound) and cause.code == "object-not-found"


async def folder_meant(project: AsyncProject, path: RemotePath, exc: CliError) -> bool:
    """Whether `exc` (no object at `path`) happened because `path` names a folder instead."""
    return _object_missing(exc) and await is_folder(project, path)


async def is_folder(project: AsyncProject, path: RemotePath) -> bool:
    """Whether objects exist below `path` taken as a folder ("x" as "x/")."""
    with contextlib.suppress(CliError):
        return await _any_below(project, path)
    return False


def _label(job: Job) -> str:
    if isinstance(job, Upload):
        return job.source.name
    return job.source.name or str(job.source)
