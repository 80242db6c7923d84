"""Private files and directories: what holds secrets is the owner's alone.

Data directories are 0700 and databases, keys, grants and sessions 0600. Each is created with
its mode (``os.open``/``mkdir`` with the mode: the umask can only take bits away), never
chmodded after the fact, so there is no moment at which another local user can open it. One
found looser than that (made by an older version, or by hand) is tightened when a process
starts on it, with one warning naming the path.

A SQLite database gives its ``-wal`` and ``-shm`` files its own mode, so `private_file` on the
database before SQLite opens it keeps them private too; `tighten` still covers all three, as
an older version left them 0644.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from pathlib import Path

from metadisk.runtime.logs import event

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "private_dir",
    "private_file",
    "tighten",
    "tighten_sqlite",
    "write_private",
]

DIR_MODE = 0o700
FILE_MODE = 0o600
_SQLITE_SIDECARS = ("-wal", "-shm", "-journal")

log = logging.getLogger(__name__)


def tighten(path: Path, mode: int | None = None) -> bool:
    """Take group and other bits off `path` if it has any (0700 for a directory, 0600 for a
    file, unless `mode` says otherwise), with one warning; whether it changed anything. A
    missing path is left alone."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return False
    want = mode if mode is not None else DIR_MODE if stat.S_ISDIR(found.st_mode) else FILE_MODE
    current = stat.S_IMODE(found.st_mode)
    if current & ~want == 0:
        return False
    os.chmod(path, current & want)
    event(
        log,
        logging.WARNING,
        # the path in the message too: where logging is not set up only the message shows
        f"tightened permissions of {path}: it was open to other local users",
        path=str(path),
        was=oct(current),
        now=oct(current & want),
    )
    return True


def private_dir(path: Path) -> Path:
    """`path` as a directory only its owner may use: created 0700 (missing parents with the
    usual mode), or tightened if it exists with a looser mode."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True)
    except FileExistsError:
        if not path.is_dir():
            raise
        tighten(path)
    return path


def private_file(path: Path) -> Path:
    """Make sure `path` exists as an owner-only file: created empty with mode 0600 if missing
    (so that whatever writes it later, such as SQLite, inherits the mode), tightened if not."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        tighten(path, FILE_MODE)
    else:
        os.close(fd)
    return path


def tighten_sqlite(path: Path) -> None:
    """Tighten a SQLite database and the files SQLite keeps beside it."""
    tighten(path, FILE_MODE)
    for suffix in _SQLITE_SIDECARS:
        tighten(path.with_name(path.name + suffix), FILE_MODE)


def write_private(path: Path, data: bytes | str, *, exclusive: bool = False) -> Path:
    """Write `data` to `path` with mode 0600 through a temporary file and a rename, in a
    directory made private if missing.

    The file is 0600 before any byte is written, so a secret is never readable by others, not
    even for a moment; the rename means a crash leaves the old file or the new one. With
    `exclusive`, an existing `path` is kept (`FileExistsError`): two processes that race to
    create one secret agree on the first.
    """
    if not path.parent.is_dir():
        private_dir(path.parent)
    payload = data.encode() if isinstance(data, str) else data
    # mkstemp creates with 0600 whatever the umask.
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        if exclusive:
            os.link(temp, path)  # atomic, and fails if another process got there first
        else:
            os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    return path
