"""HTTP's Range and conditional headers as S3 applies them to GET, HEAD and copies (pure)."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping

from metadisk.gateway.s3errors import S3Error


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(offset, length) a ``Range`` header asks of an object of `size` bytes; None: the whole.

    A header that is not a single byte range is ignored, as S3 does; one that starts past the
    end is `InvalidRange`.
    """
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            suffix = int(last)
            if suffix < 0:
                return None
            if suffix == 0:
                raise _unsatisfiable(size)
            start = max(size - suffix, 0)
            return start, size - start
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start < 0 or (last and end < start):
        return None
    if start >= size:
        raise _unsatisfiable(size)
    end = min(end, size - 1)
    return start, end - start + 1


def _unsatisfiable(size: int) -> S3Error:
    return S3Error(
        "InvalidRange",
        "The requested range is not satisfiable",
        ActualObjectSize=size,
    )


def check(headers: Mapping[str, str], etag: str, modified: int, *, prefix: str = "") -> None:
    """Raise what S3 answers when the conditional headers do not hold for an object with
    `etag` (unquoted) last modified at `modified` (Unix seconds).

    `prefix` is ``"x-amz-copy-source-"`` for a copy's conditions on its source, which fail with
    412 where a GET would answer 304.
    """
    if_match = headers.get(prefix + "if-match")
    if_none_match = headers.get(prefix + "if-none-match")
    since = _date(headers.get(prefix + "if-modified-since"))
    unmodified = _date(headers.get(prefix + "if-unmodified-since"))
    not_modified = "PreconditionFailed" if prefix else "NotModified"
    if if_match is not None:
        if not _matches(if_match, etag):
            raise S3Error("PreconditionFailed", "At least one of the preconditions failed")
    elif unmodified is not None and modified > unmodified:
        raise S3Error("PreconditionFailed", "At least one of the preconditions failed")
    if if_none_match is not None:
        if _matches(if_none_match, etag):
            raise S3Error(not_modified, "Not Modified")
    elif since is not None and modified <= since:
        raise S3Error(not_modified, "Not Modified")


def _matches(header: str, etag: str) -> bool:
    tags = [t.strip() for t in header.split(",")]
    return any(t == "*" or t.removeprefix("W/").strip('"') == etag for t in tags)


def _date(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # an unparsable date is ignored, as HTTP says
    return int(moment.timestamp())
