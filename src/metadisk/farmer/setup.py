"""A data dir's setup files: the identity seed (mode 0600) and ``farmer.toml``.

Used by the CLI and by the test launcher; the running services never read files themselves, they
get a `FarmerConfig` and an `Identity`.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from metadisk.core.errors import DecodeError
from metadisk.core.identity import SEED_SIZE, Identity
from metadisk.farmer.config import (
    CONFIG_FILE,
    IDENTITY_FILE,
    FarmerConfig,
    config_from_toml,
    config_to_toml,
)
from metadisk.farmer.errors import SetupError
from metadisk.runtime.files import tighten

_IDENTITY_HEADER = "metadisk farmer identity v1"


def write_identity(data_dir: Path, identity: Identity) -> Path:
    """Write the seed with mode 0600; refuses to overwrite an existing identity."""
    path = data_dir / IDENTITY_FILE
    text = f"{_IDENTITY_HEADER}\n{identity.seed.hex()}\n".encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise SetupError(f"{path} already exists", code="identity-exists") from exc
    try:
        os.write(fd, text)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def read_identity(data_dir: Path) -> Identity:
    """Load the seed; refuses one that others can read, as ssh does for keys."""
    path = data_dir / IDENTITY_FILE
    try:
        mode = path.stat().st_mode
        lines = path.read_text(encoding="ascii").split()
    except FileNotFoundError as exc:
        message = f"no identity at {path} (run `metadisk farmer setup`)"
        raise SetupError(message, code="identity") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SetupError(f"cannot read {path}: {exc}", code="identity") from exc
    if stat.S_IMODE(mode) & 0o077:
        raise SetupError(f"{path} is readable by others; chmod 600 it", code="identity")
    try:
        if len(lines) != 5 or " ".join(lines[:4]) != _IDENTITY_HEADER:
            raise ValueError("unknown format")
        seed = bytes.fromhex(lines[4])
        if len(seed) != SEED_SIZE:
            raise ValueError("wrong seed size")
        return Identity(seed)
    except (ValueError, DecodeError) as exc:
        raise SetupError(f"{path} is not a farmer identity: {exc}", code="identity") from exc


def write_config(config: FarmerConfig) -> Path:
    """Write ``farmer.toml`` atomically (a crash leaves the old file or the new one)."""
    path = config.data_dir / CONFIG_FILE
    temp = path.with_suffix(".toml.tmp")
    temp.write_text(config_to_toml(config), encoding="utf-8")
    with open(temp, "rb") as file:
        os.fsync(file.fileno())
    os.replace(temp, path)
    return path


def read_config(data_dir: Path) -> FarmerConfig:
    path = data_dir / CONFIG_FILE
    if not data_dir.is_dir():
        message = f"data dir {data_dir} does not exist or is not a directory"
        raise SetupError(message, code="data-dir")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        message = f"no {CONFIG_FILE} in {data_dir} (run `metadisk farmer setup`)"
        raise SetupError(message, code="config") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SetupError(f"cannot read {path}: {exc}", code="config") from exc
    # A farmer's data dir (it has its config): its database lists every piece held and its
    # identity signs for the node, so it is the owner's alone.
    tighten(data_dir)
    return config_from_toml(text, data_dir)


def write_atomic(path: Path, text: str) -> None:
    """Replace a small file so readers never see half of it."""
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
