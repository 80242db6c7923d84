"""The key-encryption key: wrapped secrets open only for their own row under their own KEK, and
the KEK file is made private once, shared by every process, and never echoed in errors."""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

import pytest

from metadisk.bridge.auth.kek import (
    KEK_FILE,
    KekError,
    KeyWrap,
    UnwrapError,
    is_wrapped,
    load_kek,
    wrapped_kek_id,
)
from metadisk.bridge.config import BridgeConfig, DatabaseConfig, sqlite_url

KEY_ID, PROJECT, SECRET = b"k" * 16, "project-a", os.urandom(32)


def config(data_dir: Path, **database: str) -> BridgeConfig:
    return BridgeConfig(
        data_dir=data_dir, database=DatabaseConfig(sqlite_url(data_dir), **database)
    )


def test_a_wrapped_secret_opens_only_for_its_row_under_its_kek() -> None:
    wrap = KeyWrap(os.urandom(32), "test")
    stored = wrap.wrap(KEY_ID, PROJECT, SECRET)
    assert is_wrapped(stored) and SECRET not in stored
    assert wrapped_kek_id(stored) == wrap.kek_id
    assert wrap.unwrap(KEY_ID, PROJECT, stored) == SECRET
    assert wrap.wrap(KEY_ID, PROJECT, SECRET) != stored  # a fresh nonce each time
    refused = [
        (KEY_ID[:-1] + b"x", PROJECT, stored),  # moved to another key's row
        (KEY_ID, "project-b", stored),  # or the row moved to another project
        (KEY_ID, PROJECT, stored[:-1] + bytes([stored[-1] ^ 1])),  # altered
        (KEY_ID, PROJECT, SECRET),  # raw: written behind the bridge's back
        (KEY_ID, PROJECT, b""),
    ]
    for key_id, project, value in refused:
        with pytest.raises(UnwrapError):
            wrap.unwrap(key_id, project, value)
    with pytest.raises(UnwrapError, match="another KEK"):
        KeyWrap(os.urandom(32), "other").unwrap(KEY_ID, PROJECT, stored)


def test_the_kek_never_shows_in_its_repr() -> None:
    kek = os.urandom(32)
    wrap = KeyWrap(kek, "test")
    assert kek.hex() not in repr(wrap) and wrap.kek_id.hex() in repr(wrap)
    made = config(Path("/nonexistent"), kek=kek.hex())
    assert kek.hex() not in repr(made)


def test_the_kek_file_is_made_private_once(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        first = load_kek(config(tmp_path))
    finally:
        os.umask(old)
    path = tmp_path / KEK_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_kek(config(tmp_path)).kek == first.kek
    assert first.source == str(path)


def test_processes_starting_together_share_one_kek(tmp_path: Path) -> None:
    loaded: list[bytes] = []
    start = threading.Barrier(6)

    def load() -> None:
        start.wait()
        loaded.append(load_kek(config(tmp_path)).kek)

    threads = [threading.Thread(target=load) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loaded) == 6 and len(set(loaded)) == 1


def test_an_open_kek_file_is_tightened_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kek = load_kek(config(tmp_path)).kek
    path = tmp_path / KEK_FILE
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, "metadisk.runtime.files"):
        assert load_kek(config(tmp_path)).kek == kek
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [r.fields["path"] for r in caplog.records] == [str(path)]  # type: ignore[attr-defined]


def test_a_kek_from_the_configuration_needs_no_file(tmp_path: Path) -> None:
    kek = os.urandom(32)
    assert load_kek(config(tmp_path, kek=kek.hex())).kek == kek
    assert not (tmp_path / KEK_FILE).exists()
    elsewhere = tmp_path / "secrets" / "bridge.kek"
    assert load_kek(config(tmp_path, kek_file=str(elsewhere))).source == str(elsewhere)
    assert elsewhere.exists() and not (tmp_path / KEK_FILE).exists()


def test_a_bad_kek_is_one_line_that_does_not_repeat_it(tmp_path: Path) -> None:
    typo = "zz" + os.urandom(31).hex()
    with pytest.raises(ValueError, match="64 hex digits") as bad:
        config(tmp_path, kek=typo)
    assert typo not in str(bad.value)
    (tmp_path / KEK_FILE).write_text("not-a-kek-" + "ab" * 20)
    with pytest.raises(KekError, match="is not a KEK") as garbage:
        load_kek(config(tmp_path))
    assert "not-a-kek" not in str(garbage.value) and "\n" not in str(garbage.value)
