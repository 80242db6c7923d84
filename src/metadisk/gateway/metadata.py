"""S3's object metadata in ours: headers in, headers out, and the ETag.

Everything S3 keeps beside an object is stored in the object's encrypted metadata: the content
type in its own field, ``x-amz-meta-*`` as user metadata under their names, and the few
standard headers S3 stores (Content-Disposition, Content-Encoding, Cache-Control,
Content-Language, Expires) and the ETag under reserved names that begin with ``s3:``. A colon is
not allowed in a header name, so no ``x-amz-meta-`` name can collide with them.

The ETag is the hex MD5 of the object for a single PUT, and the MD5 of the parts' MD5s with
``-N`` for a multipart upload, as clients expect. Objects written by the CLI or the library have
no MD5; theirs is made from the BLAKE3 checksum, with a ``-1`` suffix so that no client takes it
for an MD5 it could compare.
"""

from __future__ import annotations

import datetime
import email.utils
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from metadisk.client import ObjectInfo
from metadisk.gateway.s3errors import S3Error

USER_PREFIX = "x-amz-meta-"
RESERVED = "s3:"
ETAG = RESERVED + "etag"
# Standard headers S3 stores with an object and returns on GET and HEAD.
STORED_HEADERS = (
    "content-disposition",
    "content-encoding",
    "cache-control",
    "content-language",
    "expires",
)
DEFAULT_CONTENT_TYPE = "binary/octet-stream"  # what S3 answers for an object stored without one
MAX_USER_METADATA = 2048  # bytes of x-amz-meta-* names and values, S3's limit


@dataclass(frozen=True, slots=True)
class Stored:
    """What a PUT's headers ask to store beside the object."""

    content_type: str
    custom: Mapping[str, str]


def from_headers(headers: Mapping[str, str]) -> Stored:
    """The content type and the metadata to store, from a PUT's (lower-cased) headers."""
    custom: dict[str, str] = {}
    user_bytes = 0
    for name, value in headers.items():
        if name.startswith(USER_PREFIX) and len(name) > len(USER_PREFIX):
            key = name[len(USER_PREFIX) :]
            custom[key] = value
            user_bytes += len(key.encode()) + len(value.encode())
    if user_bytes > MAX_USER_METADATA:
        raise S3Error(
            "MetadataTooLarge",
            f"your metadata headers exceed the maximum allowed metadata size "
            f"({MAX_USER_METADATA} bytes)",
        )
    for name in STORED_HEADERS:
        value = headers.get(name, "")
        if name == "content-encoding":
            # aws-chunked is how this request's body was framed, not how the object is encoded.
            value = ",".join(
                e.strip() for e in value.split(",") if e.strip() and e.strip() != "aws-chunked"
            )
        if value:
            custom[RESERVED + name] = value
    return Stored(headers.get("content-type") or DEFAULT_CONTENT_TYPE, custom)


def with_etag(stored: Stored, etag: str) -> Stored:
    return Stored(stored.content_type, {**stored.custom, ETAG: etag})


def etag_of(info: ObjectInfo) -> str:
    """The object's ETag, unquoted."""
    stored = info.metadata.get(ETAG)
    if stored:
        return stored
    if info.checksum is not None:
        return info.checksum[:16].hex() + "-1"
    # No MD5 and no checksum (an object stored in parts by the library): still stable per version.
    seed = f"{info.bucket}\0{info.key}\0{info.size}\0{info.created_at}".encode()
    return hashlib.md5(seed, usedforsecurity=False).hexdigest() + "-1"


def multipart_etag(part_md5s: Iterable[bytes]) -> str:
    """S3's ETag of a multipart object: MD5 of the concatenated part MD5s, then -N."""
    digests = list(part_md5s)
    joined = hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()
    return f"{joined}-{len(digests)}"


def response_headers(info: ObjectInfo) -> dict[str, str]:
    """The headers GET and HEAD answer with for `info` (not the length)."""
    headers = {
        "ETag": f'"{etag_of(info)}"',
        "Last-Modified": http_date(info.created_at),
        "Content-Type": info.content_type or DEFAULT_CONTENT_TYPE,
        "Accept-Ranges": "bytes",
    }
    for key, value in info.metadata.items():
        if key.startswith(RESERVED):
            name = key[len(RESERVED) :]
            if name in STORED_HEADERS:
                headers[name.title()] = value
        elif _header_safe(key) and _header_safe(value):
            headers[USER_PREFIX + key] = value
    return headers


def user_metadata(info: ObjectInfo) -> dict[str, str]:
    """The object's ``x-amz-meta-*`` metadata, without the reserved names."""
    return {k: v for k, v in info.metadata.items() if not k.startswith(RESERVED)}


def http_date(unix: int | float) -> str:
    return email.utils.formatdate(unix, usegmt=True)


def moment(unix: int | float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(unix, datetime.UTC)


def _header_safe(text: str) -> bool:
    return text.isascii() and "\r" not in text and "\n" not in text
