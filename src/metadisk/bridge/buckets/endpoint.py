"""HTTP routes of buckets (API key bearer auth); bodies are `metadisk.wire.api.buckets`."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Path, Query, Response

from metadisk.bridge.auth.service import KeyAuthority
from metadisk.bridge.buckets.db import Bucket
from metadisk.bridge.buckets.service import BucketsService
from metadisk.bridge.http import COMMON_ERRORS, Runner, api_key_token
from metadisk.wire.api import buckets as w
from metadisk.wire.api import routes
from metadisk.wire.fields import BUCKET_PATTERN, MAX_BUCKET_NAME, MIN_BUCKET_NAME

# The name's rules are published, and checked by the service (invalid-bucket-name).
BUCKET = Path(
    max_length=MAX_BUCKET_NAME,
    json_schema_extra={"pattern": BUCKET_PATTERN, "minLength": MIN_BUCKET_NAME},
)


def router(
    service: BucketsService, authority: KeyAuthority, clock: Callable[[], int], run: Runner
) -> APIRouter:
    api = APIRouter(tags=["buckets"], responses=COMMON_ERRORS)

    @api.post(routes.BUCKETS, status_code=201)
    async def create(body: w.NewBucket, token: str = Depends(api_key_token)) -> w.Bucket:
        def work() -> w.Bucket:
            access = authority.resolve(token)
            return bucket_out(service.create(access, body.name, body.profile, clock()))

        return await run(work)

    @api.get(routes.BUCKETS)
    async def list_buckets(
        cursor: str = Query("", max_length=MAX_BUCKET_NAME),
        limit: int = Query(w.MAX_BUCKET_PAGE, ge=1, le=w.MAX_BUCKET_PAGE),
        token: str = Depends(api_key_token),
    ) -> w.BucketPage:
        """Buckets in name order (only those the key may reach), keyset-paginated."""

        def work() -> w.BucketPage:
            page = service.list(authority.resolve(token), cursor, limit, clock())
            return w.BucketPage(
                buckets=[bucket_out(b) for b in page.buckets], next_cursor=page.next_cursor
            )

        return await run(work)

    @api.get(routes.BUCKET)
    async def get(bucket: str = BUCKET, token: str = Depends(api_key_token)) -> w.Bucket:
        def work() -> w.Bucket:
            return bucket_out(service.get(authority.resolve(token), bucket, clock()))

        return await run(work)

    @api.delete(routes.BUCKET, status_code=204)
    async def delete(
        bucket: str = BUCKET,
        force: bool = Query(False, description="also delete every object in it"),
        token: str = Depends(api_key_token),
    ) -> Response:
        """Delete a bucket; refused with bucket-not-empty unless empty or force=true."""

        def work() -> None:
            service.delete(authority.resolve(token), bucket, force, clock())

        await run(work)
        return Response(status_code=204)

    return api


def bucket_out(bucket: Bucket) -> w.Bucket:
    return w.Bucket(
        name=bucket.name,
        profile=bucket.profile,
        redundancy=bucket.redundancy,
        created_at=bucket.created_at,
    )
