"""Request and response bodies of the buckets API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from metadisk.bridge.buckets.db import Bucket
from metadisk.core.erasure import RedundancyScheme


class RedundancyOut(BaseModel):
    k: int = Field(description="pieces needed to rebuild a segment")
    m: int = Field(description="repair threshold")
    o: int = Field(description="success threshold of an upload")
    n: int = Field(description="order limits handed out per segment")

    @classmethod
    def of(cls, rs: RedundancyScheme) -> RedundancyOut:
        return cls(k=rs.k, m=rs.m, o=rs.o, n=rs.n)


class NewBucket(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=63)
    profile: str | None = Field(
        default=None, max_length=64, description="a configured redundancy profile"
    )


class BucketOut(BaseModel):
    name: str
    profile: str
    redundancy: RedundancyOut
    created_at: int

    @classmethod
    def of(cls, bucket: Bucket) -> BucketOut:
        return cls(
            name=bucket.name,
            profile=bucket.profile,
            redundancy=RedundancyOut.of(bucket.redundancy),
            created_at=bucket.created_at,
        )


class BucketList(BaseModel):
    buckets: list[BucketOut]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null: done")
