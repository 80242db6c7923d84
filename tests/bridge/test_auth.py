"""Every caveat, revocation and project limit enforced by a real bridge; projects isolated."""

from __future__ import annotations

import time

from metadisk.core.encoding import b64encode
from metadisk.core.macaroon import AllowedPath, APIKey, Caveat
from tests.bridge.helpers import Api, FarmerFleet, Tenant, sign_receipts, upload


def restrict(tenant: Tenant, **caveat: object) -> str:
    return APIKey.parse(tenant.api_key).restrict(Caveat(**caveat)).serialize()  # type: ignore[arg-type]


async def test_each_operation_needs_its_permission(tenant: Tenant, online: FarmerFleet) -> None:
    bucket = await tenant.bucket()
    await upload(tenant, online, bucket, "b2Jq", [400])
    obj = {"params": {"key": "b2Jq"}}
    no_reads = restrict(tenant, disallow_reads=True)
    no_writes = restrict(tenant, disallow_writes=True)
    no_lists = restrict(tenant, disallow_lists=True)
    no_deletes = restrict(tenant, disallow_deletes=True)

    async def status(token: str, method: str, path: str, **kwargs: object) -> int:
        return (await tenant.call(method, path, token=token, **kwargs)).status  # type: ignore[arg-type]

    get_path = f"/v1/buckets/{bucket}/object"
    segment_path = f"/v1/buckets/{bucket}/object/segments/0"
    list_path = f"/v1/buckets/{bucket}/objects"
    # Reads.
    assert await status(no_reads, "GET", get_path, **obj) == 403
    assert await status(no_reads, "GET", segment_path, **obj) == 403
    assert await status(no_reads, "GET", f"/v1/buckets/{bucket}") == 403
    assert await status(no_writes, "GET", get_path, **obj) == 200
    assert await status(no_writes, "GET", segment_path, **obj) == 200
    # Writes.
    inline = {"key": "bmV3", "data": b64encode(b"d")}
    assert await status(no_writes, "POST", f"/v1/buckets/{bucket}/objects", json=inline) == 403
    begin = {"key": "bmV3"}
    assert await status(no_writes, "POST", f"/v1/buckets/{bucket}/uploads", json=begin) == 403
    assert await status(no_writes, "POST", "/v1/buckets", json={"name": "other"}) == 403
    assert await status(no_reads, "POST", f"/v1/buckets/{bucket}/objects", json=inline) == 201
    # Lists.
    assert await status(no_lists, "GET", list_path) == 403
    assert await status(no_lists, "GET", "/v1/buckets") == 403
    assert await status(no_reads, "GET", list_path) == 200
    # Deletes: including overwriting, which destroys the older object.
    assert await status(no_deletes, "DELETE", get_path, **obj) == 403
    overwrite = {"key": "b2Jq", "data": b64encode(b"over")}
    assert await status(no_deletes, "POST", f"/v1/buckets/{bucket}/objects", json=overwrite) == 403
    assert await status(no_deletes, "DELETE", f"/v1/buckets/{bucket}?force=true") == 403
    fresh = {"key": "ZnJlc2g", "data": b64encode(b"d")}
    assert await status(no_deletes, "POST", f"/v1/buckets/{bucket}/objects", json=fresh) == 201
    got = await tenant.ok("GET", get_path, **obj)
    assert got["segment_count"] == 1  # not overwritten
    assert await status(no_reads, "DELETE", get_path, **obj) == 204


async def test_write_only_key_uploads_but_cannot_overwrite(
    tenant: Tenant, online: FarmerFleet
) -> None:
    bucket = await tenant.bucket()
    upload_only = restrict(tenant, disallow_reads=True, disallow_lists=True, disallow_deletes=True)
    first = await upload(
        Tenant(**{**tenant.__dict__, "api_key": upload_only}), online, bucket, "YQ"
    )
    assert first["segment_count"] == 1
    began = await tenant.ok(
        "POST", f"/v1/buckets/{bucket}/uploads", token=upload_only, json={"key": "YQ"}
    )
    stream = began["stream_id"]
    segment = await tenant.ok(
        "POST",
        f"/v1/uploads/{stream}/segments",
        token=upload_only,
        json={"index": 0, "encrypted_size": 400, "piece_size": 128},
    )
    await tenant.ok(
        "POST",
        f"/v1/uploads/{stream}/segments/0/commit",
        token=upload_only,
        json={"receipts": sign_receipts(online, segment["order_limits"])},
    )
    refused = await tenant.call("POST", f"/v1/uploads/{stream}/commit", token=upload_only, json={})
    assert (refused.status, refused.code) == (403, "access-denied")
    # The full key may replace it.
    assert (await tenant.call("POST", f"/v1/uploads/{stream}/commit", json={})).status == 200


async def test_bucket_and_prefix_caveats(tenant: Tenant) -> None:
    await tenant.bucket("alpha")
    await tenant.bucket("beta")
    for key in ("YQ/eA", "YQ/eQ", "Yg/eA", "YWI"):
        assert (await tenant.put_inline("alpha", key)).status == 201
    only_alpha = restrict(tenant, allowed_paths=(AllowedPath("alpha"),))
    only_prefix = restrict(tenant, allowed_paths=(AllowedPath("alpha", "YQ"),))

    listed = await tenant.ok("GET", "/v1/buckets", token=only_alpha)
    assert [b["name"] for b in listed["buckets"]] == ["alpha"]
    beta = await tenant.call("GET", "/v1/buckets/beta", token=only_alpha)
    assert beta.status == 403
    put_beta = await tenant.put_inline("beta", "YQ", token=only_alpha)
    assert put_beta.status == 403

    async def get(token: str, key: str) -> int:
        reply = await tenant.call(
            "GET", "/v1/buckets/alpha/object", token=token, params={"key": key}
        )
        return reply.status

    assert await get(only_prefix, "YQ/eA") == 200
    assert await get(only_prefix, "Yg/eA") == 403
    assert await get(only_prefix, "YWI") == 403  # "YQ" is a component prefix, not a string one
    assert (await tenant.put_inline("alpha", "YQ/bmV3", token=only_prefix)).status == 201
    assert (await tenant.put_inline("alpha", "Yg/bmV3", token=only_prefix)).status == 403

    def listing(prefix: str) -> dict[str, object]:
        return {"params": {"prefix": prefix, "recursive": True}}

    inside = await tenant.ok(
        "GET", "/v1/buckets/alpha/objects", token=only_prefix, **listing("YQ/")
    )
    assert [i["key"] for i in inside["items"]] == ["YQ/bmV3", "YQ/eA", "YQ/eQ"]
    whole = await tenant.call("GET", "/v1/buckets/alpha/objects", token=only_prefix, **listing(""))
    assert whole.status == 403
    # A prefix-limited key may not delete or create the whole bucket.
    assert (await tenant.call("DELETE", "/v1/buckets/alpha", token=only_prefix)).status == 403


async def test_time_caveats(tenant: Tenant) -> None:
    await tenant.bucket()
    now = int(time.time())
    later = restrict(tenant, not_before=now + 3600)
    expired = restrict(tenant, not_after=now - 3600)
    current = restrict(tenant, not_before=now - 60, not_after=now + 3600)
    for token, expected in ((later, 403), (expired, 403), (current, 201)):
        assert (await tenant.put_inline("bucket", "YQ", token=token)).status == expected


async def test_bad_and_missing_keys(tenant: Tenant, api: Api) -> None:
    await tenant.bucket()
    missing = await api.call("GET", "/v1/buckets")
    assert (missing.status, missing.code) == (401, "unauthenticated")
    garbage = await api.call("GET", "/v1/buckets", token="mdk1!!!")
    assert (garbage.status, garbage.code) == (401, "invalid-api-key")
    key = APIKey.parse(tenant.api_key)
    forged = APIKey(key.key_id, (), bytes(32)).serialize()
    assert (await api.call("GET", "/v1/buckets", token=forged)).code == "invalid-api-key"
    # Dropping a caveat breaks the HMAC chain.
    restricted = key.restrict(Caveat(disallow_lists=True))
    stripped = APIKey(key.key_id, (), restricted.tail).serialize()
    assert (await api.call("GET", "/v1/buckets", token=stripped)).code == "invalid-api-key"
    unknown = APIKey.new(bytes(32), bytes(16)).serialize()
    assert (await api.call("GET", "/v1/buckets", token=unknown)).code == "invalid-api-key"
    session_as_key = await api.call("GET", "/v1/buckets", token=tenant.session)
    assert session_as_key.status == 401
    key_as_session = await api.call("GET", "/v1/projects", token=tenant.api_key)
    assert key_as_session.status == 401


async def test_revocation(tenant: Tenant, api: Api) -> None:
    await tenant.bucket()
    child = restrict(tenant, disallow_deletes=True)
    grandchild = APIKey.parse(child).restrict(Caveat(disallow_writes=True)).serialize()
    sibling = restrict(tenant, disallow_reads=True)
    for token in (child, grandchild, sibling):
        assert (await tenant.call("GET", "/v1/buckets", token=token)).status == 200

    revoked = await api.call(
        "POST",
        f"/v1/projects/{tenant.project_id}/revocations",
        token=tenant.session,
        json={"api_key": child},
    )
    assert revoked.status == 204
    for token in (child, grandchild):
        denied = await tenant.call("GET", "/v1/buckets", token=token)
        assert (denied.status, denied.code) == (403, "access-denied")
        assert "revoked" in denied.body["error"]["message"]
    for token in (tenant.api_key, sibling):
        assert (await tenant.call("GET", "/v1/buckets", token=token)).status == 200

    # With an API key: a key may revoke what was made from it, never its parent or a sibling.
    nephew = APIKey.parse(sibling).restrict(Caveat(disallow_lists=True)).serialize()
    refused = await tenant.call("POST", "/v1/revocations", token=nephew, json={"api_key": sibling})
    assert refused.status == 403
    done = await tenant.call("POST", "/v1/revocations", token=sibling, json={"api_key": nephew})
    assert done.status == 204
    assert (await tenant.call("GET", "/v1/buckets", token=sibling)).status == 200
    assert (await tenant.call("GET", "/v1/buckets/bucket", token=nephew)).status == 403

    # Deleting the root key ends it and everything made from it.
    key_id = APIKey.parse(tenant.api_key).key_id.hex()
    listed = await api.ok("GET", f"/v1/projects/{tenant.project_id}/api-keys", token=tenant.session)
    assert [k["key_id"] for k in listed["api_keys"]] == [key_id]
    deleted = await api.call(
        "DELETE", f"/v1/projects/{tenant.project_id}/api-keys/{key_id}", token=tenant.session
    )
    assert deleted.status == 204
    for token in (tenant.api_key, sibling):
        gone = await tenant.call("GET", "/v1/buckets", token=token)
        assert (gone.status, gone.code) == (401, "invalid-api-key")


async def test_projects_are_isolated(tenant: Tenant, api: Api, online: FarmerFleet) -> None:
    other = await Tenant.create(api)
    await tenant.bucket("shared-name")
    await upload(tenant, online, "shared-name", "c2VjcmV0")
    began = await tenant.ok("POST", "/v1/buckets/shared-name/uploads", json={"key": "cA"})

    # Another project sees nothing of it: 404, as if it did not exist.
    assert (await other.call("GET", "/v1/buckets/shared-name")).code == "bucket-not-found"
    got = await other.call("GET", "/v1/buckets/shared-name/object", params={"key": "c2VjcmV0"})
    assert got.code == "bucket-not-found"
    listing = await other.call("GET", "/v1/buckets/shared-name/objects")
    assert listing.code == "bucket-not-found"
    segment = await other.call(
        "POST",
        f"/v1/uploads/{began['stream_id']}/segments",
        json={"index": 0, "encrypted_size": 400, "piece_size": 128},
    )
    assert segment.code == "upload-not-found"
    assert (await other.call("DELETE", f"/v1/uploads/{began['stream_id']}")).status == 404
    assert (await other.ok("GET", "/v1/buckets"))["buckets"] == []
    # The same bucket name is free in the other project, and separate.
    await other.bucket("shared-name")
    assert (await other.ok("GET", "/v1/buckets/shared-name/objects"))["items"] == []
    # Sessions reach only their own projects.
    foreign = await api.call("GET", f"/v1/projects/{tenant.project_id}", token=other.session)
    assert foreign.code == "project-not-found"
    keys = await api.call(
        "POST",
        f"/v1/projects/{tenant.project_id}/api-keys",
        token=other.session,
        json={"name": "steal"},
    )
    assert keys.status == 404
    revoke = await api.call(
        "POST",
        f"/v1/projects/{other.project_id}/revocations",
        token=other.session,
        json={"api_key": tenant.api_key},
    )
    assert revoke.code == "api-key-not-found"
    assert (await tenant.call("GET", "/v1/buckets")).status == 200


async def test_project_limits(api: Api, online: FarmerFleet) -> None:
    tenant = await Tenant.create(
        api, limits={"buckets": 2, "storage_bytes": 5000, "segments": 2, "egress_bytes": 900}
    )
    limits = (await tenant.project())["limits"]
    assert limits == {"buckets": 2, "storage_bytes": 5000, "egress_bytes": 900, "segments": 2}
    await tenant.bucket("one")
    await tenant.bucket("two")
    third = await tenant.call("POST", "/v1/buckets", json={"name": "three"})
    assert (third.status, third.code) == (403, "limit-exceeded")

    # Storage: inline puts count their bytes; replacing frees the old object's bytes first.
    assert (await tenant.put_inline("one", "YQ", bytes(4000))).status == 201
    assert (await tenant.put_inline("one", "YQ", bytes(4096))).status == 201
    over = await tenant.put_inline("one", "Yg", bytes(1000))
    assert (over.status, over.code) == (403, "limit-exceeded")
    await tenant.ok("DELETE", "/v1/buckets/one/object", params={"key": "YQ"})

    # Segments: begin segment refuses what would pass the limit.
    await upload(tenant, online, "one", "cw", [400, 400])
    began = await tenant.ok("POST", "/v1/buckets/one/uploads", json={"key": "dA"})
    refused = await tenant.call(
        "POST",
        f"/v1/uploads/{began['stream_id']}/segments",
        json={"index": 0, "encrypted_size": 400, "piece_size": 128},
    )
    assert (refused.status, refused.code) == (403, "limit-exceeded")
    big = await tenant.call(
        "POST",
        f"/v1/uploads/{began['stream_id']}/segments",
        json={"index": 0, "encrypted_size": 4800, "piece_size": 1216},
    )
    assert big.code == "limit-exceeded"

    # Egress: each download counts the segment's bytes this month.
    path = "/v1/buckets/one/object/segments/0"
    assert (await tenant.call("GET", path, params={"key": "cw"})).status == 200
    assert (await tenant.call("GET", path, params={"key": "cw"})).status == 200
    third_download = await tenant.call("GET", path, params={"key": "cw"})
    assert (third_download.status, third_download.code) == (403, "limit-exceeded")
    usage = (await tenant.project())["usage"]
    assert usage == {"buckets": 2, "storage_bytes": 800, "egress_bytes": 800, "segments": 2}


async def test_requested_limits_are_capped(api: Api) -> None:
    tenant = await Tenant.create(api, limits={"buckets": 10**15})
    limits = (await tenant.project())["limits"]
    assert limits["buckets"] == 100  # the bridge's default is the ceiling
