"""The bridge's Ed25519 identity: a 32-byte seed file, made on first run, readable by owner only."""

from __future__ import annotations

import os
from pathlib import Path

from metadisk.core.identity import SEED_SIZE, Identity


class IdentityError(Exception):
    pass


def load_or_create(path: Path) -> Identity:
    """Read the seed at `path`, or write a new random one there (mode 0600) if there is none."""
    try:
        seed = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        seed = os.urandom(SEED_SIZE)
        # O_EXCL: two processes starting at once must not each write their own identity.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_or_create(path)
        with os.fdopen(fd, "wb") as handle:
            handle.write(seed)
            handle.flush()
            os.fsync(handle.fileno())
        return Identity(seed)
    if len(seed) != SEED_SIZE:
        raise IdentityError(f"{path} is not a {SEED_SIZE}-byte identity seed")
    if path.stat().st_mode & 0o077:
        raise IdentityError(f"{path} is readable by others: chmod 600 it")
    return Identity(seed)
