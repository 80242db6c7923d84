"""The records `AsyncProject` hands out, and how the bridge's answers become them.

`Bucket`, `ObjectInfo`, `ObjectPage`, `PendingUploadInfo`, `PartWritten` and `Permissions` are
public (`metadisk.client`). The functions below turn the bridge's wire models (`metadisk.wire.api`)
into them, opening what the bridge stores sealed (`metadisk.client.formats`) under the object
key: the metadata, and an inline object's data. What does not open is an `IntegrityFailure`,
except in a listing, which leaves out names this grant cannot decrypt.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from metadisk.client.errors import IntegrityFailure
from metadisk.client.formats import ObjectMetadata, SealedMetadata
from metadisk.core import content
from metadisk.core.erasure import RedundancyScheme
from metadisk.core.errors import DecodeError, DecryptionError
from metadisk.core.paths import decrypt_path, object_key
from metadisk.wire.api.buckets import Bucket as BucketRecord
from metadisk.wire.api.objects import ListItem
from metadisk.wire.api.objects import Object as ObjectRecord


@dataclass(frozen=True, slots=True)
class Bucket:
    """A bucket and the redundancy its objects are stored with."""

    name: str
    profile: str
    redundancy: RedundancyScheme
    created_at: int


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """An object (or, in listings, a common prefix) with its decrypted name and metadata."""

    bucket: str
    key: str  # the plaintext path; a prefix ends with "/"
    is_prefix: bool = False
    size: int = 0
    content_type: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0
    segment_count: int = 0
    # BLAKE3-256 of the whole plaintext, checked after every full download; None for an object
    # stored before clients computed it, and for prefixes.
    checksum: bytes | None = None
    # The segments' redundancy; None in listings and for an object stored inline at the bridge.
    redundancy: RedundancyScheme | None = None


@dataclass(frozen=True, slots=True)
class ObjectPage:
    """One page of a listing; pass `cursor` back for the next one (None: done)."""

    items: tuple[ObjectInfo, ...]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class PendingUploadInfo:
    """An upload begun and not committed: it reserves room until aborted or reclaimed."""

    bucket: str
    key: str  # the plaintext path it will commit to
    stream_id: str
    created_at: int
    deadline: int  # the bridge reclaims it after this (Unix seconds)


@dataclass(frozen=True, slots=True)
class PartWritten:
    """What `AsyncProject.upload_part` stored: segments `first_index` .. + `segment_count` - 1
    of a pending upload (none for an empty part), holding `size` bytes of plaintext."""

    first_index: int
    segment_count: int
    size: int
    indices: tuple[int, ...]
    checksum: bytes = b""  # BLAKE3-256 of the part's plaintext


@dataclass(frozen=True, slots=True)
class Permissions:
    """What a shared grant may do."""

    read: bool = True
    write: bool = False
    list: bool = True
    delete: bool = False


def bucket_from(record: BucketRecord) -> Bucket:
    return Bucket(record.name, record.profile, record.redundancy, record.created_at)


def sealed_metadata(record: ObjectRecord) -> SealedMetadata | None:
    if record.encrypted_metadata is None:
        return None
    try:
        return SealedMetadata.decode(record.encrypted_metadata)
    except DecodeError as exc:
        raise IntegrityFailure(f"the object's metadata is malformed: {exc}") from exc


def open_metadata(record: ObjectRecord, key: bytes) -> ObjectMetadata:
    sealed = sealed_metadata(record)
    if sealed is None:
        return ObjectMetadata(record.plain_size)
    try:
        return sealed.open(key)
    except (DecryptionError, DecodeError) as exc:
        raise IntegrityFailure(f"the object's metadata does not decrypt: {exc}") from exc


def open_inline(record: ObjectRecord, key: bytes) -> bytes:
    sealed = sealed_metadata(record)
    if sealed is None or sealed.inline_key is None or record.inline_data is None:
        raise IntegrityFailure("an inline object without its key")
    try:
        content_key = sealed.inline_key.content_key(key, 0)
        return content.decrypt_segment(content_key, 0, record.inline_data)
    except DecryptionError as exc:
        raise IntegrityFailure(f"the object does not decrypt: {exc}") from exc


def object_info(bucket: str, path: str, record: ObjectRecord, meta: ObjectMetadata) -> ObjectInfo:
    return ObjectInfo(
        bucket=bucket,
        key=path,
        size=record.plain_size,
        content_type=meta.content_type,
        metadata=dict(meta.custom),
        created_at=record.created_at,
        segment_count=record.segment_count,
        checksum=meta.checksum,
        redundancy=record.segments[0].redundancy if record.segments else None,
    )


def listed(
    bucket: str, prefix: str, encrypted_prefix: str, base: Any, record: ListItem
) -> ObjectInfo | None:
    relative = record.key[len(encrypted_prefix) :]
    try:
        if record.is_prefix:
            name = decrypt_path(base, relative[:-1]) + "/"
            return ObjectInfo(bucket, prefix + name, is_prefix=True)
        name = decrypt_path(base, relative)
    except DecryptionError:
        return None  # a name under keys this grant does not hold
    meta = ObjectMetadata(record.plain_size or 0)
    if record.encrypted_metadata is not None:
        with contextlib.suppress(DecryptionError, DecodeError):
            meta = SealedMetadata.decode(record.encrypted_metadata).open(object_key(base, name))
    return ObjectInfo(
        bucket=bucket,
        key=prefix + name,
        size=record.plain_size or 0,
        content_type=meta.content_type,
        metadata=dict(meta.custom),
        created_at=record.created_at or 0,
        checksum=meta.checksum,
    )
