"""Private files and directories: made with their mode whatever the umask, tightened once."""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from metadisk.runtime.files import private_dir, private_file, tighten, tighten_sqlite, write_private


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that takes nothing away: the modes must come from the code, not the umask."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_made_private_whatever_the_umask(tmp_path: Path, open_umask: None) -> None:
    directory = private_dir(tmp_path / "a" / "data")
    assert mode(directory) == 0o700
    assert mode(private_file(directory / "db")) == 0o600
    assert mode(write_private(directory / "key", b"secret")) == 0o600
    assert mode(write_private(tmp_path / "new" / "key", "secret")) == 0o600
    assert mode(tmp_path / "new") == 0o700
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_found_open_it_is_tightened_once_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "data"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    database = directory / "bridge.sqlite3"
    database.write_bytes(b"")
    database.chmod(0o644)
    (directory / "bridge.sqlite3-wal").write_bytes(b"")
    (directory / "bridge.sqlite3-wal").chmod(0o640)
    with caplog.at_level(logging.WARNING, "metadisk.runtime.files"):
        private_dir(directory)
        tighten_sqlite(database)
        private_dir(directory)
        tighten_sqlite(database)
        assert not tighten(directory / "missing")
    assert mode(directory) == 0o700
    assert mode(database) == mode(directory / "bridge.sqlite3-wal") == 0o600
    paths = [record.fields["path"] for record in caplog.records]  # type: ignore[attr-defined]
    assert sorted(paths) == sorted(
        str(p) for p in (directory, database, directory / "bridge.sqlite3-wal")
    )


def test_exclusive_writes_agree_on_the_first(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    written: list[bytes] = []
    start = threading.Barrier(8)

    def race(value: bytes) -> None:
        start.wait()
        try:
            write_private(path, value, exclusive=True)
            written.append(value)
        except FileExistsError:
            pass

    threads = [threading.Thread(target=race, args=(bytes([i]) * 4,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(written) == 1 and path.read_bytes() == written[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kek"]
