"""`GET /v1/usage` for an API key, and the pending uploads below a folder, on a real bridge."""

from __future__ import annotations

from typing import Any

from metadisk.core.macaroon import AllowedPath, APIKey, Caveat
from tests.bridge.helpers import FarmerFleet, Tenant, upload

NOTHING_PENDING = {"uploads": 0, "storage_bytes": 0, "segments": 0}


def restrict(tenant: Tenant, **caveat: Any) -> str:
    return APIKey.parse(tenant.api_key).restrict(Caveat(**caveat)).serialize()


async def begin(tenant: Tenant, bucket: str, key: str, encrypted_size: int = 0) -> str:
    """A pending upload to `key`; with a size, one begun segment reserving it."""
    began = await tenant.ok("POST", f"/v1/buckets/{bucket}/uploads", json={"key": key})
    stream: str = began["stream_id"]
    if encrypted_size:
        body = {"index": 0, "encrypted_size": encrypted_size, "piece_size": 128}
        await tenant.ok("POST", f"/v1/uploads/{stream}/segments", json=body)
    return stream


async def test_usage_counts_committed_objects_and_what_pending_uploads_reserve(
    tenant: Tenant, online: FarmerFleet
) -> None:
    empty = await tenant.ok("GET", "/v1/usage")
    assert empty["objects"] == 0 and empty["pending"] == NOTHING_PENDING
    assert empty["usage"] == {"buckets": 0, "storage_bytes": 0, "egress_bytes": 0, "segments": 0}
    # The same limits the project's owner sees.
    assert empty["limits"] == (await tenant.project())["limits"]

    bucket = await tenant.bucket()
    await upload(tenant, online, bucket, "YQ", [400, 300])
    await tenant.put_inline(bucket, "Yg", b"small")
    stream = await begin(tenant, bucket, "Yw", encrypted_size=500)

    found = await tenant.ok("GET", "/v1/usage")
    owner = (await tenant.project())["usage"]
    assert found["usage"] == owner  # one source of truth with the session route
    assert found["objects"] == 2
    # Two segments: an inline object has none.
    assert found["usage"]["buckets"] == 1 and found["usage"]["segments"] == 2
    assert found["pending"] == {"uploads": 1, "storage_bytes": 500, "segments": 1}

    await tenant.ok("DELETE", f"/v1/uploads/{stream}")
    assert (await tenant.ok("GET", "/v1/usage"))["pending"] == NOTHING_PENDING


async def test_usage_needs_an_api_key_for_the_whole_project(tenant: Tenant) -> None:
    bucket = await tenant.bucket()
    assert (await tenant.call("GET", "/v1/usage", token="")).status == 401
    confined = restrict(tenant, allowed_paths=(AllowedPath(bucket),))
    refused = await tenant.call("GET", "/v1/usage", token=confined)
    assert refused.status == 403
    assert refused.body["error"]["code"] == "access-denied"
    no_lists = restrict(tenant, disallow_lists=True)
    assert (await tenant.call("GET", "/v1/usage", token=no_lists)).status == 403
    read_only = restrict(tenant, disallow_writes=True, disallow_deletes=True)
    assert (await tenant.call("GET", "/v1/usage", token=read_only)).status == 200


async def test_pending_uploads_below_a_folder(tenant: Tenant, online: FarmerFleet) -> None:
    bucket = await tenant.bucket()
    inside = [await begin(tenant, bucket, key) for key in ("YQ/Yg", "YQ/Yw/ZA", "YQ/Yg")]
    # Beside the folder: a sibling sorting right after "YQ/", another case, the folder's name.
    outside = [await begin(tenant, bucket, key) for key in ("YQ0", "yq/Yg", "YQ")]
    await upload(tenant, online, bucket, "YQ/ZQ")  # committed: not pending

    path = f"/v1/buckets/{bucket}/uploads"
    below = (await tenant.ok("GET", path, params={"prefix": "YQ/"}))["uploads"]
    # Begun within a second of each other: their order is the bridge's tie-break, not asserted.
    assert sorted((u["stream_id"], u["key"]) for u in below) == sorted(
        zip(inside, ("YQ/Yg", "YQ/Yw/ZA", "YQ/Yg"), strict=True)
    )
    everything = (await tenant.ok("GET", path, params={"prefix": ""}))["uploads"]
    assert sorted(u["stream_id"] for u in everything) == sorted(inside + outside)
    one_key = (await tenant.ok("GET", path, params={"key": "YQ/Yg"}))["uploads"]
    assert sorted(u["stream_id"] for u in one_key) == sorted([inside[0], inside[2]])

    for params in ({}, {"key": "YQ", "prefix": ""}, {"prefix": "YQ"}):
        bad = await tenant.call("GET", path, params=params)
        assert bad.status == 400, params
    missing = await tenant.call("GET", "/v1/buckets/nope/uploads", params={"prefix": ""})
    assert (missing.status, missing.body["error"]["code"]) == (404, "bucket-not-found")
    no_lists = restrict(tenant, disallow_lists=True)
    refused = await tenant.call("GET", path, params={"prefix": ""}, token=no_lists)
    assert refused.status == 403
    elsewhere = restrict(tenant, allowed_paths=(AllowedPath(bucket, "Yg/"),))
    refused = await tenant.call("GET", path, params={"prefix": "YQ/"}, token=elsewhere)
    assert refused.status == 403
