"""The client's own stored formats: per-segment keys and object metadata.

Both travel to the bridge as opaque bytes and only mean something to a key holder.

- `SegmentKey` (the bridge's per-segment ``encrypted_key``): the segment's random content key
  wrapped by the object key and bound to the segment's index, plus a `plaintext_tag`. The tag
  lets an interrupted upload check, without uploading again, that a committed segment still
  matches the local file. It is a BLAKE3 hash of the segment's AES-GCM block tags, which are
  already MACs of the plaintext under the content key: computing it at upload costs nothing
  extra (no second pass over the data), and it says nothing to anyone without the content key.
- `ObjectMetadata`: content type, custom metadata, the plaintext size and, from objects
  uploaded since issue 14, the whole object's `checksum` (BLAKE3-256 of its plaintext), as JSON.
  An object stored before has no ``checksum`` field and reads as ``checksum=None``; the version
  stays 1, so an older client still reads a newer object's metadata (it ignores the field).
- `SealedMetadata` (the bridge's object ``encrypted_metadata``): `ObjectMetadata` encrypted with
  `metadisk.core.keys.encrypt_metadata` (under a random key wrapped by the object key), and for
  an inline object the `SegmentKey` of its data. A move re-wraps the two small keys only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import blake3

from metadisk.core.content import BLOCK_SIZE, TAG_SIZE
from metadisk.core.encoding import Reader, Writer
from metadisk.core.errors import DecodeError
from metadisk.core.keys import (
    WRAPPED_KEY_SIZE,
    decrypt_metadata,
    encrypt_metadata,
    rewrap_metadata_key,
    rewrap_segment_key,
    unwrap_segment_key,
    wrap_segment_key,
)

TAG_SEGMENT_KEY = 0x50
TAG_SEALED_METADATA = 0x51
_PLAINTEXT_TAG_CONTEXT = "metadisk 2026 segment plaintext tag v1"
CHECKSUM_SIZE = 32  # BLAKE3-256
# Custom metadata plus content type as JSON: the bridge stores at most 8 KiB of sealed metadata.
MAX_METADATA_BYTES = 7 * 1024


def plaintext_tag(content_key: bytes, ciphertext: bytes | memoryview) -> bytes:
    """A segment's tag: keyed BLAKE3 over the GCM tags of its ciphertext's blocks.

    The same plaintext, content key and segment index always give the same ciphertext (the
    nonces are fixed by position), so re-encrypting the local data reproduces the tag.
    """
    view = memoryview(ciphertext)
    sealed = BLOCK_SIZE + TAG_SIZE
    ends = [*range(sealed, len(view), sealed), len(view)]
    tags = b"".join(view[end - TAG_SIZE : end] for end in ends)
    key = blake3.blake3(content_key, derive_key_context=_PLAINTEXT_TAG_CONTEXT).digest()
    return bytes(blake3.blake3(tags, key=key).digest())


@dataclass(frozen=True, slots=True)
class SegmentKey:
    """A segment's wrapped content key and plaintext tag, as stored at the bridge."""

    wrapped_key: bytes
    plaintext_tag: bytes

    VERSION = 1

    @classmethod
    def seal(cls, object_key: bytes, index: int, content_key: bytes, tag: bytes) -> SegmentKey:
        """Wrap segment `index`'s content key under its object key, bound to that index: the
        bridge cannot hand one segment's key out as another's, nor as a metadata key."""
        return cls(wrap_segment_key(object_key, content_key, index), tag)

    def content_key(self, object_key: bytes, index: int) -> bytes:
        """The content key of segment `index`; `DecryptionError` under any other object key or
        for any other segment."""
        return unwrap_segment_key(object_key, self.wrapped_key, index)

    def rewrap(self, old_object_key: bytes, new_object_key: bytes, index: int) -> SegmentKey:
        """The same content key under a new object key: a move or copy re-keys only this."""
        wrapped = rewrap_segment_key(old_object_key, new_object_key, self.wrapped_key, index)
        return SegmentKey(wrapped, self.plaintext_tag)

    def encode(self) -> bytes:
        return (
            Writer()
            .u8(TAG_SEGMENT_KEY)
            .u8(self.VERSION)
            .fixed(self.wrapped_key, WRAPPED_KEY_SIZE)
            .fixed(self.plaintext_tag, 32)
            .getvalue()
        )

    @classmethod
    def decode(cls, data: bytes) -> SegmentKey:
        r = Reader(data)
        r.header(TAG_SEGMENT_KEY, cls.VERSION)
        wrapped = r.fixed(WRAPPED_KEY_SIZE)
        tag = r.fixed(32)
        r.end()
        return cls(wrapped, tag)


@dataclass(frozen=True, slots=True)
class ObjectMetadata:
    """What the client stores encrypted beside an object."""

    size: int
    content_type: str = "application/octet-stream"
    custom: Mapping[str, str] = field(default_factory=dict)
    checksum: bytes | None = None  # BLAKE3-256 of the whole plaintext; None: stored without

    VERSION = 1

    def __post_init__(self) -> None:
        if self.checksum is not None and (
            not isinstance(self.checksum, bytes) or len(self.checksum) != CHECKSUM_SIZE
        ):
            raise ValueError(f"a checksum is {CHECKSUM_SIZE} bytes")
        if not isinstance(self.content_type, str):
            raise ValueError("content_type must be text")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.custom.items()):
            raise ValueError("custom metadata maps text to text")

    def encode(self) -> bytes:
        fields: dict[str, Any] = {
            "v": self.VERSION,
            "size": self.size,
            "content_type": self.content_type,
            "custom": dict(self.custom),
        }
        if self.checksum is not None:  # absent, not null: without one it encodes as before
            fields["checksum"] = self.checksum.hex()
        raw = json.dumps(
            fields,
            separators=(",", ":"),
            sort_keys=True,
        ).encode("utf-8")
        if len(raw) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is larger than {MAX_METADATA_BYTES} bytes")
        return raw

    @classmethod
    def decode(cls, data: bytes) -> ObjectMetadata:
        try:
            raw: Any = json.loads(data)
            if not isinstance(raw, dict) or raw.get("v") != cls.VERSION:
                raise ValueError("unknown metadata version")
            size = raw["size"]
            if not isinstance(size, int) or size < 0:
                raise ValueError("bad size")
            checksum = raw.get("checksum")
            if checksum is not None:
                if not isinstance(checksum, str) or len(checksum) != 2 * CHECKSUM_SIZE:
                    raise ValueError("bad checksum")
                checksum = bytes.fromhex(checksum)
            return cls(size, raw["content_type"], dict(raw["custom"]), checksum)
        except (ValueError, KeyError, TypeError) as exc:
            raise DecodeError(f"malformed object metadata: {exc}") from exc


@dataclass(frozen=True, slots=True)
class SealedMetadata:
    """An object's encrypted metadata and, for an inline object, its data's key."""

    wrapped_key: bytes  # the metadata key, wrapped by the object key
    encrypted: bytes  # ObjectMetadata under the metadata key
    inline_key: SegmentKey | None = None

    VERSION = 1

    @classmethod
    def seal(
        cls, object_key: bytes, metadata: ObjectMetadata, inline_key: SegmentKey | None = None
    ) -> SealedMetadata:
        encrypted, wrapped = encrypt_metadata(object_key, metadata.encode())
        return cls(wrapped, encrypted, inline_key)

    def open(self, object_key: bytes) -> ObjectMetadata:
        """The metadata; `DecryptionError` under another object key, `DecodeError` if garbled."""
        return ObjectMetadata.decode(decrypt_metadata(object_key, self.encrypted, self.wrapped_key))

    def rewrap(self, old_object_key: bytes, new_object_key: bytes) -> SealedMetadata:
        inline = None
        if self.inline_key is not None:
            inline = self.inline_key.rewrap(old_object_key, new_object_key, 0)
        wrapped = rewrap_metadata_key(old_object_key, new_object_key, self.wrapped_key)
        return SealedMetadata(wrapped, self.encrypted, inline)

    def encode(self) -> bytes:
        w = Writer().u8(TAG_SEALED_METADATA).u8(self.VERSION)
        w.fixed(self.wrapped_key, WRAPPED_KEY_SIZE).blob(self.encrypted)
        if self.inline_key is None:
            w.u8(0)
        else:
            w.u8(1).blob(self.inline_key.encode())
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> SealedMetadata:
        r = Reader(data)
        r.header(TAG_SEALED_METADATA, cls.VERSION)
        wrapped = r.fixed(WRAPPED_KEY_SIZE)
        encrypted = r.blob(MAX_METADATA_BYTES + 64)
        flag = r.u8()
        if flag not in (0, 1):
            raise DecodeError("inline key flag must be 0 or 1")
        inline = SegmentKey.decode(r.blob(256)) if flag else None
        r.end()
        return cls(wrapped, encrypted, inline)
