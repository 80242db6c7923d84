"""Clients' reports of piece transfers: what counts, what is ignored, who may report."""

from __future__ import annotations

from typing import Any

from metadisk.core.encoding import b64encode
from tests.bridge.helpers import FarmerFleet, Tenant, sign_receipts, upload


def outcome(number: int, node: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"piece_number": number, "node_id": node, "outcome": kind, "latency_ms": 12, **extra}


async def stored_object(tenant: Tenant, fleet: FarmerFleet, key: str) -> tuple[str, list[Any]]:
    bucket = await tenant.bucket()
    obj = await upload(tenant, fleet, bucket, key)
    orders = await tenant.ok("GET", f"/v1/buckets/{bucket}/object/segments/0", params={"key": key})
    return obj["stream_id"], orders["order_limits"]


async def test_a_download_report_counts_the_segments_farmers_only(
    tenant: Tenant, online: FarmerFleet
) -> None:
    stream, orders = await stored_object(tenant, online, "reported")
    first, second = orders[0], orders[1]
    report = {
        "key": "reported",
        "stream_id": stream,
        "outcomes": [
            outcome(first["piece_number"], first["node_id"], "success"),
            outcome(second["piece_number"], second["node_id"], "bad-piece", code="bad-piece"),
            # A farmer that does not hold that piece of this segment: ignored.
            outcome(first["piece_number"], second["node_id"], "failed", code="timeout"),
        ],
    }
    path = "/v1/buckets/bucket/object/segments/0/report"
    assert await tenant.ok("POST", path, json=report) == {"recorded": 2, "audits": 1}
    # Reported again: counted again, but the piece is queued for audit only once.
    assert await tenant.ok("POST", path, json=report) == {"recorded": 2, "audits": 0}


async def test_reports_need_read_access_and_a_real_segment(
    tenant: Tenant, online: FarmerFleet
) -> None:
    stream, orders = await stored_object(tenant, online, "guarded")
    body = {"key": "guarded", "stream_id": stream, "outcomes": []}
    missing = await tenant.call("POST", "/v1/buckets/bucket/object/segments/5/report", json=body)
    assert (missing.status, missing.code) == (404, "segment-not-found")
    other = await Tenant.create(tenant.api)
    await other.bucket()
    denied = await other.call("POST", "/v1/buckets/bucket/object/segments/0/report", json=body)
    assert denied.status == 404  # another project's bucket of that name: nothing to report on
    garbled = dict(body, outcomes=[outcome(0, orders[0]["node_id"], "exploded")])
    bad = await tenant.call("POST", "/v1/buckets/bucket/object/segments/0/report", json=garbled)
    assert bad.status == 400


async def test_upload_outcomes_ride_with_the_commit(tenant: Tenant, online: FarmerFleet) -> None:
    bucket = await tenant.bucket()
    began = await tenant.ok("POST", f"/v1/buckets/{bucket}/uploads", json={"key": "o"})
    stream = began["stream_id"]
    segment = await tenant.ok(
        "POST",
        f"/v1/uploads/{stream}/segments",
        json={"index": 0, "encrypted_size": 1000, "piece_size": 256},
    )
    orders = segment["order_limits"]
    outcomes = [outcome(o["piece_number"], o["node_id"], "success") for o in orders]
    outcomes[-1] = outcome(orders[-1]["piece_number"], orders[-1]["node_id"], "slow")
    committed = await tenant.ok(
        "POST",
        f"/v1/uploads/{stream}/segments/0/commit",
        json={
            "receipts": sign_receipts(online, orders),
            "plain_size": 984,
            "outcomes": outcomes,
            "encrypted_metadata": b64encode(b"m"),
        },
    )
    assert committed["pieces"] == len(orders)
