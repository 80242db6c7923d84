"""Buckets logic: names, profiles, the bucket limit, and emptiness on delete."""

from __future__ import annotations

import re
from dataclasses import dataclass

from metadisk.bridge import errors
from metadisk.bridge.auth.service import Access
from metadisk.bridge.buckets.db import Bucket, BucketsDB, CreateOutcome, DeleteOutcome
from metadisk.bridge.config import ObjectsConfig
from metadisk.core.macaroon import Op

# S3's rules, so that the gateway can expose every bucket: 3-63 of a-z 0-9 . -, alphanumeric ends.
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MAX_PAGE = 1000


def check_bucket_name(name: str) -> None:
    if not _BUCKET_NAME.match(name) or ".." in name:
        raise errors.InvalidRequest(
            "a bucket name has 3 to 63 characters: a-z, 0-9, '.', '-', "
            "starting and ending with a letter or digit",
            code="invalid-bucket-name",
        )


@dataclass(frozen=True, slots=True)
class BucketPage:
    buckets: list[Bucket]
    next_cursor: str | None


class BucketsService:
    def __init__(self, db: BucketsDB, config: ObjectsConfig) -> None:
        self._db = db
        self._config = config

    def create(self, access: Access, name: str, profile: str | None, now: int) -> Bucket:
        check_bucket_name(name)
        access.require(Op.WRITE, name, None, now)
        profile = profile or self._config.default_profile
        redundancy = self._config.profiles.get(profile)
        if redundancy is None:
            known = ", ".join(sorted(self._config.profiles))
            raise errors.InvalidRequest(
                f"unknown redundancy profile {profile!r} (configured: {known})",
                code="unknown-profile",
            )
        bucket = Bucket(name, profile, redundancy, now)
        outcome = self._db.create_bucket(access.project_id, bucket)
        if outcome is CreateOutcome.EXISTS:
            raise errors.Conflict(f"bucket {name!r} exists", code="bucket-exists")
        if outcome is CreateOutcome.LIMIT:
            raise errors.LimitExceeded("the project is at its bucket limit")
        return bucket

    def get(self, access: Access, name: str, now: int) -> Bucket:
        check_bucket_name(name)
        access.require(Op.READ, name, None, now)
        bucket = self._db.bucket(access.project_id, name)
        if bucket is None:
            raise errors.NotFound(f"no bucket {name!r}", code="bucket-not-found")
        return bucket

    def list(self, access: Access, cursor: str, limit: int, now: int) -> BucketPage:
        access.require(Op.LIST, None, None, now)
        if not 1 <= limit <= MAX_PAGE:
            raise errors.InvalidRequest(f"limit must be 1 to {MAX_PAGE}")
        found = self._db.buckets(access.project_id, cursor, limit + 1, access.buckets())
        more = len(found) > limit
        page = found[:limit]
        return BucketPage(page, page[-1].name if more else None)

    def delete(self, access: Access, name: str, force: bool, now: int) -> None:
        check_bucket_name(name)
        access.require(Op.DELETE, name, None, now)
        outcome = self._db.delete_bucket(access.project_id, name, force, now)
        if outcome is DeleteOutcome.NOT_FOUND:
            raise errors.NotFound(f"no bucket {name!r}", code="bucket-not-found")
        if outcome is DeleteOutcome.NOT_EMPTY:
            raise errors.Conflict(
                f"bucket {name!r} is not empty (delete with force=true to remove its objects)",
                code="bucket-not-empty",
            )
