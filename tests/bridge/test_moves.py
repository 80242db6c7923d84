"""Moving and copying objects without moving data, against a real bridge process.

Piece reference counting (deleting one copy keeps the other's pieces) is checked where the queue
of piece deletes can be read exactly: tests/bridge/test_chores.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from metadisk.core.encoding import b64encode
from metadisk.core.macaroon import AllowedPath, APIKey, Caveat
from tests.bridge.helpers import FarmerFleet, Reply, Tenant, upload


def rekeyed(count: int, tag: str = "") -> list[dict[str, Any]]:
    """New segment metadata for segments 0..count-1, as a client re-wrapping keys sends it."""
    return [
        {"index": i, "encrypted_metadata": b64encode(f"{tag}key{i}".encode())} for i in range(count)
    ]


async def relocate(
    tenant: Tenant,
    action: str,
    bucket: str,
    key: str,
    new_bucket: str,
    new_key: str,
    segments: list[dict[str, Any]],
    **extra: Any,
) -> Reply:
    token = extra.pop("token", tenant.api_key)
    body = {
        "key": key,
        "new_bucket": new_bucket,
        "new_key": new_key,
        "encrypted_metadata": b64encode(f"meta at {new_key}".encode()),
        "segments": segments,
        **extra,
    }
    path = f"/v1/buckets/{bucket}/object/{action}"
    return await tenant.call("POST", path, json=body, token=token)


async def data_pieces(tenant: Tenant, bucket: str, key: str, segments: int) -> list[dict[int, str]]:
    """Per segment, the piece id of each data piece the bridge offers for download."""
    found = []
    for index in range(segments):
        reply = await tenant.ok(
            "GET", f"/v1/buckets/{bucket}/object/segments/{index}", params={"key": key}
        )
        found.append({o["piece_number"]: o["piece_id"] for o in reply["order_limits"][:4]})
    return found


async def get(tenant: Tenant, bucket: str, key: str) -> Reply:
    return await tenant.call("GET", f"/v1/buckets/{bucket}/object", params={"key": key})


async def test_move_renames_in_place(tenant: Tenant, online: FarmerFleet) -> None:
    src, dst = await tenant.bucket("src"), await tenant.bucket("dst")
    original = await upload(tenant, online, src, "b2xk", [800, 400])
    pieces = await data_pieces(tenant, src, "b2xk", 2)

    moved = await relocate(tenant, "move", src, "b2xk", dst, "bmV3/a2V5", rekeyed(2, "new "))
    assert moved.status == 200, moved
    body = moved.body
    assert (body["key"], body["stream_id"]) == ("bmV3/a2V5", original["stream_id"])
    assert body["created_at"] == original["created_at"]
    assert body["encrypted_metadata"] == b64encode(b"meta at bmV3/a2V5")
    assert [g["encrypted_metadata"] for g in body["segments"]] == [
        g["encrypted_metadata"] for g in rekeyed(2, "new ")
    ]
    assert [g["encrypted_size"] for g in body["segments"]] == [800, 400]

    assert (await get(tenant, src, "b2xk")).code == "object-not-found"
    assert (await get(tenant, dst, "bmV3/a2V5")).body == body
    assert (await tenant.ok("GET", f"/v1/buckets/{src}/objects"))["items"] == []
    # The same pieces, on the same farmers: nothing moved but the name.
    assert await data_pieces(tenant, dst, "bmV3/a2V5", 2) == pieces
    usage = (await tenant.project())["usage"]
    assert (usage["storage_bytes"], usage["segments"]) == (1200, 2)


async def test_copy_is_a_new_object_on_the_same_pieces(tenant: Tenant, online: FarmerFleet) -> None:
    bucket = await tenant.bucket()
    original = await upload(tenant, online, bucket, "b3Jn", [800, 400])
    pieces = await data_pieces(tenant, bucket, "b3Jn", 2)

    copied = await relocate(tenant, "copy", bucket, "b3Jn", bucket, "Y29weQ", rekeyed(2))
    assert copied.status == 200, copied
    assert copied.body["stream_id"] != original["stream_id"]
    assert (copied.body["encrypted_size"], copied.body["segment_count"]) == (1200, 2)
    assert (await get(tenant, bucket, "Y29weQ")).body == copied.body
    assert (await get(tenant, bucket, "b3Jn")).body["segments"] == original["segments"]
    assert await data_pieces(tenant, bucket, "Y29weQ", 2) == pieces
    # A copy counts like any object (deleting either must leave the counters exact).
    usage = (await tenant.project())["usage"]
    assert (usage["storage_bytes"], usage["segments"]) == (2400, 4)

    deleted = await tenant.call("DELETE", f"/v1/buckets/{bucket}/object", params={"key": "b3Jn"})
    assert deleted.status == 204
    assert await data_pieces(tenant, bucket, "Y29weQ", 2) == pieces
    usage = (await tenant.project())["usage"]
    assert (usage["storage_bytes"], usage["segments"]) == (1200, 2)


async def test_inline_objects_move_and_copy(tenant: Tenant) -> None:
    bucket = await tenant.bucket()
    assert (await tenant.put_inline(bucket, "aW4", b"inline data")).status == 201
    copied = await relocate(tenant, "copy", bucket, "aW4", bucket, "Y3A", [])
    moved = await relocate(tenant, "move", bucket, "aW4", bucket, "bXY", [])
    for reply in (copied, moved):
        assert reply.status == 200, reply
        assert reply.body["inline_data"] == b64encode(b"inline data")
        assert reply.body["segments"] == []
    usage = (await tenant.project())["usage"]
    assert (usage["storage_bytes"], usage["segments"]) == (22, 0)


async def test_requests_are_checked(tenant: Tenant, online: FarmerFleet) -> None:
    bucket = await tenant.bucket()
    original = await upload(tenant, online, bucket, "b2Jq", [400, 400])

    async def refused(action: str, segments: list[dict[str, Any]], **kwargs: Any) -> Reply:
        target = kwargs.pop("target", (bucket, "dGFyZ2V0"))
        source = kwargs.pop("source", (bucket, "b2Jq"))
        return await relocate(tenant, action, *source, *target, segments, **kwargs)

    for action in ("move", "copy"):
        missing = await refused(action, rekeyed(1))
        assert (missing.status, missing.code) == (400, "segments-mismatch")
        extra = await refused(action, rekeyed(3))
        assert (extra.status, extra.code) == (400, "segments-mismatch")
        twice = await refused(action, [*rekeyed(2), rekeyed(1)[0]])
        assert (twice.status, twice.code) == (400, "invalid-request")
        if action == "move":  # a copy onto itself replaces its metadata (below)
            itself = await refused(action, rekeyed(2), target=(bucket, "b2Jq"))
            assert (itself.status, itself.code) == (400, "same-key")
        gone = await refused(action, rekeyed(2), source=(bucket, "bm9uZQ"))
        assert (gone.status, gone.code) == (404, "object-not-found")
        no_source = await refused(action, rekeyed(2), source=("nope", "b2Jq"))
        assert (no_source.status, no_source.code) == (404, "bucket-not-found")
        no_target = await refused(action, rekeyed(2), target=("nope", "b2Jq"))
        assert (no_target.status, no_target.code) == (404, "bucket-not-found")
        # Keys re-wrapped for another version of the object are never stored on this one.
        stale = await refused(action, rekeyed(2), stream_id="00" * 16)
        assert (stale.status, stale.code) == (409, "object-changed")
    assert (await get(tenant, bucket, "b2Jq")).body["segments"] == original["segments"]
    assert (await get(tenant, bucket, "dGFyZ2V0")).code == "object-not-found"
    pinned = await refused("move", rekeyed(2), stream_id=original["stream_id"])
    assert pinned.status == 200, pinned


async def test_permissions(tenant: Tenant, online: FarmerFleet) -> None:
    """Move: READ and DELETE on the source; copy: READ; both WRITE on the destination, and
    DELETE there to replace an object."""
    bucket = await tenant.bucket()
    await upload(tenant, online, bucket, "c3Jj", [400])
    await upload(tenant, online, bucket, "dGFrZW4", [400])
    root = APIKey.parse(tenant.api_key)

    def key(**caveat: Any) -> str:
        return root.restrict(Caveat(**caveat)).serialize()

    no_reads = key(disallow_reads=True)
    no_writes = key(disallow_writes=True)
    no_deletes = key(disallow_deletes=True)
    source_only = key(allowed_paths=(AllowedPath(bucket, "c3Jj"),))

    async def status(action: str, token: str, new_key: str = "ZnJlc2g") -> int:
        one = rekeyed(1)
        reply = await relocate(tenant, action, bucket, "c3Jj", bucket, new_key, one, token=token)
        return reply.status

    for action in ("move", "copy"):
        assert await status(action, no_reads) == 403
        assert await status(action, no_writes) == 403
        assert await status(action, source_only) == 403  # no WRITE at the destination
    assert await status("move", no_deletes) == 403  # a move deletes the source
    # A copy needs no DELETE, unless it would replace an object.
    assert await status("copy", no_deletes, "dGFrZW4") == 403
    assert (await get(tenant, bucket, "dGFrZW4")).body["segment_count"] == 1
    assert await status("copy", no_deletes) == 200
    assert await status("move", tenant.api_key, "dGFrZW4") == 200  # replaces it
    usage = (await tenant.project())["usage"]
    assert (usage["storage_bytes"], usage["segments"]) == (800, 2)  # "ZnJlc2g" and "dGFrZW4"


async def test_other_projects_are_out_of_reach(tenant: Tenant, online: FarmerFleet) -> None:
    mine = await tenant.bucket("alpha")
    await upload(tenant, online, mine, "bWluZQ", [400])
    stranger = await Tenant.create(tenant.api)
    theirs = await stranger.bucket("beta")

    into = await relocate(tenant, "copy", mine, "bWluZQ", theirs, "c3RvbGVu", rekeyed(1))
    assert (into.status, into.code) == (404, "bucket-not-found")
    out = await relocate(stranger, "move", mine, "bWluZQ", theirs, "c3RvbGVu", rekeyed(1))
    assert (out.status, out.code) == (404, "bucket-not-found")
    assert (await stranger.ok("GET", f"/v1/buckets/{theirs}/objects"))["items"] == []
    assert (await get(tenant, mine, "bWluZQ")).status == 200


async def test_readers_see_exactly_one_of_the_two(tenant: Tenant, online: FarmerFleet) -> None:
    """A move is one transaction: a listing (one snapshot) never sees both names or neither."""
    bucket = await tenant.bucket()
    await upload(tenant, online, bucket, "YQ", [400])
    done = asyncio.Event()

    async def mover() -> int:
        here, there = "YQ", "Yg"
        for _ in range(20):
            reply = await relocate(tenant, "move", bucket, here, bucket, there, rekeyed(1))
            assert reply.status == 200, reply
            here, there = there, here
        done.set()
        return 20

    async def reader() -> int:
        seen = 0
        while not done.is_set() or seen == 0:
            listing = await tenant.ok("GET", f"/v1/buckets/{bucket}/objects")
            assert len([i for i in listing["items"] if i["key"] in ("YQ", "Yg")]) == 1, listing
            seen += 1
        return seen

    counts = await asyncio.gather(mover(), *(reader() for _ in range(3)))
    assert counts[0] == 20 and all(counts)
    usage = (await tenant.project())["usage"]
    assert (usage["storage_bytes"], usage["segments"]) == (400, 1)


async def test_copy_onto_itself_replaces_the_metadata_in_place(
    tenant: Tenant, online: FarmerFleet
) -> None:
    """S3's copy with a REPLACE metadata directive onto the same key: one object, same stream
    and pieces, new metadata; usage unchanged."""
    bucket = await tenant.bucket()
    original = await upload(tenant, online, bucket, "c2VsZg", [400, 400], metadata=b"old")
    pieces = await data_pieces(tenant, bucket, "c2VsZg", 2)
    body = {"encrypted_metadata": b64encode(b"new")}
    copied = await relocate(
        tenant, "copy", bucket, "c2VsZg", bucket, "c2VsZg", rekeyed(2, "re "), **body
    )
    assert copied.status == 200, copied
    assert copied.body["stream_id"] == original["stream_id"]
    read = (await get(tenant, bucket, "c2VsZg")).body
    assert read["encrypted_metadata"] == b64encode(b"new")
    assert [s["encrypted_metadata"] for s in read["segments"]] == [
        s["encrypted_metadata"] for s in rekeyed(2, "re ")
    ]
    assert await data_pieces(tenant, bucket, "c2VsZg", 2) == pieces
    usage = (await tenant.project())["usage"]
    assert (usage["storage_bytes"], usage["segments"]) == (800, 2)
