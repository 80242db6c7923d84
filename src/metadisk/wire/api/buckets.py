"""Bodies of buckets (API key bearer auth)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from metadisk.wire.fields import Redundancy

MAX_BUCKET_NAME = 63
MAX_BUCKET_PAGE = 1000


class NewBucket(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=MAX_BUCKET_NAME)
    profile: str | None = Field(
        default=None, max_length=64, description="a configured redundancy profile"
    )


class Bucket(BaseModel):
    """A bucket and the redundancy its objects are stored with."""

    name: str
    profile: str
    redundancy: Redundancy
    created_at: int


class BucketPage(BaseModel):
    buckets: list[Bucket]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null: done")
