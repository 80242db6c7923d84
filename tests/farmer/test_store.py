"""Piece files: the trailer, leaf reads, leftovers and the trash listing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from metadisk.core.merkle import LEAF_SIZE, digest_piece, prove, verify_leaf
from metadisk.farmer.errors import CorruptPiece, NotFound
from metadisk.farmer.pieces.store import PieceInfo, PieceStore, trailer_size

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
