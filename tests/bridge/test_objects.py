"""The object lifecycle against a real bridge process, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from metadisk.core.encoding import b64decode, b64encode
from metadisk.core.identity import NodeId
from metadisk.core.macaroon import AllowedPath, APIKey, Caveat
from metadisk.core.messages import Action, OrderLimit, derive_piece_id
from metadisk.devnet.bridge import BridgeProcess
from tests.bridge.helpers import (
    Api,
    FarmerFleet,
    Tenant,
    checkin,
    checkin_all,
    fake_piece_hash,
    sign_receipts,
    upload,
)


def _limit(order: dict[str, str]) -> OrderLimit:
    return OrderLimit.decode(b64decode(order["order_limit"]))


async def test_whole_lifecycle(
    tenant: Tenant, online: FarmerFleet, bridge: BridgeProcess, api: Api
) -> None:
    bucket = await tenant.bucket("photos")
    key = "c2VjcmV0/bmFtZQ"

    began = await tenant.ok("POST", f"/v1/buckets/{bucket}/uploads", json={"key": key})
    assert began["redundancy"] == {"k": 4, "m": 6, "o": 8, "n": 10}
    stream = began["stream_id"]
    # Not visible while uploading.
    missing = await tenant.call("GET", f"/v1/buckets/{bucket}/object", params={"key": key})
    assert (missing.status, missing.code) == (404, "object-not-found")

    segment = await tenant.ok(
        "POST",
        f"/v1/uploads/{stream}/segments",
        json={"index": 0, "encrypted_size": 4000, "piece_size": 1024},
    )
    orders = segment["order_limits"]
    assert len(orders) == 10
    assert sorted(o["piece_number"] for o in orders) == list(range(10))
    assert len({o["node_id"] for o in orders}) == 10
    info = await api.ok("GET", "/v1/bridge")
    bridge_key = b64decode(info["public_key"])
    piece_ids = set()
    for order in orders:
        limit = _limit(order)
        limit.verify_signature(bridge_key)
        # The farmer's key, to check its receipt with: it hashes to the node id.
        farmer = online.by_node(order["node_id"])
        assert b64decode(order["public_key"]) == farmer.identity.public_key
        assert NodeId.from_public_key(b64decode(order["public_key"])) == limit.node_id
        assert order["piece_hash"] is None
        assert limit.action is Action.PUT
        assert limit.limit == 1024
        assert limit.node_id.hex() == order["node_id"]
        assert limit.piece_id.hex() == order["piece_id"]
        assert order["address"] == online.by_node(order["node_id"]).address
        assert 3000 <= limit.expires_at - limit.issued_at <= 3600
        piece_ids.add(limit.piece_id)
    assert len(piece_ids) == 10  # derived per node: unlinkable

    receipts = sign_receipts(online, orders)
    committed = await tenant.ok(
        "POST",
        f"/v1/uploads/{stream}/segments/0/commit",
        json={"receipts": receipts, "plain_size": 3900, "encrypted_metadata": b64encode(b"wk")},
    )
    assert committed == {"index": 0, "pieces": 10, "rejected": []}
    obj = await tenant.ok(
        "POST", f"/v1/uploads/{stream}/commit", json={"encrypted_metadata": b64encode(b"md")}
    )
    assert obj["key"] == key and obj["stream_id"] == stream
    assert obj["encrypted_size"] == 4000 and obj["plain_size"] == 3900
    assert obj["segment_count"] == 1 and obj["inline_data"] is None

    got = await tenant.ok("GET", f"/v1/buckets/{bucket}/object", params={"key": key})
    assert got["encrypted_metadata"] == b64encode(b"md")
    assert got["segments"] == [
        {
            "index": 0,
            "encrypted_size": 4000,
            "plain_size": 3900,
            "piece_size": 1024,
            "redundancy": {"k": 4, "m": 6, "o": 8, "n": 10},
            "encrypted_metadata": b64encode(b"wk"),
        }
    ]

    download = await tenant.ok(
        "GET", f"/v1/buckets/{bucket}/object/segments/0", params={"key": key, "stream_id": stream}
    )
    gets = download["order_limits"]
    assert len(gets) == 4 + 2  # k plus spares
    for order in gets:
        limit = _limit(order)
        limit.verify_signature(bridge_key)
        assert limit.action is Action.GET and limit.limit == 1024
        assert limit.piece_id in piece_ids
        # The hash from the piece's receipt, to check the piece with; no key needed.
        assert b64decode(order["piece_hash"]) == fake_piece_hash(limit.piece_id)
        assert order["public_key"] is None
        assert order["address"] == online.by_node(order["node_id"]).address

    listing = await tenant.ok("GET", f"/v1/buckets/{bucket}/objects")
    assert [(i["key"], i["is_prefix"]) for i in listing["items"]] == [("c2VjcmV0/", True)]
    listing = await tenant.ok(
        "GET", f"/v1/buckets/{bucket}/objects", params={"prefix": "c2VjcmV0/"}
    )
    assert [i["key"] for i in listing["items"]] == [key]
    assert listing["items"][0]["encrypted_size"] == 4000
    assert listing["next_cursor"] is None

    usage = (await tenant.project())["usage"]
    assert usage["storage_bytes"] == 4000 and usage["segments"] == 1
    assert usage["egress_bytes"] == 4000 and usage["buckets"] == 1

    deleted = await tenant.call("DELETE", f"/v1/buckets/{bucket}/object", params={"key": key})
    assert deleted.status == 204
    again = await tenant.call("GET", f"/v1/buckets/{bucket}/object", params={"key": key})
    assert again.code == "object-not-found"
    usage = (await tenant.project())["usage"]
    assert usage["storage_bytes"] == 0 and usage["segments"] == 0


async def test_piece_ids_follow_the_derivation(tenant: Tenant, online: FarmerFleet) -> None:
    """Piece ids are derive_piece_id(root, node, number) for one root per segment."""
    bucket = await tenant.bucket()
    began = await tenant.ok("POST", f"/v1/buckets/{bucket}/uploads", json={"key": "k"})
    segment = await tenant.ok(
        "POST",
        f"/v1/uploads/{began['stream_id']}/segments",
        json={"index": 0, "encrypted_size": 400, "piece_size": 128},
    )
    orders = segment["order_limits"]
    # The root stays on the bridge; but ids of one node differ per piece number and per segment.
    first = _limit(orders[0])
    root_guess = bytes(32)
    assert first.piece_id != derive_piece_id(root_guess, first.node_id, orders[0]["piece_number"])
    assert len({_limit(o).piece_id for o in orders}) == len(orders)


async def test_inline_objects_in_one_call(tenant: Tenant) -> None:
    bucket = await tenant.bucket()
    data = bytes(range(256)) * 16 + bytes(16)  # the most: 4 KiB of plaintext and its GCM tag
    put = await tenant.put_inline(
        bucket, "aW5saW5l", data, plain_size=4096, encrypted_metadata=b64encode(b"m")
    )
    assert put.status == 201, put
    assert put.body["inline_data"] == b64encode(data) and put.body["segment_count"] == 0
    got = await tenant.ok("GET", f"/v1/buckets/{bucket}/object", params={"key": "aW5saW5l"})
    assert b64decode(got["inline_data"]) == data
    assert got["plain_size"] == 4096 and got["encrypted_metadata"] == b64encode(b"m")
    assert got["segments"] == []
    empty = await tenant.put_inline(bucket, "ZW1wdHk", b"")
    assert empty.status == 201
    too_big = await tenant.put_inline(bucket, "Ymln", data + b"!")
    assert (too_big.status, too_big.code) == (400, "inline-too-large")
    # Inline objects have no segments to download.
    segment = await tenant.call(
        "GET", f"/v1/buckets/{bucket}/object/segments/0", params={"key": "aW5saW5l"}
    )
    assert (segment.status, segment.code) == (404, "segment-not-found")


async def test_commit_replaces_and_queues_old_pieces(
    tenant: Tenant, online: FarmerFleet, bridge: BridgeProcess
) -> None:
    bucket = await tenant.bucket()
    first = await upload(tenant, online, bucket, "a2V5", [800])
    second = await upload(tenant, online, bucket, "a2V5", [1200, 400])
    assert first["stream_id"] != second["stream_id"]
    got = await tenant.ok("GET", f"/v1/buckets/{bucket}/object", params={"key": "a2V5"})
    assert got["stream_id"] == second["stream_id"] and got["segment_count"] == 2
    usage = (await tenant.project())["usage"]
    assert usage["storage_bytes"] == 1600 and usage["segments"] == 2
    # An inline put over a segmented object replaces it too.
    assert (await tenant.put_inline(bucket, "a2V5", b"tiny")).status == 201
    usage = (await tenant.project())["usage"]
    assert usage["storage_bytes"] == 4 and usage["segments"] == 0


async def test_abort_upload(tenant: Tenant, online: FarmerFleet) -> None:
    bucket = await tenant.bucket()
    began = await tenant.ok("POST", f"/v1/buckets/{bucket}/uploads", json={"key": "YQ"})
    stream = began["stream_id"]
    assert (await tenant.call("DELETE", f"/v1/uploads/{stream}")).status == 204
    gone = await tenant.call(
        "POST",
        f"/v1/uploads/{stream}/segments",
        json={"index": 0, "encrypted_size": 400, "piece_size": 128},
    )
    assert (gone.status, gone.code) == (404, "upload-not-found")
    commit = await tenant.call("POST", f"/v1/uploads/{stream}/commit", json={})
    assert commit.code == "upload-not-found"


async def test_commit_needs_every_segment(tenant: Tenant, online: FarmerFleet) -> None:
    bucket = await tenant.bucket()
    began = await tenant.ok("POST", f"/v1/buckets/{bucket}/uploads", json={"key": "YQ"})
    stream = began["stream_id"]
    # Segment 1 without segment 0.
    segment = await tenant.ok(
        "POST",
        f"/v1/uploads/{stream}/segments",
        json={"index": 1, "encrypted_size": 400, "piece_size": 128},
    )
    await tenant.ok(
        "POST",
        f"/v1/uploads/{stream}/segments/1/commit",
        json={"receipts": sign_receipts(online, segment["order_limits"])},
    )
    missing = await tenant.call("POST", f"/v1/uploads/{stream}/commit", json={})
    assert (missing.status, missing.code) == (400, "segments-missing")
    # A begun but uncommitted segment 0 is not enough either.
    await tenant.ok(
        "POST",
        f"/v1/uploads/{stream}/segments",
        json={"index": 0, "encrypted_size": 400, "piece_size": 128},
    )
    missing = await tenant.call("POST", f"/v1/uploads/{stream}/commit", json={})
    assert missing.code == "segments-missing"
    # A committed segment cannot be begun again.
    again = await tenant.call(
        "POST",
        f"/v1/uploads/{stream}/segments",
        json={"index": 1, "encrypted_size": 400, "piece_size": 128},
    )
    assert (again.status, again.code) == (409, "segment-committed")


async def test_a_commit_may_list_many_segments(tenant: Tenant, online: FarmerFleet) -> None:
    """A commit naming its segments may be far larger than other bodies (up to every one of
    2**20 indices): here 200,000 (1.4 MB of JSON), refused for what it says, not its size."""
    bucket = await tenant.bucket()
    began = await tenant.ok("POST", f"/v1/buckets/{bucket}/uploads", json={"key": "bWFueQ"})
    stream = began["stream_id"]
    listed = list(range(0, 2_000_000, 10))
    missing = await tenant.call("POST", f"/v1/uploads/{stream}/commit", json={"segments": listed})
    assert (missing.status, missing.code) == (400, "segments-missing"), missing
    assert "segment 0 " in str(missing.body)
    sparse = await upload_parts(tenant, online, bucket, "c3BhcnNl", [3, 1 << 17])
    assert [s["index"] for s in sparse["segments"]] == [3, 1 << 17]


async def upload_parts(
    tenant: Tenant, fleet: FarmerFleet, bucket: str, key: str, indices: list[int]
) -> dict[str, Any]:
    """An upload of one 400-byte segment at each of `indices`, committed as those."""
    began = await tenant.ok("POST", f"/v1/buckets/{bucket}/uploads", json={"key": key})
    stream = began["stream_id"]
    for index in indices:
        segment = await tenant.ok(
            "POST",
            f"/v1/uploads/{stream}/segments",
            json={"index": index, "encrypted_size": 400, "piece_size": 128},
        )
        await tenant.ok(
            "POST",
            f"/v1/uploads/{stream}/segments/{index}/commit",
            json={"receipts": sign_receipts(fleet, segment["order_limits"])},
        )
    body = {"segments": indices}
    return await tenant.ok("POST", f"/v1/uploads/{stream}/commit", json=body)  # type: ignore[no-any-return]


async def test_segment_sizes_are_checked(tenant: Tenant, online: FarmerFleet) -> None:
    bucket = await tenant.bucket()
    began = await tenant.ok("POST", f"/v1/buckets/{bucket}/uploads", json={"key": "YQ"})
    path = f"/v1/uploads/{began['stream_id']}/segments"
    for body in (
        {"index": 0, "encrypted_size": 4000, "piece_size": 999},  # k pieces cannot hold it
        {"index": 0, "encrypted_size": 4000, "piece_size": 100_000},  # absurdly large pieces
        {"index": 0, "encrypted_size": 0, "piece_size": 0},
        {"index": 0, "encrypted_size": 1 << 40, "piece_size": 1 << 38},
    ):
        reply = await tenant.call("POST", path, json=body)
        assert (reply.status, reply.code) == (400, "invalid-request"), body


async def test_replacement_order_limits(tenant: Tenant, online: FarmerFleet, api: Api) -> None:
    """A farmer fails mid-upload: new order limits on unused nodes, same piece numbers."""
    bucket = await tenant.bucket()
    extra = [online.add() for _ in range(3)]
    await checkin_all(api, extra)
    began = await tenant.ok("POST", f"/v1/buckets/{bucket}/uploads", json={"key": "YQ"})
    stream = began["stream_id"]
    segment = await tenant.ok(
        "POST",
        f"/v1/uploads/{stream}/segments",
        json={"index": 0, "encrypted_size": 400, "piece_size": 128},
    )
    orders = segment["order_limits"]
    failed = orders[:2]
    replaced = await tenant.ok(
        "POST",
        f"/v1/uploads/{stream}/segments/0/replacements",
        json={
            "piece_numbers": [failed[0]["piece_number"]],
            "node_ids": [failed[1]["node_id"]],
        },
    )
    new = replaced["order_limits"]
    assert sorted(o["piece_number"] for o in new) == sorted(o["piece_number"] for o in failed)
    for order in new:
        farmer = online.by_node(order["node_id"])
        assert b64decode(order["public_key"]) == farmer.identity.public_key
    used = {o["node_id"] for o in orders}
    assert not used & {o["node_id"] for o in new}
    # Old order limits of the failed pieces no longer count; the new ones do.
    final = [o for o in orders if o not in failed] + new
    reply = await tenant.ok(
        "POST",
        f"/v1/uploads/{stream}/segments/0/commit",
        json={"receipts": sign_receipts(online, final)},
    )
    assert reply["pieces"] == 10 and reply["rejected"] == []
    for node in extra:
        # Leave the module's other tests a fleet of the expected shape.
        online.farmers.remove(node)
        node.ping_status = 500
        await api.call(
            "POST",
            "/v1/nodes/checkin",
            json={"contact": b64encode(node.contact().encode())},
        )


async def test_replacements_give_what_nodes_there_are(tenant: Tenant, online: FarmerFleet) -> None:
    """Three pieces failed and one more node is eligible: one replacement, not a refusal."""
    bucket = await tenant.bucket()
    extra = online.add()
    await checkin_all(tenant.api, [extra])
    try:
        began = await tenant.ok("POST", f"/v1/buckets/{bucket}/uploads", json={"key": "YQ"})
        stream = began["stream_id"]
        segment = await tenant.ok(
            "POST",
            f"/v1/uploads/{stream}/segments",
            json={"index": 0, "encrypted_size": 400, "piece_size": 128},
        )
        used = {o["node_id"] for o in segment["order_limits"]}
        spare = ({f.node_id.hex() for f in online.farmers} - used).pop()
        numbers = sorted(o["piece_number"] for o in segment["order_limits"])[:3]
        path = f"/v1/uploads/{stream}/segments/0/replacements"
        replaced = await tenant.ok("POST", path, json={"piece_numbers": numbers})
        [order] = replaced["order_limits"]
        assert (order["piece_number"], order["node_id"]) == (numbers[0], spare)
        # Every node is used now: nothing more to give.
        again = await tenant.call("POST", path, json={"piece_numbers": numbers[1:]})
        assert (again.status, again.code) == (503, "not-enough-nodes")
    finally:  # leave the module's other tests a fleet of the expected shape
        online.farmers.remove(extra)
        extra.ping_status = 500
        contact = b64encode(extra.contact().encode())
        await tenant.api.call("POST", "/v1/nodes/checkin", json={"contact": contact})


async def test_download_skips_offline_and_disqualified_nodes(
    tenant: Tenant, online: FarmerFleet, api: Api, bridge: BridgeProcess
) -> None:
    bucket = await tenant.bucket()
    await upload(tenant, online, bucket, "YQ", [400])
    path = f"/v1/buckets/{bucket}/object/segments/0"
    before = await tenant.ok("GET", path, params={"key": "YQ"})
    assert len(before["order_limits"]) == 6
    # Take farmers offline (their ping-back fails on the next check-in) until fewer than k=4 remain.
    down = online.farmers[:7]
    try:
        for farmer in down[:4]:
            farmer.ping_status = 503
            reply = await api.call(
                "POST", "/v1/nodes/checkin", json={"contact": b64encode(farmer.contact().encode())}
            )
            assert reply.body["online"] is False
        after = await tenant.ok("GET", path, params={"key": "YQ"})
        offline = {f.node_id.hex() for f in down[:4]}
        assert not offline & {o["node_id"] for o in after["order_limits"]}
        assert len(after["order_limits"]) == 6
        for farmer in down[4:]:
            farmer.ping_status = 503
            await api.call(
                "POST", "/v1/nodes/checkin", json={"contact": b64encode(farmer.contact().encode())}
            )
        unavailable = await tenant.call("GET", path, params={"key": "YQ"})
        assert (unavailable.status, unavailable.code) == (503, "segment-unavailable")
    finally:
        for farmer in down:
            farmer.ping_status = 200
        await checkin_all(api, down)


async def test_downloads_offer_every_data_piece_first(
    tenant: Tenant, online: FarmerFleet, api: Api
) -> None:
    """The code is systematic: with pieces 0..k-1 the client decodes nothing, so those come
    first, and random recovery pieces fill up the spares."""
    bucket = await tenant.bucket()
    await upload(tenant, online, bucket, "YQ", [400])
    path = f"/v1/buckets/{bucket}/object/segments/0"

    async def offered() -> list[int]:
        reply = await tenant.ok("GET", path, params={"key": "YQ"})
        return [o["piece_number"] for o in reply["order_limits"]]

    spares: set[int] = set()
    for _ in range(8):
        numbers = await offered()
        assert numbers[:4] == [0, 1, 2, 3] and len(numbers) == 6
        spares.update(numbers[4:])
    assert spares <= set(range(4, 10))
    # A data piece's farmer offline: the other data pieces, then recovery pieces.
    holder = await tenant.ok("GET", path, params={"key": "YQ"})
    node = next(o["node_id"] for o in holder["order_limits"] if o["piece_number"] == 2)
    farmer = online.by_node(node)
    farmer.ping_status = 503
    try:
        assert not (await checkin(api, farmer)).body["online"]
        numbers = await offered()
        assert numbers[:3] == [0, 1, 3] and 2 not in numbers and len(numbers) == 6
    finally:
        farmer.ping_status = 200
        await checkin_all(api, [farmer])


async def test_downloads_can_exclude_pieces(tenant: Tenant, online: FarmerFleet) -> None:
    """A client whose pieces failed asks again, excluding those: limits for others only."""
    bucket = await tenant.bucket()
    await upload(tenant, online, bucket, "YQ", [400])
    path = f"/v1/buckets/{bucket}/object/segments/0"
    first = await tenant.ok("GET", path, params={"key": "YQ"})
    piece_size = first["piece_size"]

    async def offered(exclude: list[int]) -> list[int]:
        reply = await tenant.ok("GET", path, params={"key": "YQ", "exclude": exclude})
        return [o["piece_number"] for o in reply["order_limits"]]

    async def egress() -> int:
        return int((await tenant.project())["usage"]["egress_bytes"])

    assert await offered([0, 1, 2, 3]) == [4, 5, 6, 7, 8, 9]  # k + 2, none of those excluded
    numbers = await offered([0, 5])
    assert numbers[:2] == [1, 2] and len(numbers) == 6 and not {0, 5} & set(numbers)
    before = await egress()
    assert await offered([0, 1, 2, 3, 4, 5, 6, 7]) == [8, 9]  # fewer than k: the client has some
    assert await egress() == before + 2 * piece_size  # a request for more pays what it gets
    assert await offered(list(range(10))) == []  # none left
    assert await egress() == before + 2 * piece_size
    bad = await tenant.call("GET", path, params={"key": "YQ", "exclude": [255]})
    assert (bad.status, bad.code) == (400, "invalid-request")


async def test_pending_upload_for_resuming(tenant: Tenant, online: FarmerFleet) -> None:
    bucket = await tenant.bucket()
    began = await tenant.ok("POST", f"/v1/buckets/{bucket}/uploads", json={"key": "cmVz"})
    stream = began["stream_id"]
    for index in (0, 2):  # committed, with the wrapped keys a resume needs
        segment = await tenant.ok(
            "POST",
            f"/v1/uploads/{stream}/segments",
            json={"index": index, "encrypted_size": 400, "piece_size": 128},
        )
        await tenant.ok(
            "POST",
            f"/v1/uploads/{stream}/segments/{index}/commit",
            json={
                "receipts": sign_receipts(online, segment["order_limits"]),
                "plain_size": 300 + index,
                "encrypted_metadata": b64encode(bytes([index])),
            },
        )
    await tenant.ok(  # begun, never committed: not listed
        "POST",
        f"/v1/uploads/{stream}/segments",
        json={"index": 1, "encrypted_size": 400, "piece_size": 128},
    )
    pending = await tenant.ok("GET", f"/v1/uploads/{stream}")
    assert {k: pending[k] for k in ("stream_id", "bucket", "key", "deadline")} == {
        "stream_id": stream,
        "bucket": bucket,
        "key": "cmVz",
        "deadline": began["deadline"],
    }
    assert pending["redundancy"] == began["redundancy"]
    segments = pending["segments"]
    committed = [(g["index"], g["plain_size"], g["encrypted_metadata"]) for g in segments]
    assert committed == [(0, 300, b64encode(b"\0")), (2, 302, b64encode(b"\2"))]
    assert pending["segments"][0]["encrypted_size"] == 400

    # Listed by key, oldest first, so that a client without local state finds it.
    later = await tenant.ok("POST", f"/v1/buckets/{bucket}/uploads", json={"key": "cmVz"})
    reply = await tenant.ok("GET", f"/v1/buckets/{bucket}/uploads", params={"key": "cmVz"})
    listed = reply["uploads"]
    assert {u["stream_id"] for u in listed} == {stream, later["stream_id"]}
    assert [u["created_at"] for u in listed] == sorted(u["created_at"] for u in listed)
    assert {u["deadline"] for u in listed} == {began["deadline"], later["deadline"]}
    other = await tenant.ok("GET", f"/v1/buckets/{bucket}/uploads", params={"key": "b3RoZXI"})
    assert other["uploads"] == []
    no_bucket = await tenant.call("GET", "/v1/buckets/nope/uploads", params={"key": "cmVz"})
    assert (no_bucket.status, no_bucket.code) == (404, "bucket-not-found")

    # Authorized like the upload itself: WRITE on its key.
    root = APIKey.parse(tenant.api_key)
    no_writes = root.restrict(Caveat(disallow_writes=True)).serialize()
    elsewhere = root.restrict(Caveat(allowed_paths=(AllowedPath(bucket, "b3RoZXI"),))).serialize()
    read_only = root.restrict(Caveat(disallow_reads=True, disallow_lists=True)).serialize()
    for token in (no_writes, elsewhere):
        denied = await tenant.call("GET", f"/v1/uploads/{stream}", token=token)
        assert (denied.status, denied.code) == (403, "access-denied")
        denied = await tenant.call(
            "GET", f"/v1/buckets/{bucket}/uploads", params={"key": "cmVz"}, token=token
        )
        assert denied.status == 403
    assert (await tenant.call("GET", f"/v1/uploads/{stream}", token=read_only)).status == 200
    # Other projects see nothing.
    stranger = await Tenant.create(tenant.api)
    hidden = await stranger.call("GET", f"/v1/uploads/{stream}")
    assert (hidden.status, hidden.code) == (404, "upload-not-found")

    # Gone once committed or aborted.
    await tenant.ok("DELETE", f"/v1/uploads/{later['stream_id']}")
    gone = await tenant.call("GET", f"/v1/uploads/{later['stream_id']}")
    assert (gone.status, gone.code) == (404, "upload-not-found")
    segment = await tenant.ok(  # begun again, committed, then the object
        "POST",
        f"/v1/uploads/{stream}/segments",
        json={"index": 1, "encrypted_size": 400, "piece_size": 128},
    )
    await tenant.ok(
        "POST",
        f"/v1/uploads/{stream}/segments/1/commit",
        json={"receipts": sign_receipts(online, segment["order_limits"])},
    )
    await tenant.ok("POST", f"/v1/uploads/{stream}/commit", json={})
    gone = await tenant.call("GET", f"/v1/uploads/{stream}")
    assert (gone.status, gone.code) == (404, "upload-not-found")
