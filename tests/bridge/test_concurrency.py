"""Many clients committing the same and different keys at once: last commit wins, no duplicates,
no 5xx, and the project's counters agree with what is visible."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.bridge.helpers import FarmerFleet, Reply, Tenant, sign_receipts

CLIENTS = 16


async def _segmented(tenant: Tenant, fleet: FarmerFleet, bucket: str, key: str, size: int) -> Reply:
    """One segmented upload; returns the object commit's reply unasserted (racing commits to
    one key may be refused), after asserting every step before it."""
    began = await tenant.call("POST", f"/v1/buckets/{bucket}/uploads", json={"key": key})
    assert began.status == 201, began
    stream = began.body["stream_id"]
    segment = await tenant.call(
        "POST",
        f"/v1/uploads/{stream}/segments",
        json={"index": 0, "encrypted_size": size, "piece_size": -(-size // 256) * 64},
    )
    assert segment.status == 201, segment
    commit = await tenant.call(
        "POST",
        f"/v1/uploads/{stream}/segments/0/commit",
        json={"receipts": sign_receipts(fleet, segment.body["order_limits"])},
    )
    assert commit.status == 200, commit
    return await tenant.call("POST", f"/v1/uploads/{stream}/commit", json={})


async def test_same_key_from_many_clients(tenant: Tenant, online: FarmerFleet) -> None:
    bucket = await tenant.bucket()
    rounds = 3

    async def client(n: int) -> list[Reply]:
        replies = []
        for r in range(rounds):
            if (n + r) % 2:
                replies.append(await tenant.put_inline(bucket, "c2FtZQ", bytes([n]) * (n + 1)))
            else:
                replies.append(await _segmented(tenant, online, bucket, "c2FtZQ", 400 + n))
        return replies

    replies = [r for batch in await asyncio.gather(*map(client, range(CLIENTS))) for r in batch]
    assert all(r.status < 500 for r in replies), [r for r in replies if r.status >= 500]
    committed = [r for r in replies if r.status in (200, 201)]
    assert len(committed) == len(replies)  # every commit succeeds; each replaces the last

    listing = await tenant.ok("GET", f"/v1/buckets/{bucket}/objects", params={"recursive": True})
    assert [i["key"] for i in listing["items"]] == ["c2FtZQ"]
    visible = await tenant.ok("GET", f"/v1/buckets/{bucket}/object", params={"key": "c2FtZQ"})
    assert visible["stream_id"] in {r.body["stream_id"] for r in committed}
    usage = (await tenant.project())["usage"]
    assert usage["storage_bytes"] == visible["encrypted_size"]
    assert usage["segments"] == visible["segment_count"]


async def test_last_commit_wins(tenant: Tenant, online: FarmerFleet) -> None:
    """Begun first, committed last: the later commit is what stays visible."""
    bucket = await tenant.bucket()
    streams = []
    for _ in range(2):
        began = await tenant.ok("POST", f"/v1/buckets/{bucket}/uploads", json={"key": "a2V5"})
        streams.append(began["stream_id"])
    for stream in reversed(streams):
        await tenant.ok("POST", f"/v1/uploads/{stream}/commit", json={})
    visible = await tenant.ok("GET", f"/v1/buckets/{bucket}/object", params={"key": "a2V5"})
    assert visible["stream_id"] == streams[0]
    # The replaced upload cannot be committed a second time.
    again = await tenant.call("POST", f"/v1/uploads/{streams[1]}/commit", json={})
    assert again.code == "upload-not-found"


async def test_different_keys_from_many_clients(tenant: Tenant, online: FarmerFleet) -> None:
    bucket = await tenant.bucket()
    per_client = 12

    async def client(n: int) -> list[tuple[str, Reply]]:
        out = []
        for i in range(per_client):
            key = f"Yw{n:02d}/{i:02d}"
            if i % 4 == 0:
                out.append((key, await _segmented(tenant, online, bucket, key, 400)))
            else:
                out.append((key, await tenant.put_inline(bucket, key, b"0123456789")))
        return out

    results = [x for batch in await asyncio.gather(*map(client, range(CLIENTS))) for x in batch]
    assert all(reply.status in (200, 201) for _, reply in results), results
    listing = await tenant.ok(
        "GET", f"/v1/buckets/{bucket}/objects", params={"recursive": True, "limit": 1000}
    )
    keys = [i["key"] for i in listing["items"]]
    assert keys == sorted(key for key, _ in results)
    usage = (await tenant.project())["usage"]
    segmented = CLIENTS * (per_client // 4)
    assert usage["segments"] == segmented
    assert usage["storage_bytes"] == segmented * 400 + (CLIENTS * per_client - segmented) * 10


async def test_concurrent_deletes_and_puts(tenant: Tenant) -> None:
    bucket = await tenant.bucket()
    keys = [f"ZA{i:03d}" for i in range(40)]
    for key in keys:
        assert (await tenant.put_inline(bucket, key, b"abc")).status == 201

    async def delete(key: str) -> Any:
        return (
            await tenant.call("DELETE", f"/v1/buckets/{bucket}/object", params={"key": key})
        ).status

    async def put(key: str) -> Any:
        return (await tenant.put_inline(bucket, key, b"abcd")).status

    statuses = await asyncio.gather(*(f(k) for k in keys for f in (delete, delete, put)))
    assert all(status in (201, 204, 404) for status in statuses)
    listing = await tenant.ok("GET", f"/v1/buckets/{bucket}/objects", params={"recursive": True})
    visible = {item["key"]: item["encrypted_size"] for item in listing["items"]}
    usage = (await tenant.project())["usage"]
    assert usage["storage_bytes"] == sum(visible.values())
    # Each key was deleted twice and put once: exactly one delete per key found an object.
    per_key = [statuses[i * 3 : i * 3 + 2] for i in range(len(keys))]
    assert all(sorted(pair) in ([204, 404], [204, 204]) for pair in per_key)
