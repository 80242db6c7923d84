"""S3 listing semantics over sorted names: prefixes, delimiters, markers and pages.

Pure functions over sequences the caller has already sorted. S3 sorts keys by their UTF-8
bytes; for any string without lone surrogates that is the same order as Python's ``str``
comparison (UTF-8 preserves code-point order), so the functions here compare ``str`` directly and
:func:`sort_key` exists for callers that sort bytes or need an explicit key.

One page of a listing holds at most ``max_keys`` results, where a result is either an entry or a
common prefix (each counts one, each common prefix appears once). A page resumes strictly after
``after``; when ``after`` falls inside a common prefix (or equals it), the whole prefix was
already returned and is skipped. ``next_marker`` of a truncated page is the last key or common
prefix it returned: exactly what v1's ``NextMarker``, v2's continuation token (through
:func:`encode_token`) and the uploads' ``NextKeyMarker`` must resume after.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from metadisk.gateway.s3errors import S3Error

MAX_KEYS = 1000
MAX_PART_NUMBER = 10_000
# A continuation token carries at most a 1024-byte key; anything much longer is not ours.
_MAX_TOKEN_CHARS = 2048
_TOKEN_ALPHABET = re.compile(r"[A-Za-z0-9_-]*={0,2}")


class Keyed(Protocol):
    """Anything listed by key."""

    @property
    def key(self) -> str: ...


@dataclass(frozen=True)
class Entry:
    """One object as a listing shows it; ``etag`` is unquoted."""

    key: str
    size: int
    etag: str
    last_modified: datetime


@dataclass(frozen=True)
class Upload:
    """One multipart upload in progress."""

    key: str
    upload_id: str
    initiated: datetime


@dataclass(frozen=True)
class Part:
    """One uploaded part of a multipart upload; ``etag`` is unquoted."""

    part_number: int
    size: int
    etag: str
    last_modified: datetime


T = TypeVar("T", bound=Keyed)
P = TypeVar("P", bound=Part)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing; ``next_marker`` is set exactly when the page is truncated."""

    contents: tuple[T, ...]
    common_prefixes: tuple[str, ...]
    is_truncated: bool
    next_marker: str | None

    @property
    def key_count(self) -> int:
        """What v2's ``KeyCount`` says: entries and common prefixes together."""
        return len(self.contents) + len(self.common_prefixes)


@dataclass(frozen=True)
class UploadPage(Generic[T]):
    """One page of ``ListMultipartUploads``; the next markers are set when truncated."""

    uploads: tuple[T, ...]
    common_prefixes: tuple[str, ...]
    is_truncated: bool
    next_key_marker: str | None
    next_upload_id_marker: str | None


@dataclass(frozen=True)
class PartPage(Generic[P]):
    """One page of ``ListParts``; ``next_part_number_marker`` is the last part returned."""

    parts: tuple[P, ...]
    is_truncated: bool
    next_part_number_marker: int | None


def sort_key(name: str) -> bytes:
    """The order S3 lists names in: their UTF-8 bytes."""
    return name.encode("utf-8", "surrogatepass")


def _successor(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None: no bound)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


def _walk(
    items: Sequence[T],
    key_of: Callable[[T], str],
    *,
    start: int,
    prefix: str,
    delimiter: str | None,
    after: str | None,
    limit: int,
) -> tuple[list[T | str], bool]:
    """Up to ``limit`` results (items or common prefixes) from ``start``; whether more follow."""
    bound = _successor(prefix)
    end = len(items) if bound is None else bisect.bisect_left(items, bound, key=key_of)
    start = max(start, bisect.bisect_left(items, prefix, key=key_of))
    found: list[T | str] = []
    index = start
    while index < end:
        item = items[index]
        name = key_of(item)
        cut = name.find(delimiter, len(prefix)) if delimiter else -1
        if cut < 0:
            if len(found) == limit:
                return found, True
            found.append(item)
            index += 1
            continue
        common = name[: cut + len(delimiter or "")]
        # Every name under ``common`` sits in [common, successor(common)): jump over them all.
        above = _successor(common)
        index = (
            end if above is None else max(index + 1, bisect.bisect_left(items, above, key=key_of))
        )
        if after is not None and after.startswith(common):
            continue  # a previous page already returned this prefix
        if len(found) == limit:
            return found, True
        found.append(common)
    return found, False


def _split(found: list[T | str]) -> tuple[tuple[T, ...], tuple[str, ...]]:
    contents = tuple(item for item in found if not isinstance(item, str))
    prefixes = tuple(item for item in found if isinstance(item, str))
    return contents, prefixes


def _name(item: T | str, key_of: Callable[[T], str]) -> str:
    return item if isinstance(item, str) else key_of(item)


def _key(item: Keyed) -> str:
    return item.key


def page(
    entries: Sequence[T],
    *,
    prefix: str = "",
    delimiter: str | None = None,
    after: str | None = None,
    max_keys: int = MAX_KEYS,
) -> Page[T]:
    """One page of ``ListObjects``/``ListObjectsV2`` over ``entries`` sorted by key.

    ``after`` is v1's marker or v2's start-after/continuation point (see :func:`resume_after`);
    an empty delimiter is no delimiter, as in S3. ``max_keys`` 0 gives an empty page that is
    not truncated, as S3 answers.
    """
    if max_keys < 0:
        raise ValueError("max_keys must not be negative")
    start = 0 if not after else bisect.bisect_right(entries, after, key=_key)
    found, more = _walk(
        entries,
        _key,
        start=start,
        prefix=prefix,
        delimiter=delimiter or None,
        after=after or None,
        limit=max_keys,
    )
    contents, prefixes = _split(found)
    truncated = more and max_keys > 0
    marker = _name(found[-1], _key) if truncated else None
    return Page(contents, prefixes, truncated, marker)


def page_uploads(
    uploads: Sequence[T],
    *,
    upload_id: Callable[[T], str],
    prefix: str = "",
    delimiter: str | None = None,
    key_marker: str | None = None,
    upload_id_marker: str | None = None,
    max_uploads: int = MAX_KEYS,
) -> UploadPage[T]:
    """One page of ``ListMultipartUploads`` over uploads sorted by (key, upload id).

    As in S3, ``upload_id_marker`` counts only with a ``key_marker``: then uploads of that very
    key with a greater upload id come first; without it, every upload of ``key_marker`` is
    skipped.
    """
    if max_uploads < 0:
        raise ValueError("max_uploads must not be negative")
    if not key_marker:
        start = 0
    elif upload_id_marker:
        marker = (key_marker, upload_id_marker)
        start = bisect.bisect_right(uploads, marker, key=lambda u: (u.key, upload_id(u)))
    else:
        start = bisect.bisect_right(uploads, key_marker, key=_key)
    found, more = _walk(
        uploads,
        _key,
        start=start,
        prefix=prefix,
        delimiter=delimiter or None,
        after=key_marker or None,
        limit=max_uploads,
    )
    listed, prefixes = _split(found)
    truncated = more and max_uploads > 0
    next_key = next_id = None
    if truncated:
        last = found[-1]
        next_key = _name(last, _key)
        next_id = "" if isinstance(last, str) else upload_id(last)
    return UploadPage(listed, prefixes, truncated, next_key, next_id)


def page_parts(
    parts: Sequence[P], *, part_number_marker: int = 0, max_parts: int = MAX_KEYS
) -> PartPage[P]:
    """One page of ``ListParts`` over parts sorted by part number: those above the marker."""
    if max_parts < 0:
        raise ValueError("max_parts must not be negative")
    start = bisect.bisect_right(parts, part_number_marker, key=lambda p: p.part_number)
    chosen = tuple(parts[start : start + max_parts])
    truncated = max_parts > 0 and start + max_parts < len(parts)
    marker = chosen[-1].part_number if truncated else None
    return PartPage(chosen, truncated, marker)


def encode_token(after: str) -> str:
    """The v2 continuation token that resumes after ``after``: opaque to clients."""
    return base64.urlsafe_b64encode(after.encode("utf-8")).decode("ascii").rstrip("=")


def decode_token(token: str) -> str | None:
    """The name a continuation token resumes after; None for an empty token, as S3 takes it.

    Raises S3Error InvalidArgument for anything :func:`encode_token` did not make.
    """
    if not token:
        return None
    invalid = S3Error(
        "InvalidArgument",
        "The continuation token provided is incorrect",
        ArgumentName="continuation-token",
        ArgumentValue=token[:_MAX_TOKEN_CHARS],
    )
    if len(token) > _MAX_TOKEN_CHARS or not _TOKEN_ALPHABET.fullmatch(token):
        raise invalid
    padded = token.rstrip("=")
    padded += "=" * (-len(padded) % 4)
    try:
        name = base64.urlsafe_b64decode(padded).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid from None
    if not name or encode_token(name) != token.rstrip("="):
        raise invalid
    return name


def resume_after(start_after: str | None, continuation_token: str | None) -> str | None:
    """Where a v2 listing resumes: the continuation token wins over start-after, as in S3."""
    resumed = decode_token(continuation_token) if continuation_token else None
    if resumed is not None:
        return resumed
    return start_after or None
