"""HTTP routes of buckets (API key bearer auth)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Path, Query, Response

from metadisk.bridge.auth.service import KeyAuthority
from metadisk.bridge.buckets import schemas as s
from metadisk.bridge.buckets.service import BucketsService
from metadisk.bridge.http import COMMON_ERRORS, Runner, api_key_token

BUCKET = Path(max_length=63)


def router(
    service: BucketsService, authority: KeyAuthority, clock: Callable[[], int], run: Runner
) -> APIRouter:
    api = APIRouter(prefix="/v1/buckets", tags=["buckets"], responses=COMMON_ERRORS)

    @api.post("", status_code=201)
    async def create(body: s.NewBucket, token: str = Depends(api_key_token)) -> s.BucketOut:
        def work() -> s.BucketOut:
            access = authority.resolve(token)
            return s.BucketOut.of(service.create(access, body.name, body.profile, clock()))

        return await run(work)

    @api.get("")
    async def list_buckets(
        cursor: str = Query("", max_length=63),
        limit: int = Query(1000, ge=1, le=1000),
        token: str = Depends(api_key_token),
    ) -> s.BucketList:
        """Buckets in name order (only those the key may reach), keyset-paginated."""

        def work() -> s.BucketList:
            page = service.list(authority.resolve(token), cursor, limit, clock())
            return s.BucketList(
                buckets=[s.BucketOut.of(b) for b in page.buckets], next_cursor=page.next_cursor
            )

        return await run(work)

    @api.get("/{bucket}")
    async def get(bucket: str = BUCKET, token: str = Depends(api_key_token)) -> s.BucketOut:
        def work() -> s.BucketOut:
            return s.BucketOut.of(service.get(authority.resolve(token), bucket, clock()))

        return await run(work)

    @api.delete("/{bucket}", status_code=204)
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
