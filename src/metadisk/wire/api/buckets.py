"""Bodies of buckets (API key bearer auth)."""

from __future__ import annotations

from pydantic import Field

from metadisk.wire.fields import BUCKET_PATTERN, MAX_BUCKET_NAME, MIN_BUCKET_NAME, Redundancy
from metadisk.wire.models import Answer, Request

MAX_BUCKET_PAGE = 1000


class NewBucket(Request):
    name: str = Field(
        max_length=MAX_BUCKET_NAME,
        json_schema_extra={"pattern": BUCKET_PATTERN, "minLength": MIN_BUCKET_NAME},
    )
    profile: str | None = Field(
        default=None, max_length=64, description="a configured redundancy profile"
    )


class Bucket(Answer):
    """A bucket and the redundancy its objects are stored with."""

    name: str
    profile: str
    redundancy: Redundancy
    created_at: int


class BucketPage(Answer):
    buckets: list[Bucket]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null: done")
