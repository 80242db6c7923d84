"""Move and copy: an object's small keys re-wrapped for its new path; no piece moves.

Each segment's `SegmentKey` and the `SealedMetadata` are re-wrapped from the old path's object
key to the new one's and sent with the `stream_id` they were read from, so the bridge refuses
them if the object was overwritten meanwhile; then the new version is read and re-wrapped again.
"""

from __future__ import annotations

from collections.abc import Callable

from metadisk.client.bridge_api import BridgeAPI
from metadisk.client.errors import Conflict, IntegrityFailure
from metadisk.client.formats import ObjectMetadata, SealedMetadata, SegmentKey
from metadisk.client.records import open_metadata, sealed_metadata
from metadisk.core.errors import DecodeError, DecryptionError
from metadisk.wire.api.objects import Object as ObjectRecord
from metadisk.wire.api.objects import SegmentRekey

_RELOCATE_ATTEMPTS = 3  # a move or copy re-reads an object overwritten meanwhile this many times


async def relocate(
    bridge: BridgeAPI,
    bucket: str,
    encrypted_key: str,
    key: bytes,
    new_bucket: str,
    new_encrypted_key: str,
    new_key: bytes,
    *,
    copy: bool,
    new_metadata: Callable[[ObjectMetadata], ObjectMetadata] | None = None,
) -> tuple[ObjectRecord, ObjectMetadata]:
    """Move (or copy) the object at `encrypted_key` to `new_encrypted_key`: the bridge's record
    of the new object, and its metadata. `new_metadata` gives the new object's metadata from
    the old one's (sealed afresh under the new path's key), else the old one is re-wrapped."""
    for attempt in range(_RELOCATE_ATTEMPTS):
        record = await bridge.get_object(bucket, encrypted_key)
        meta = open_metadata(record, key)
        new_sealed, rekeyed = _rewrapped(record, key, new_key)
        if new_metadata is not None:
            meta = new_metadata(meta)
            inline = None
            if new_sealed is not None:
                inline = SealedMetadata.decode(new_sealed).inline_key
            new_sealed = SealedMetadata.seal(new_key, meta, inline).encode()
        try:
            moved = await bridge.move_object(
                bucket,
                encrypted_key,
                new_bucket,
                new_encrypted_key,
                new_sealed,
                rekeyed,
                copy=copy,
                stream_id=record.stream_id,  # keys re-wrapped for this version only
            )
        except Conflict as exc:
            if exc.code != "object-changed" or attempt == _RELOCATE_ATTEMPTS - 1:
                raise
            continue  # overwritten since it was read: re-wrap the new version's keys
        return moved, meta
    raise AssertionError("unreachable")


def _rewrapped(
    record: ObjectRecord, key: bytes, new_key: bytes
) -> tuple[bytes | None, list[SegmentRekey]]:
    """The object's sealed metadata and segment keys re-wrapped from `key` to `new_key`."""
    sealed = sealed_metadata(record)
    rekeyed = []
    try:
        for segment in record.segments:
            if segment.encrypted_metadata is None:
                raise IntegrityFailure(f"segment {segment.index} has no key")
            old = SegmentKey.decode(segment.encrypted_metadata)
            new = old.rewrap(key, new_key, segment.index)
            rekeyed.append(SegmentRekey(index=segment.index, encrypted_metadata=new.encode()))
        new_sealed = None if sealed is None else sealed.rewrap(key, new_key).encode()
    except (DecryptionError, DecodeError) as exc:
        raise IntegrityFailure(f"the object's keys do not open: {exc}") from exc
    return new_sealed, rekeyed
