"""Piece files: the trailer, leaf reads, leftovers and the trash listing."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import mmap
import os
import random
from pathlib import Path

import pytest

from metadisk.core.merkle import LEAF_SIZE, digest_piece, prove, verify_leaf
from metadisk.farmer.errors import CorruptPiece, NotFound
from metadisk.farmer.pieces import store as store_module
from metadisk.farmer.pieces.store import PieceInfo, PieceStore, TempPiece, trailer_size

BRIDGE = bytes([1]) * 32


def store_piece(store: PieceStore, data: bytes, expires_at: int = 0) -> str:
    temp = store.new_temp()
    temp.open()
    temp.write([data[: len(data) // 2], data[len(data) // 2 :]])
    digest = temp.digest()
    info = PieceInfo.of(digest, stored_at=1000, expires_at=expires_at)
    temp.seal(digest, info)
    assert info.disk_size == len(data) + trailer_size(len(data))
    rel = store.piece_rel(BRIDGE, os.urandom(32))
    store.commit(temp, rel)
    return rel


@pytest.mark.parametrize("size", [0, 1, LEAF_SIZE, 3 * LEAF_SIZE + 5])
def test_sealed_piece_reads_back(tmp_path: Path, size: int) -> None:
    store = PieceStore(tmp_path)
    store.prepare()
    data = os.urandom(size)
    rel = store_piece(store, data, expires_at=77)
    digest = digest_piece(data)
    piece = store.open(rel)
    try:
        info = piece.info
        assert (info.size, info.stored_at, info.expires_at) == (size, 1000, 77)
        assert info.piece_hash == digest.piece_hash
        assert piece.file.read(size) == data
        for index in range(info.leaf_count):
            leaf, hashes = piece.read_leaf(index)
            assert tuple(hashes) == digest.leaf_hashes
            verify_leaf(info.piece_hash, leaf, prove(hashes, index))
    finally:
        piece.close()
    assert store.disk_size(rel) == info.disk_size
    assert list((tmp_path / "tmp").iterdir()) == []


def test_damaged_footer_is_detected(tmp_path: Path) -> None:
    store = PieceStore(tmp_path)
    store.prepare()
    rel = store_piece(store, os.urandom(5000))
    path = store.path(rel)
    with open(path, "r+b") as file:
        file.truncate(path.stat().st_size - 1)
    with pytest.raises(CorruptPiece):
        store.open(rel)
    path.write_bytes(b"short")
    with pytest.raises(CorruptPiece):
        store.open(rel)
    with pytest.raises(NotFound):
        store.open(store.piece_rel(BRIDGE, os.urandom(32)))


def test_prepare_removes_partial_uploads(tmp_path: Path) -> None:
    store = PieceStore(tmp_path)
    store.prepare()
    temp = store.new_temp()
    temp.open()
    temp.write([b"half a piece"])
    temp.close()
    assert store.prepare() == 1
    assert not temp.path.exists()


def test_trash_entries(tmp_path: Path) -> None:
    store = PieceStore(tmp_path)
    store.prepare()
    rel = store_piece(store, b"bye")
    pid = bytes.fromhex(Path(rel).name)
    trash = store.trash_rel(BRIDGE, pid, 12345)
    store.move(rel, trash)
    (store.trash_dir / BRIDGE.hex() / "not-ours.txt").write_text("x")
    (store.trash_dir / "README").write_text("x")
    entries = list(store.trash_entries())
    assert entries == [(BRIDGE, pid, trash, 12345, 3 + trailer_size(3))]
    with pytest.raises(FileNotFoundError):
        store.move(rel, trash)


def write_in_random_chunks(temp: TempPiece, data: bytes, rng: random.Random) -> None:
    """Feed `data` in batches of odd-sized chunks, as the network delivers them."""
    pos = 0
    while pos < len(data):
        batch = []
        for _ in range(rng.randrange(1, 5)):
            size = rng.choice([1, 100, 4095, 4096, 65536, 3 << 20, rng.randrange(1, 300_000)])
            batch.append(data[pos : pos + size])
            pos += size
        temp.write([chunk for chunk in batch if chunk], last=pos >= len(data))


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * LEAF_SIZE + 5, (2 << 20) + 7])
def test_both_write_paths_store_the_same_bytes(tmp_path: Path, direct: bool, size: int) -> None:
    # O_DIRECT writes whole blocks from a staging buffer and leaves the rest to `seal`; the
    # cached path writes as it goes, the last chunks together with the trailer
    store = PieceStore(tmp_path)
    store.prepare([BRIDGE])
    data = os.urandom(size)
    temp = store.new_temp()
    temp.open(direct=direct)
    write_in_random_chunks(temp, data, random.Random(size))
    digest = temp.digest()
    assert digest == digest_piece(data)
    temp.seal(digest, PieceInfo.of(digest, stored_at=1, expires_at=0))
    rel = store.piece_rel(BRIDGE, os.urandom(32))
    store.commit(temp, rel)
    piece = store.open(rel)
    try:
        assert piece.info.size == size
        assert os.pread(piece.file.fileno(), size, 0) == data
    finally:
        piece.close()


def test_direct_writes_fall_back_to_the_cache_when_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a device that wants more alignment than 4 KiB refuses the write with EINVAL
    real = store_module._pwrite_all
    calls = 0

    def refuse_second(fd: int, view: memoryview, offset: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(errno.EINVAL, "Invalid argument")
        real(fd, view, offset)

    monkeypatch.setattr(store_module, "_pwrite_all", refuse_second)
    store = PieceStore(tmp_path)
    store.prepare()
    data = os.urandom((3 << 20) + 12345)
    temp = store.new_temp()
    temp.open()
    for start in range(0, len(data), 1 << 20):
        temp.write([data[start : start + 700_001], data[start + 700_001 : start + (1 << 20)]])
    digest = temp.digest()
    temp.seal(digest, PieceInfo.of(digest, stored_at=1, expires_at=0))
    rel = store.piece_rel(BRIDGE, os.urandom(32))
    store.commit(temp, rel)
    piece = store.open(rel)
    try:
        assert os.pread(piece.file.fileno(), len(data), 0) == data
    finally:
        piece.close()
    assert calls > 2  # refused once, then written through the cache


def test_prepare_makes_every_piece_directory(tmp_path: Path) -> None:
    store = PieceStore(tmp_path)
    store.prepare([BRIDGE])
    made = sorted(entry.name for entry in (store.pieces_dir / BRIDGE.hex()).iterdir())
    assert made == [f"{i:02x}" for i in range(256)]
    store.prepare([BRIDGE])  # again: nothing to do, nothing fails


def resident_pages(path: Path) -> int:
    """How many of the file's pages are in the page cache: mincore(2) over a shared mapping."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    size = path.stat().st_size
    vector = (ctypes.c_ubyte * -(-size // mmap.PAGESIZE))()
    with path.open("r+b") as file, mmap.mmap(file.fileno(), size) as mapped:
        first = ctypes.c_char.from_buffer(mapped)  # only to learn the mapping's address
        try:
            address = ctypes.c_void_p(ctypes.addressof(first))
            if libc.mincore(address, ctypes.c_size_t(size), vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
        finally:
            del first  # the mapping cannot close while ctypes holds it
    return sum(byte & 1 for byte in vector)


def test_written_pieces_leave_the_page_cache(tmp_path: Path) -> None:
    """A stored piece takes no page cache: the farmer's machine keeps its cache for its owner,
    and the freed pages are reused by the next upload (faster on VMs, see `_drop_cached`)."""
    store = PieceStore(tmp_path)
    store.prepare([BRIDGE])
    control = tmp_path / "control"
    with control.open("wb") as file:  # an ordinary written file stays cached: mincore works here
        file.write(os.urandom(1 << 20))
        file.flush()
        os.fsync(file.fileno())
    if resident_pages(control) == 0:
        pytest.skip("this filesystem does not keep written pages cached")

    temp = store.new_temp()
    temp.open(direct=False)
    data = os.urandom(4 << 20)
    batches = [data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20)]
    for batch in batches[:-1]:
        temp.write([batch])
    temp.write([batches[-1]], last=True)
    digest = temp.digest()
    temp.seal(digest, PieceInfo.of(digest, stored_at=1, expires_at=0))
    rel = store.piece_rel(BRIDGE, os.urandom(32))
    store.commit(temp, rel)
    stored = store.path(rel)
    assert resident_pages(stored) == 0

    piece = store.open(rel)  # reading brings it back, as a download would
    try:
        assert os.pread(piece.file.fileno(), len(data), 0) == data
    finally:
        piece.close()
    assert resident_pages(stored) > 0
