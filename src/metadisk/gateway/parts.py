"""What the gateway remembers of multipart uploads between requests: their parts.

The bridge holds a multipart upload as one pending upload (its id is the S3 upload id) whose
segments each part writes; it knows segments, not parts. Which segments make which part, and
each part's size and ETag, stay here, on the user's machine, in a small SQLite file (0600) under
the gateway's state dir, or in memory without one.

Each part upload takes a fresh *slot* of `SLOT_SPAN` segment indices: part 3 sent twice (a
client's retry) writes two slots, the later one wins, and completing lists only the winners'
segments, so the bridge drops the rest. Slots start at 1, so no segment of a multipart object
has index 0.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from metadisk.runtime import files

# Indices a part may use: 2**17 segments of at least 1 MiB each is far beyond S3's 5 GiB part.
SLOT_SPAN = 1 << 17
# The bridge takes indices below 2**31, so an upload has this many slots: S3's 10,000 parts with
# room for thousands of retries.
MAX_SLOTS = ((1 << 31) - 1) // SLOT_SPAN - 1
STATE_FILE = "multipart.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,
    access_key TEXT NOT NULL,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    content_type TEXT NOT NULL,
    metadata TEXT NOT NULL,
    initiated REAL NOT NULL,
    next_slot INTEGER NOT NULL
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
"""


class TooManyParts(Exception):
    """An upload used every slot it has."""


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
            target = str(state_dir / STATE_FILE)
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
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
                "INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
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

    def take_slot(self, upload_id: str) -> int:
        """A fresh slot's first segment index for one part upload."""
        with self._lock:
            row = self._db.execute(
                "UPDATE uploads SET next_slot = next_slot + 1 WHERE upload_id = ? "
                "RETURNING next_slot - 1",
                (upload_id,),
            ).fetchone()
        if row is None:
            raise KeyError(upload_id)
        if row[0] > MAX_SLOTS:
            raise TooManyParts(upload_id)
        return int(row[0]) * SLOT_SPAN

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
    upload_id, access_key, bucket, key, content_type, metadata, initiated, _ = row
    return Upload(
        str(upload_id),
        str(access_key),
        str(bucket),
        str(key),
        str(content_type),
        json.loads(str(metadata)),
        float(initiated),  # type: ignore[arg-type]
    )
