"""Listing thousands of objects: prefixes, delimiters, keyset pagination under concurrent writes."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.bridge.helpers import Tenant

DIRS = [f"ZGly{d}" for d in range(8)]
PER_DIR = 300
TOP = 600


async def _put_many(tenant: Tenant, bucket: str, keys: list[str], parallel: int = 16) -> None:
    gate = asyncio.Semaphore(parallel)

    async def put(key: str) -> None:
        async with gate:
            reply = await tenant.put_inline(bucket, key, key.encode())
            assert reply.status == 201, reply

    await asyncio.gather(*(put(key) for key in keys))


async def _all_pages(
    tenant: Tenant, bucket: str, limit: int, **params: Any
) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    cursor = ""
    pages = 0
    while True:
        page = await tenant.ok(
            "GET",
            f"/v1/buckets/{bucket}/objects",
            params={**params, "limit": limit, "cursor": cursor},
        )
        pages += 1
        items.extend(page["items"])
        assert len(page["items"]) <= limit
        if page["next_cursor"] is None:
            return items, pages
        cursor = page["next_cursor"]


async def test_thousands_of_objects(tenant: Tenant) -> None:
    bucket = await tenant.bucket()
    deep = [f"{d}/{i:04d}" for d in DIRS for i in range(PER_DIR)]
    top = [f"dG9w{i:04d}" for i in range(TOP)]
    await _put_many(tenant, bucket, deep + top)
    everything = sorted(deep + top)

    for limit in (1000, 337):
        items, pages = await _all_pages(tenant, bucket, limit, recursive=True)
        assert [i["key"] for i in items] == everything
        assert pages == -(-len(everything) // limit)
        assert not any(i["is_prefix"] for i in items)

    # One level: the directories as prefixes, in order among the top-level keys.
    expected = sorted([f"{d}/" for d in DIRS] + top)
    for limit in (1000, 7, 1):
        items, _ = await _all_pages(tenant, bucket, limit)
        assert [i["key"] for i in items] == expected
        assert {i["key"] for i in items if i["is_prefix"]} == {f"{d}/" for d in DIRS}

    inside, _ = await _all_pages(tenant, bucket, 128, prefix=f"{DIRS[3]}/")
    assert [i["key"] for i in inside] == [f"{DIRS[3]}/{i:04d}" for i in range(PER_DIR)]
    first = inside[0]
    assert first["encrypted_size"] == len(first["key"]) and first["stream_id"]

    bad = await tenant.call("GET", f"/v1/buckets/{bucket}/objects", params={"limit": 1001})
    assert (bad.status, bad.code) == (400, "invalid-request")
    partial = await tenant.call("GET", f"/v1/buckets/{bucket}/objects", params={"prefix": "ZGly"})
    assert partial.status == 400


async def test_nested_prefixes(tenant: Tenant) -> None:
    bucket = await tenant.bucket()
    keys = ["YQ/Yg/Yw", "YQ/Yg/ZA", "YQ/ZQ", "YQ/Zg/", "Zw", "YQ//aA", "YQ/Yg"]
    await _put_many(tenant, bucket, keys)

    async def level(prefix: str) -> list[tuple[str, bool]]:
        items, _ = await _all_pages(tenant, bucket, 2, prefix=prefix)
        return [(i["key"], i["is_prefix"]) for i in items]

    assert await level("") == [("YQ/", True), ("Zw", False)]
    assert await level("YQ/") == [
        ("YQ//", True),
        ("YQ/Yg", False),
        ("YQ/Yg/", True),
        ("YQ/ZQ", False),
        ("YQ/Zg/", True),
    ]
    assert await level("YQ/Yg/") == [("YQ/Yg/Yw", False), ("YQ/Yg/ZA", False)]
    assert await level("YQ/Zg/") == [("YQ/Zg/", False)]


async def test_pagination_is_consistent_under_concurrent_writes(tenant: Tenant) -> None:
    """Keys present throughout appear exactly once, in order, whatever others write meanwhile."""
    bucket = await tenant.bucket()
    stable = [f"c3Q{i:04d}" for i in range(1200)]
    doomed = [f"c3Q{i:04d}x" for i in range(0, 1200, 3)]
    await _put_many(tenant, bucket, stable + doomed)
    stop = asyncio.Event()

    async def churn() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            key = f"c3Q{(n * 7919) % 1200:04d}y{n}"
            assert (await tenant.put_inline(bucket, key)).status == 201
            if n <= len(doomed):
                gone = await tenant.call(
                    "DELETE", f"/v1/buckets/{bucket}/object", params={"key": doomed[n - 1]}
                )
                assert gone.status in (204, 404)  # both writers delete the same keys

    writers = [asyncio.create_task(churn()) for _ in range(2)]
    try:
        items, _ = await _all_pages(tenant, bucket, 50, recursive=True)
    finally:
        stop.set()
        await asyncio.gather(*writers)
    keys = [i["key"] for i in items]
    assert keys == sorted(keys) and len(keys) == len(set(keys))
    assert set(stable) <= set(keys)
