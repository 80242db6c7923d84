"""Pieces as files on local disk. Every method blocks: call them off the event loop.

Layout under the data dir (one namespace per bridge; see docs/farmer.md for the measurements
behind the one-level fan-out)::

    pieces/<bridge-id hex>/<first 2 hex of piece id>/<piece id hex>   the piece files
    trash/<bridge-id hex>/<piece id hex>.<unix time trashed>.<random>  deleted, kept for a grace
    tmp/<random>.part                                                  uploads in progress

A piece file is the piece's bytes followed by a trailer: its Merkle leaf hashes (so audits need
not rehash) and a fixed footer (size, times, piece hash, Merkle root, leaf count). An upload is
written to ``tmp/``, fsynced, then renamed into place and the directory fsynced: the rename is the
one atomic step that makes a piece visible, so a crash at any moment leaves either no piece or a
whole, checked one. ``tmp/`` is emptied at start.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import secrets
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from metadisk.core.merkle import PieceDigest, PieceHasher, leaf_count, leaf_span
from metadisk.core.messages import HASH_SIZE
from metadisk.farmer.errors import CorruptPiece, NotFound

MAGIC = b"MDPIECE1"
# magic, size, stored_at, expires_at, piece_hash (the Merkle root), leaf_count
FOOTER = struct.Struct(f">8sQQQ{HASH_SIZE}sI")
FAN_OUT = 2  # hex digits of the piece id naming its directory: 256 directories per bridge


def trailer_size(size: int) -> int:
    """Bytes a piece file holds beyond the piece itself."""
    return leaf_count(size) * HASH_SIZE + FOOTER.size


@dataclass(frozen=True, slots=True)
class PieceInfo:
    """A stored piece's footer."""

    size: int
    stored_at: int
    expires_at: int  # 0: no TTL
    piece_hash: bytes
    leaf_count: int

    @classmethod
    def of(cls, digest: PieceDigest, stored_at: int, expires_at: int) -> PieceInfo:
        return cls(
            digest.size,
            stored_at,
            expires_at,
            digest.piece_hash,
            len(digest.leaf_hashes),
        )

    @property
    def disk_size(self) -> int:
        return self.size + self.leaf_count * HASH_SIZE + FOOTER.size

    def pack(self) -> bytes:
        return FOOTER.pack(
            MAGIC,
            self.size,
            self.stored_at,
            self.expires_at,
            self.piece_hash,
            self.leaf_count,
        )

    @classmethod
    def unpack(cls, footer: bytes, file_size: int) -> PieceInfo:
        if len(footer) != FOOTER.size:
            raise CorruptPiece("piece file too short")
        magic, size, stored_at, expires_at, piece_hash, leaves = FOOTER.unpack(footer)
        info = cls(size, stored_at, expires_at, piece_hash, leaves)
        if magic != MAGIC or leaves != leaf_count(size) or info.disk_size != file_size:
            raise CorruptPiece("piece file footer is corrupt")
        return info


class TempPiece:
    """An upload in progress: a file in ``tmp/``, created by `open`, hashed as it is written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._hasher = PieceHasher()
        self.received = 0  # bytes taken from the network (the event loop counts them)
        self.written = 0  # bytes written to the file (the I/O thread counts them)

    @property
    def opened(self) -> bool:
        return self._fd >= 0

    def open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def write(self, chunks: Sequence[bytes]) -> None:
        """Hash and append `chunks`, and start writing them to disk."""
        for chunk in chunks:
            self._hasher.update(chunk)
        _write_all(self._fd, chunks)
        size = sum(len(chunk) for chunk in chunks)
        _start_writeback(self._fd, self.written, size)
        self.written += size

    def digest(self) -> PieceDigest:
        return self._hasher.finish()

    def seal(self, digest: PieceDigest, info: PieceInfo) -> None:
        """Append the trailer and make the file durable."""
        _write_all(self._fd, [b"".join(digest.leaf_hashes), info.pack()])
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def discard(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class OpenPiece:
    """A stored piece opened for reading (it stays readable even if deleted meanwhile)."""

    def __init__(self, file: BinaryIO, info: PieceInfo) -> None:
        self.file = file
        self.info = info

    def read_leaf(self, index: int) -> tuple[bytes, list[bytes]]:
        """The bytes of leaf `index` and every leaf hash (for the proof)."""
        start, end = leaf_span(self.info.size, index)
        leaf = os.pread(self.file.fileno(), end - start, start)
        raw = os.pread(self.file.fileno(), self.info.leaf_count * HASH_SIZE, self.info.size)
        hashes = [raw[i : i + HASH_SIZE] for i in range(0, len(raw), HASH_SIZE)]
        return leaf, hashes

    def close(self) -> None:
        self.file.close()


class PieceStore:
    """The piece files of one data dir."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pieces_dir = root / "pieces"
        self.trash_dir = root / "trash"
        self.tmp_dir = root / "tmp"

    def prepare(self) -> int:
        """Create the directories and remove leftover uploads; returns how many were removed."""
        for directory in (self.pieces_dir, self.trash_dir, self.tmp_dir):
            directory.mkdir(mode=0o700, exist_ok=True)
        removed = 0
        for entry in os.scandir(self.tmp_dir):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
        return removed

    # -- names

    def piece_rel(self, bridge: bytes, piece_id: bytes) -> str:
        name = piece_id.hex()
        return f"pieces/{bridge.hex()}/{name[:FAN_OUT]}/{name}"

    def trash_rel(self, bridge: bytes, piece_id: bytes, trashed_at: int) -> str:
        # the random tail keeps a piece stored and deleted twice in one second from colliding
        return f"trash/{bridge.hex()}/{piece_id.hex()}.{trashed_at}.{secrets.token_hex(4)}"

    def path(self, rel: str) -> Path:
        return self.root / rel

    def exists(self, rel: str) -> bool:
        return os.path.lexists(self.root / rel)

    # -- writing

    def new_temp(self) -> TempPiece:
        """A new upload; its file appears at its first write (`TempPiece.open`)."""
        return TempPiece(self.tmp_dir / f"{secrets.token_hex(16)}.part")

    def commit(self, temp: TempPiece, rel: str) -> None:
        """Move a sealed upload into place, durably; the step that makes it visible."""
        temp.close()
        self._move(temp.path, self.root / rel)

    def move(self, src: str, dst: str) -> None:
        """Move a piece file (to the trash); FileNotFoundError if `src` is gone."""
        self._move(self.root / src, self.root / dst)

    def remove(self, rel: str) -> bool:
        """Delete a file; False if it was already gone."""
        try:
            os.unlink(self.root / rel)
        except FileNotFoundError:
            return False
        return True

    def _move(self, src: Path, dst: Path) -> None:
        _ensure_dir(dst.parent)
        os.rename(src, dst)
        _fsync_dir(dst.parent)

    # -- reading

    def open(self, rel: str) -> OpenPiece:
        """Open a stored piece; NotFound if there is none."""
        try:
            file = open(self.root / rel, "rb")  # noqa: SIM115 - the caller closes it
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise NotFound("no such piece") from exc
        try:
            size = os.fstat(file.fileno()).st_size
            footer = os.pread(file.fileno(), FOOTER.size, max(0, size - FOOTER.size))
            return OpenPiece(file, PieceInfo.unpack(footer, size))
        except BaseException:
            file.close()
            raise

    def disk_size(self, rel: str) -> int:
        """Bytes a piece file takes; NotFound if there is none."""
        try:
            return os.stat(self.root / rel).st_size
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise NotFound("no such piece") from exc

    def info(self, rel: str) -> PieceInfo:
        piece = self.open(rel)
        piece.close()
        return piece.info

    def trash_entries(self) -> Iterator[tuple[bytes, bytes, str, int, int]]:
        """Every trashed piece: (bridge, piece id, rel path, trashed at, bytes on disk)."""
        for bridge_dir in _scandir(self.trash_dir):
            for entry in _scandir(Path(bridge_dir.path)):
                name, _, when = entry.name.partition(".")
                try:
                    bridge, piece_id, trashed_at = (
                        bytes.fromhex(bridge_dir.name),
                        bytes.fromhex(name),
                        int(when.split(".")[0]),
                    )
                    size = entry.stat().st_size
                except (ValueError, FileNotFoundError):
                    continue  # not ours, or purged meanwhile
                yield bridge, piece_id, f"trash/{bridge_dir.name}/{entry.name}", trashed_at, size


def _scandir(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            return [entry for entry in entries if not entry.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _write_all(fd: int, chunks: Sequence[bytes]) -> None:
    views = [memoryview(chunk) for chunk in chunks if chunk]
    while views:
        written = os.writev(fd, views[:1024])  # IOV_MAX is 1024 on Linux
        while written:
            if written >= len(views[0]):
                written -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][written:]
                written = 0


def _load_sync_file_range() -> Callable[[int, int, int], None]:
    """``sync_file_range(SYNC_FILE_RANGE_WRITE)`` where libc has it, else a no-op.

    It starts writeback of what a batch just wrote while the next batch is still on the network,
    so the fsync before the receipt waits only for the tail: about 2 ms less per 2 MiB piece
    here. (Postgres and RocksDB do the same.) Not a durability step: fsync still is.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        native = libc.sync_file_range
    except (OSError, AttributeError, TypeError):
        return lambda fd, offset, size: None
    native.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    native.restype = ctypes.c_int

    def start(fd: int, offset: int, size: int) -> None:
        native(fd, offset, size, _SYNC_FILE_RANGE_WRITE)  # a hint: its result does not matter

    return start


_SYNC_FILE_RANGE_WRITE = 2
_start_writeback = _load_sync_file_range()


def _ensure_dir(path: Path) -> None:
    """Create `path` (and parents) if missing, fsyncing each parent a new entry was added to."""
    if path.is_dir():
        return
    _ensure_dir(path.parent)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
