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
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from metadisk.cli.context import about
from metadisk.cli.errors import CliError, UsageError
from metadisk.cli.progress import FileBar, TransferProgress
from metadisk.cli.remote import RemotePath, is_remote, parse_remote
from metadisk.client import AsyncProject


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


async def plan(project: AsyncProject, src: str, dst: str, *, recursive: bool) -> list[Job]:
    """The jobs that copy `src` to `dst`, as ``cp`` would name the results.

    A destination that is a folder (``md://b``, ``md://b/dir/``, an existing local directory or
    a path ending in "/") receives the source under its own name. With `recursive`, a folder's
    contents go below the destination, keeping their relative paths.
    """
    if not is_remote(src) and not is_remote(dst):
        raise UsageError("SRC or DST must be an md:// path (use your shell's cp for local files)")
    if not is_remote(src):
        target = parse_remote(dst)
        # A directory walk blocks; nothing else runs yet, but keep the loop free on principle.
        return await asyncio.to_thread(_plan_upload, Path(src), target, recursive=recursive)
    source = parse_remote(src)
    found = await _remote_sources(project, source, recursive=recursive)
    if is_remote(dst):
        target = parse_remote(dst)
        if recursive:
            return [Copy(obj, target.join(rel), size) for obj, rel, size in found]
        obj, _, size = found[0]
        return [Copy(obj, target.join(obj.name) if target.is_folder else target, size)]
    destination = Path(dst)
    if recursive:
        return [Download(obj, _inside(destination, rel), size) for obj, rel, size in found]
    obj, _, size = found[0]
    if dst.endswith(("/", os.sep)) or await asyncio.to_thread(destination.is_dir):
        return [Download(obj, destination / obj.name, size)]
    return [Download(obj, destination, size)]


def _plan_upload(source: Path, target: RemotePath, *, recursive: bool) -> list[Job]:
    if source.is_dir():
        if not recursive:
            raise UsageError(f"{source} is a directory (add --recursive)")
        jobs: list[Job] = []
        for root, dirs, files in os.walk(source):
            dirs.sort()  # walk in a stable order, so output and progress are predictable
            for name in sorted(files):
                path = Path(root, name)
                if path.is_file():  # skip sockets, fifos and dangling links
                    relative = path.relative_to(source).as_posix()
                    jobs.append(Upload(path, target.join(relative), path.stat().st_size))
        return jobs
    size = source.stat().st_size  # FileNotFoundError becomes "SRC: No such file or directory"
    if not source.is_file():
        raise UsageError(f"{source} is not a regular file")
    return [Upload(source, target.join(source.name) if target.is_folder else target, size)]


async def _remote_sources(
    project: AsyncProject, source: RemotePath, *, recursive: bool
) -> list[tuple[RemotePath, str, int]]:
    """(object, path relative to `source`, size) of each object `source` names."""
    with about(source):
        if recursive:
            found = []
            async for item in project.list_objects(source.bucket, source.folder, recursive=True):
                if not item.is_prefix:
                    relative = item.key[len(source.folder) :]
                    found.append((RemotePath(source.bucket, item.key), relative, item.size))
            if found or source.is_folder:
                return found
            # "md://b/x" with nothing below "x/": the object x itself
        elif source.is_folder:
            raise UsageError(f"{source} is a folder (add --recursive)")
        info = await project.stat(source.bucket, source.key)
        return [(source, source.name, info.size)]


def _inside(directory: Path, relative: str) -> Path:
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


def _label(job: Job) -> str:
    if isinstance(job, Upload):
        return job.source.name
    return job.source.name or str(job.source)
