"""Small helpers the operations share: XML answers and reading a request's query."""

from __future__ import annotations

from aiohttp import web
from multidict import MultiMapping

from metadisk.gateway.s3errors import S3Error

MAX_KEYS = 1000


def xml(body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/xml")


def empty(status: int = 200, **headers: str) -> web.Response:
    return web.Response(status=status, headers=headers)


def count(query: MultiMapping[str], name: str, default: int = MAX_KEYS) -> int:
    """A non-negative integer parameter (max-keys, max-uploads...), capped at 1,000 as S3 does."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise S3Error("InvalidArgument", f"{name} must be an integer") from None
    if value < 0:
        raise S3Error("InvalidArgument", f"{name} must not be negative")
    return min(value, MAX_KEYS)


def url_encoding(query: MultiMapping[str]) -> bool:
    """Whether names in the answer are URL-encoded (encoding-type=url)."""
    kind = query.get("encoding-type")
    if kind is None:
        return False
    if kind != "url":
        raise S3Error("InvalidArgument", "encoding-type may only be url")
    return True
