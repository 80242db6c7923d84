"""What the gateway remembers of multipart uploads between requests: their parts.

The bridge holds a multipart upload as one pending upload (its id is the S3 upload id) whose
segments each part writes; it knows segments, not parts. Which segments make which part, and
each part's size and ETag, stay here, on the user's machine, in a small SQLite file (0600) under
the gateway's state dir, or in memory without one.

An object's segments are in index order, so part N's segments take indices from
``N * PART_SPAN`` on; each upload of part N takes a fresh *slot* of `SLOT_SPAN` indices there,
so part 3 sent twice (a client's retry) writes two slots, the later one wins, and completing
lists only the winners' segments: the bridge drops the rest.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from metadisk.runtime import files

# Indices of one part number: 10,001 of them stay below the bridge's limit of 2**31.
PART_SPAN = 1 << 17
# Indices of one upload of a part: S3's largest part, 5 GiB, in segments of at least 1 MiB (the
# library's least for a source that size).
SLOT_SPAN = 5 * 1024
# Uploads of one part number an upload takes (the first and its retries).
MAX_SLOTS = PART_SPAN // SLOT_SPAN
STATE_FILE = "multipart.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,
    access_key TEXT NOT NULL,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    content_type TEXT NOT NULL,
    metadata TEXT NOT NULL,
    initiated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS uploads_by_bucket ON uploads (access_key, bucket, key);
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL REFERENCES uploads (upload_id) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    indices TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    last_modified REAL NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
CREATE TABLE IF NOT EXISTS slots (
    upload_id TEXT NOT NULL REFERENCES uploads (upload_id) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    taken INTEGER NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
"""


class TooManyParts(Exception):
    """A part number was uploaded more often than it has slots for."""


@dataclass(frozen=True, slots=True)
class Upload:
    """A multipart upload begun through this gateway and not completed or aborted."""

    upload_id: str
    access_key: str
    bucket: str
    key: str
    content_type: str
    metadata: Mapping[str, str]
    initiated: float


@dataclass(frozen=True, slots=True)
class Part:
    """One stored part: its segments (by index), plaintext size and ETag (hex MD5)."""

    part_number: int
    indices: tuple[int, ...]
    size: int
    etag: str
    last_modified: float


class PartStore:
    """The uploads and parts table, safe to use from the event loop (each call is short)."""

    def __init__(self, state_dir: Path | None) -> None:
        if state_dir is None:
            target = ":memory:"
        else:
            files.private_dir(state_dir)
            # Made 0600 before SQLite opens it: the file and its WAL never exist looser.
            target = str(files.private_file(state_dir / STATE_FILE))
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # No fsync per part: a process crash loses nothing, and a power cut at worst the last
            # parts recorded (Complete then answers InvalidPart and the client sends them again).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
        if state_dir is not None:
            files.tighten_sqlite(state_dir / STATE_FILE)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def begin(self, upload: Upload) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    upload.upload_id,
                    upload.access_key,
                    upload.bucket,
                    upload.key,
                    upload.content_type,
                    json.dumps(dict(upload.metadata)),
                    upload.initiated,
                ),
            )

    def get(self, access_key: str, upload_id: str) -> Upload | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM uploads WHERE upload_id = ? AND access_key = ?",
                (upload_id, access_key),
            ).fetchone()
        return None if row is None else _upload(row)

    def uploads(self, access_key: str, bucket: str, prefix: str) -> list[Upload]:
        """The uploads to keys under `prefix` in `bucket`, by key then initiation time."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM uploads WHERE access_key = ? AND bucket = ? "
                "AND substr(key, 1, ?) = ? ORDER BY key, initiated, upload_id",
                (access_key, bucket, len(prefix), prefix),
            ).fetchall()
        return [_upload(row) for row in rows]

    def take_slot(self, upload_id: str, part_number: int) -> int:
        """The first segment index of a fresh slot for one upload of part `part_number`."""
        with self._lock:
            try:
                row = self._db.execute(
                    "INSERT INTO slots VALUES (?, ?, 1) ON CONFLICT (upload_id, part_number) "
                    "DO UPDATE SET taken = taken + 1 RETURNING taken - 1",
                    (upload_id, part_number),
                ).fetchone()
            except sqlite3.IntegrityError:
                raise KeyError(upload_id) from None
        if row[0] >= MAX_SLOTS:
            raise TooManyParts(upload_id)
        return part_number * PART_SPAN + int(row[0]) * SLOT_SPAN

    def put_part(self, upload_id: str, part: Part) -> bool:
        """Record `part`, replacing an earlier upload of its number; False if the upload is gone."""
        with self._lock:
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO parts VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        upload_id,
                        part.part_number,
                        json.dumps(part.indices),
                        part.size,
                        part.etag,
                        part.last_modified,
                    ),
                )
            except sqlite3.IntegrityError:
                return False
        return True

    def parts(self, upload_id: str) -> list[Part]:
        with self._lock:
            rows = self._db.execute(
                "SELECT part_number, indices, size, etag, last_modified FROM parts "
                "WHERE upload_id = ? ORDER BY part_number",
                (upload_id,),
            ).fetchall()
        return [Part(n, tuple(json.loads(i)), s, e, t) for n, i, s, e, t in rows]

    def forget(self, upload_id: str) -> None:
        """Drop an upload and its parts (completed or aborted)."""
        with self._lock:
            self._db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))

    def forget_older(self, before: float) -> list[str]:
        """Drop uploads begun before `before` (the bridge reclaimed them); their ids."""
        with self._lock:
            rows = self._db.execute(
                "DELETE FROM uploads WHERE initiated < ? RETURNING upload_id", (before,)
            ).fetchall()
        return [row[0] for row in rows]


def _upload(row: Sequence[object]) -> Upload:
    upload_id, access_key, bucket, key, content_type, metadata, initiated = row
    return Upload(
        str(upload_id),
        str(access_key),
        str(bucket),
        str(key),
        str(content_type),
        json.loads(str(metadata)),
        float(initiated),  # type: ignore[arg-type]
    )
