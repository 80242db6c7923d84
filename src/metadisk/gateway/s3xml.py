"""S3's XML bodies: the documents the gateway answers with, and the three it reads.

Renderers return UTF-8 bytes with the XML declaration, in S3's namespace. Times are ISO 8601
in UTC with milliseconds (``2026-12-05T06:00:00.000Z``); a naive ``datetime`` is taken as UTC.
ETags are given unquoted and written quoted, as S3 does (``&quot;...&quot;`` once escaped).

With ``encoding_url`` (the request's ``encoding-type=url``) the names S3 encodes are
percent-encoded as S3 does: every byte of their UTF-8 but the unreserved characters and ``/``
(so ``+`` is ``%2B`` and a space ``%20``), and ``<EncodingType>url</EncodingType>`` is echoed.

Characters XML 1.0 cannot carry at all (most C0 controls, U+FFFE, U+FFFF, lone surrogates) are
S3's known trap: it writes them as character references no XML 1.0 parser accepts. Here:
:func:`check_key` refuses them at upload (``InvalidObjectName``), and a renderer asked to write
one anyway without ``encoding_url`` (a prefix or marker echoed from a query, say) raises S3Error
``InvalidArgument`` telling the client to use ``encoding-type=url``, instead of sending a
document the client cannot parse. A carriage return is allowed and written ``&#13;`` so that it
survives parsing.

Parsers take the raw body, refuse bodies over their limit (``MaxMessageLengthExceeded``; the
caller should read at most the limit plus one byte), any DOCTYPE and thereby any entity
declaration, and answer S3Error ``MalformedXML`` for anything else that is not the expected
document. Expat (2.4+) already bounds entity expansion, but refusing the DOCTYPE leaves nothing
to expand and no external entity to resolve, so ``defusedxml`` is not needed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import quote
from xml.parsers import expat

from metadisk.gateway.listing import (
    MAX_PART_NUMBER,
    Entry,
    Page,
    Part,
    PartPage,
    Upload,
    UploadPage,
    encode_token,
)
from metadisk.gateway.s3errors import XML_FORBIDDEN, S3Error

NAMESPACE: Final = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_KEY_BYTES: Final = 1024
MAX_DELETE_KEYS: Final = 1000
# Upper bounds of honest bodies: 10,000 parts with a checksum each stay near 3 MB, 1,000 keys
# of 1,024 bytes near 1 MB before escaping.
MAX_COMPLETE_BODY: Final = 8 * 1024 * 1024
MAX_DELETE_BODY: Final = 8 * 1024 * 1024
MAX_CREATE_BUCKET_BODY: Final = 64 * 1024
_MAX_DEPTH = 8
_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


@dataclass(frozen=True)
class Owner:
    """The owner S3 names in listings; the gateway has one user, the key's holder."""

    id: str
    display_name: str


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, as S3 writes times in XML."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def check_key(key: str) -> None:
    """Refuse an object key S3 clients could not list: too long, empty or not XML 1.0 text."""
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise S3Error("InvalidObjectName", Key=key.encode("utf-8", "replace").decode()) from None
    if size > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", Size=size, MaxSizeAllowed=MAX_KEY_BYTES)
    if not key:
        raise S3Error("InvalidArgument", "An object key must not be empty.")
    if XML_FORBIDDEN.search(key):
        raise S3Error("InvalidObjectName", Key=key)


def _text(value: str) -> str:
    if XML_FORBIDDEN.search(value):
        raise S3Error(
            "InvalidArgument",
            "The listing holds characters XML 1.0 cannot carry; use encoding-type=url.",
            ArgumentName="encoding-type",
        )
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\r", "&#13;")
    )


def _url(value: str) -> str:
    return quote(value, safe="/", errors="strict")


class _Doc:
    """A tiny writer: S3's documents are flat enough that a list of strings is the clearest."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.parts = [_DECLARATION, f'<{root} xmlns="{NAMESPACE}">']

    def el(self, name: str, value: str | int | bool | None) -> None:
        if value is None:
            return
        text = ("true" if value else "false") if isinstance(value, bool) else _text(str(value))
        self.parts.append(f"<{name}>{text}</{name}>" if text else f"<{name}/>")

    def open(self, name: str) -> None:
        self.parts.append(f"<{name}>")

    def close(self, name: str) -> None:
        self.parts.append(f"</{name}>")

    def owner(self, name: str, owner: Owner | None) -> None:
        if owner is not None:
            self.open(name)
            self.el("ID", owner.id)
            self.el("DisplayName", owner.display_name)
            self.close(name)

    def done(self) -> bytes:
        self.parts.append(f"</{self.root}>")
        return "".join(self.parts).encode("utf-8")


def _etag(etag: str) -> str:
    return f'"{etag}"'


def list_buckets(buckets: Iterable[tuple[str, datetime]], *, owner: Owner) -> bytes:
    """``ListAllMyBucketsResult`` for (name, creation date) pairs."""
    doc = _Doc("ListAllMyBucketsResult")
    doc.owner("Owner", owner)
    doc.open("Buckets")
    for name, created in buckets:
        doc.open("Bucket")
        doc.el("Name", name)
        doc.el("CreationDate", format_time(created))
        doc.close("Bucket")
    doc.close("Buckets")
    return doc.done()


def _contents(doc: _Doc, entries: Sequence[Entry], owner: Owner | None, url: bool) -> None:
    for entry in entries:
        doc.open("Contents")
        doc.el("Key", _url(entry.key) if url else entry.key)
        doc.el("LastModified", format_time(entry.last_modified))
        doc.el("ETag", _etag(entry.etag))
        doc.el("Size", entry.size)
        doc.owner("Owner", owner)
        doc.el("StorageClass", "STANDARD")
        doc.close("Contents")


def _prefixes(doc: _Doc, prefixes: Sequence[str], url: bool) -> None:
    for prefix in prefixes:
        doc.open("CommonPrefixes")
        doc.el("Prefix", _url(prefix) if url else prefix)
        doc.close("CommonPrefixes")


def _maybe_url(value: str | None, url: bool) -> str | None:
    return _url(value) if url and value is not None else value


def list_objects_v1(
    bucket: str,
    page: Page[Entry],
    *,
    prefix: str,
    delimiter: str | None,
    marker: str,
    max_keys: int,
    encoding_url: bool = False,
    owner: Owner | None = None,
) -> bytes:
    """``ListBucketResult`` of ``ListObjects``; ``NextMarker`` only when truncated with a
    delimiter, as S3 does (without one, clients resume after the last key)."""
    doc = _Doc("ListBucketResult")
    doc.el("Name", bucket)
    doc.el("Prefix", _maybe_url(prefix, encoding_url))
    doc.el("Marker", _maybe_url(marker, encoding_url))
    if page.is_truncated and delimiter:
        doc.el("NextMarker", _maybe_url(page.next_marker, encoding_url))
    doc.el("MaxKeys", max_keys)
    if delimiter:
        doc.el("Delimiter", _maybe_url(delimiter, encoding_url))
    doc.el("IsTruncated", page.is_truncated)
    if encoding_url:
        doc.el("EncodingType", "url")
    _contents(doc, page.contents, owner, encoding_url)
    _prefixes(doc, page.common_prefixes, encoding_url)
    return doc.done()


def list_objects_v2(
    bucket: str,
    page: Page[Entry],
    *,
    prefix: str,
    delimiter: str | None,
    max_keys: int,
    start_after: str | None = None,
    continuation_token: str | None = None,
    encoding_url: bool = False,
    owner: Owner | None = None,
) -> bytes:
    """``ListBucketResult`` of ``ListObjectsV2``; ``owner`` only with ``fetch-owner=true``.

    ``continuation_token`` and ``start_after`` are echoed as the request gave them;
    ``NextContinuationToken`` comes from the page (see ``listing.encode_token``).
    """
    doc = _Doc("ListBucketResult")
    doc.el("Name", bucket)
    doc.el("Prefix", _maybe_url(prefix, encoding_url))
    if start_after:
        doc.el("StartAfter", _maybe_url(start_after, encoding_url))
    doc.el("KeyCount", page.key_count)
    doc.el("MaxKeys", max_keys)
    if delimiter:
        doc.el("Delimiter", _maybe_url(delimiter, encoding_url))
    doc.el("IsTruncated", page.is_truncated)
    if continuation_token is not None:
        doc.el("ContinuationToken", continuation_token)
    if page.is_truncated and page.next_marker is not None:
        doc.el("NextContinuationToken", encode_token(page.next_marker))
    if encoding_url:
        doc.el("EncodingType", "url")
    _contents(doc, page.contents, owner, encoding_url)
    _prefixes(doc, page.common_prefixes, encoding_url)
    return doc.done()


def location_constraint(region: str) -> bytes:
    """``LocationConstraint``: empty for us-east-1, as S3 answers, else the region."""
    doc = _Doc("LocationConstraint")
    if region and region != "us-east-1":
        doc.parts.append(_text(region))
    return doc.done()


def versioning_configuration() -> bytes:
    """``VersioningConfiguration`` of a bucket that was never versioned: no Status."""
    return _Doc("VersioningConfiguration").done()


def initiate_multipart_upload(bucket: str, key: str, upload_id: str) -> bytes:
    """``InitiateMultipartUploadResult``."""
    doc = _Doc("InitiateMultipartUploadResult")
    doc.el("Bucket", bucket)
    doc.el("Key", key)
    doc.el("UploadId", upload_id)
    return doc.done()


def complete_multipart_upload(location: str, bucket: str, key: str, etag: str) -> bytes:
    """``CompleteMultipartUploadResult``; ``etag`` unquoted (``<md5 of md5s>-<parts>``)."""
    doc = _Doc("CompleteMultipartUploadResult")
    doc.el("Location", location)
    doc.el("Bucket", bucket)
    doc.el("Key", key)
    doc.el("ETag", _etag(etag))
    return doc.done()


def list_multipart_uploads(
    bucket: str,
    page: UploadPage[Upload],
    *,
    prefix: str,
    delimiter: str | None,
    key_marker: str,
    upload_id_marker: str,
    max_uploads: int,
    encoding_url: bool = False,
    owner: Owner | None = None,
) -> bytes:
    """``ListMultipartUploadsResult``."""
    doc = _Doc("ListMultipartUploadsResult")
    doc.el("Bucket", bucket)
    doc.el("KeyMarker", _maybe_url(key_marker, encoding_url))
    doc.el("UploadIdMarker", upload_id_marker)
    if page.is_truncated:
        doc.el("NextKeyMarker", _maybe_url(page.next_key_marker, encoding_url))
        doc.el("NextUploadIdMarker", page.next_upload_id_marker)
    if delimiter:
        doc.el("Delimiter", _maybe_url(delimiter, encoding_url))
    doc.el("Prefix", _maybe_url(prefix, encoding_url))
    doc.el("MaxUploads", max_uploads)
    doc.el("IsTruncated", page.is_truncated)
    if encoding_url:
        doc.el("EncodingType", "url")
    for upload in page.uploads:
        doc.open("Upload")
        doc.el("Key", _url(upload.key) if encoding_url else upload.key)
        doc.el("UploadId", upload.upload_id)
        doc.owner("Initiator", owner)
        doc.owner("Owner", owner)
        doc.el("StorageClass", "STANDARD")
        doc.el("Initiated", format_time(upload.initiated))
        doc.close("Upload")
    _prefixes(doc, page.common_prefixes, encoding_url)
    return doc.done()


def list_parts(
    bucket: str,
    key: str,
    upload_id: str,
    page: PartPage[Part],
    *,
    part_number_marker: int,
    max_parts: int,
    owner: Owner | None = None,
) -> bytes:
    """``ListPartsResult``."""
    doc = _Doc("ListPartsResult")
    doc.el("Bucket", bucket)
    doc.el("Key", key)
    doc.el("UploadId", upload_id)
    doc.owner("Initiator", owner)
    doc.owner("Owner", owner)
    doc.el("StorageClass", "STANDARD")
    doc.el("PartNumberMarker", part_number_marker)
    if page.is_truncated:
        doc.el("NextPartNumberMarker", page.next_part_number_marker)
    doc.el("MaxParts", max_parts)
    doc.el("IsTruncated", page.is_truncated)
    for part in page.parts:
        doc.open("Part")
        doc.el("PartNumber", part.part_number)
        doc.el("LastModified", format_time(part.last_modified))
        doc.el("ETag", _etag(part.etag))
        doc.el("Size", part.size)
        doc.close("Part")
    return doc.done()


def _copy_result(root: str, etag: str, last_modified: datetime) -> bytes:
    doc = _Doc(root)
    doc.el("LastModified", format_time(last_modified))
    doc.el("ETag", _etag(etag))
    return doc.done()


def copy_object_result(etag: str, last_modified: datetime) -> bytes:
    """``CopyObjectResult``."""
    return _copy_result("CopyObjectResult", etag, last_modified)


def copy_part_result(etag: str, last_modified: datetime) -> bytes:
    """``CopyPartResult`` of ``UploadPartCopy``."""
    return _copy_result("CopyPartResult", etag, last_modified)


def delete_result(
    deleted: Iterable[str], errors: Iterable[S3Error | tuple[str, S3Error]], *, quiet: bool
) -> bytes:
    """``DeleteResult``: each deleted key (none when ``quiet``), then each failed key.

    An error is a ``(key, S3Error)`` pair, or an S3Error whose ``Key`` field names the key.
    """
    doc = _Doc("DeleteResult")
    if not quiet:
        for key in deleted:
            doc.open("Deleted")
            doc.el("Key", key)
            doc.close("Deleted")
    for failure in errors:
        key, err = failure if isinstance(failure, tuple) else (failure.fields["Key"], failure)
        doc.open("Error")
        doc.el("Key", key)
        doc.el("Code", err.code)
        doc.el("Message", err.message)
        doc.close("Error")
    return doc.done()


# -- reading ---------------------------------------------------------------------------------


def _malformed() -> S3Error:
    return S3Error("MalformedXML")


def _parse(body: bytes, limit: int, root: str) -> ET.Element:
    """The document's root, namespaces stripped, or S3Error; no DOCTYPE, no entity, no PI."""
    if len(body) > limit:
        raise S3Error("MaxMessageLengthExceeded")
    builder = ET.TreeBuilder()
    depth = 0

    def refuse(*_args: object) -> None:
        raise _malformed()

    def start(name: str, _attributes: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if depth > _MAX_DEPTH:
            raise _malformed()
        builder.start(name.rpartition(" ")[2], {})

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(name.rpartition(" ")[2])

    parser = expat.ParserCreate("UTF-8", namespace_separator=" ")
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(body, True)
        element = builder.close()
    except S3Error:
        raise
    except (expat.ExpatError, ValueError, AssertionError, IndexError):
        raise _malformed() from None
    if element.tag != root:
        raise _malformed()
    return element


def _only_text(element: ET.Element, name: str) -> str | None:
    """The text of the single child ``name``, None when absent; two of them is malformed."""
    found = element.findall(name)
    if len(found) > 1:
        raise _malformed()
    return None if not found else (found[0].text or "")


_DIGITS = re.compile(r"[0-9]{1,6}")


def parse_complete_multipart(body: bytes) -> list[tuple[int, str]]:
    """(part number, unquoted ETag) of each ``Part`` of ``CompleteMultipartUpload``.

    Checksum elements are ignored. Raises S3Error: MalformedXML (not the document, no part,
    a part without number or ETag), InvalidArgument (a part number outside 1..10000) or
    InvalidPartOrder (numbers not strictly ascending).
    """
    root = _parse(body, MAX_COMPLETE_BODY, "CompleteMultipartUpload")
    parts: list[tuple[int, str]] = []
    for element in root.findall("Part"):
        number_text = _only_text(element, "PartNumber")
        etag = _only_text(element, "ETag")
        if number_text is None or etag is None:
            raise _malformed()
        number_text = number_text.strip()
        if not _DIGITS.fullmatch(number_text):
            raise _malformed()
        number = int(number_text)
        if not 1 <= number <= MAX_PART_NUMBER:
            raise S3Error(
                "InvalidArgument",
                f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive",
                ArgumentName="partNumber",
                ArgumentValue=number,
            )
        if parts and number <= parts[-1][0]:
            raise S3Error("InvalidPartOrder")
        etag = etag.strip()
        if len(etag) >= 2 and etag[0] == etag[-1] == '"':
            etag = etag[1:-1]
        parts.append((number, etag))
    if not parts:
        raise _malformed()
    return parts


def parse_delete(body: bytes) -> tuple[bool, list[str]]:
    """(Quiet, keys) of ``DeleteObjects``; VersionId is ignored (nothing is versioned).

    Raises S3Error MalformedXML for no object, more than 1000, an object without key or a
    Quiet that is neither true nor false.
    """
    root = _parse(body, MAX_DELETE_BODY, "Delete")
    quiet_text = _only_text(root, "Quiet")
    quiet = False
    if quiet_text is not None:
        word = quiet_text.strip().lower()
        if word not in ("true", "false"):
            raise _malformed()
        quiet = word == "true"
    objects = root.findall("Object")
    if not objects or len(objects) > MAX_DELETE_KEYS:
        raise _malformed()
    keys = []
    for element in objects:
        key = _only_text(element, "Key")
        if key is None:
            raise _malformed()
        keys.append(key)
    return quiet, keys


def parse_create_bucket(body: bytes) -> str | None:
    """The ``LocationConstraint`` of ``CreateBucket``'s body; None for no body or none given."""
    if not body.strip():
        return None
    root = _parse(body, MAX_CREATE_BUCKET_BODY, "CreateBucketConfiguration")
    region = _only_text(root, "LocationConstraint")
    return region.strip() or None if region is not None else None
