"""Resuming an interrupted upload: the state file in the caller's directory, and the pending
upload it names at the bridge.

The state file holds no keys; the bridge keeps each committed segment's `SegmentKey`, and the
upload pipeline checks those segments against the source again before skipping them
(docs/client.md, Resume).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from metadisk.client.bridge_api import BridgeAPI
from metadisk.client.errors import NotFound, ResumeMismatch
from metadisk.client.formats import SegmentKey
from metadisk.client.segmenter import UploadSource
from metadisk.core.erasure import RedundancyScheme

_RESUME_VERSION = 1


class ResumeState:
    """Where an interrupted upload left off: a 0600 JSON file per (bridge, bucket, key, source).

    It holds no keys: the stream id, the segment size and what identifies the source. The keys
    of committed segments stay wrapped at the bridge, and the upload re-derives the object key.
    """

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        self.path = path
        self.identity = identity
        self.saved: dict[str, Any] | None = None
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if (
            isinstance(raw, dict)
            and raw.get("version") == _RESUME_VERSION
            and {k: raw.get(k) for k in identity} == identity
        ):
            self.saved = raw

    @classmethod
    def locate(
        cls, directory: Path, bridge_url: str, bucket: str, key: str, source: UploadSource
    ) -> ResumeState:
        identity: dict[str, Any] = {"bridge": bridge_url, "bucket": bucket, "key": key}
        if isinstance(source, str | os.PathLike):
            stat = os.stat(source)
            identity["source"] = os.path.abspath(source)
            identity["size"] = stat.st_size
            identity["mtime_ns"] = stat.st_mtime_ns
        name = hashlib.blake2b(
            json.dumps([bridge_url, bucket, key]).encode(), digest_size=16
        ).hexdigest()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(directory / f"upload-{name}.json", identity)

    def save(self, stream_id: str, segment_size: int) -> None:
        record = {
            "version": _RESUME_VERSION,
            **self.identity,
            "stream_id": stream_id,
            "segment_size": segment_size,
        }
        temp = self.path.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(record, out)
        os.replace(temp, self.path)
        self.saved = record

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.saved = None


async def pending_upload(
    bridge: BridgeAPI, state: ResumeState
) -> tuple[str, RedundancyScheme, int, dict[int, SegmentKey]] | None:
    """The saved upload's stream id, redundancy, segment size and committed segments' keys, or
    None (and the state cleared) if the bridge no longer holds it."""
    saved = state.saved
    assert saved is not None
    try:
        pending = await bridge.get_upload(saved["stream_id"])
    except NotFound:
        state.clear()  # reclaimed, committed or aborted meanwhile: start over
        return None
    committed = {}
    for segment in pending.segments:
        if segment.encrypted_metadata is None:
            raise ResumeMismatch(f"segment {segment.index} of the upload has no key")
        committed[segment.index] = SegmentKey.decode(segment.encrypted_metadata)
    return pending.stream_id, pending.redundancy, int(saved["segment_size"]), committed
