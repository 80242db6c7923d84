"""Forged and mismatched piece receipts are refused, each with its named check."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import pytest

from metadisk.core.encoding import b64encode
from metadisk.core.identity import Identity
from metadisk.core.messages import PieceReceipt
from tests.bridge.helpers import FarmerFleet, Tenant, sign_receipts

Forge = Callable[[FarmerFleet, dict[str, Any], list[dict[str, Any]]], str]


def _receipt(fleet: FarmerFleet, order: dict[str, Any], **kwargs: Any) -> PieceReceipt:
    return fleet.by_node(order["node_id"]).receipt(order["order_limit"], **kwargs)


def wrong_signer(fleet: FarmerFleet, order: dict[str, Any], _: list[dict[str, Any]]) -> str:
    good = _receipt(fleet, order)
    stranger = Identity.generate()
    return b64encode(dataclasses.replace(good, signature=stranger.sign(b"anything")).encode())


def wrong_serial(fleet: FarmerFleet, order: dict[str, Any], _: list[dict[str, Any]]) -> str:
    return b64encode(_receipt(fleet, order, serial=os.urandom(16)).encode())


def wrong_size(fleet: FarmerFleet, order: dict[str, Any], _: list[dict[str, Any]]) -> str:
    return b64encode(_receipt(fleet, order, size=99).encode())


def wrong_piece(fleet: FarmerFleet, order: dict[str, Any], _: list[dict[str, Any]]) -> str:
    return b64encode(_receipt(fleet, order, piece_id=os.urandom(32)).encode())


def wrong_node(fleet: FarmerFleet, order: dict[str, Any], orders: list[dict[str, Any]]) -> str:
    """Another farmer of the segment signs a receipt for this order limit in its own name."""
    other = next(o for o in orders if o["node_id"] != order["node_id"])
    return b64encode(fleet.by_node(other["node_id"]).receipt(order["order_limit"]).encode())


def malformed(fleet: FarmerFleet, order: dict[str, Any], _: list[dict[str, Any]]) -> str:
    return b64encode(_receipt(fleet, order).encode()[:-1])


CASES = [
    (wrong_signer, "bad-signature"),
    (wrong_serial, "unknown-serial"),
    (wrong_size, "wrong-size"),
    (wrong_piece, "wrong-piece"),
    (wrong_node, "wrong-node"),
    (malformed, "malformed"),
]


async def _segment(tenant: Tenant, bucket: str) -> tuple[str, list[dict[str, Any]]]:
    began = await tenant.ok("POST", f"/v1/buckets/{bucket}/uploads", json={"key": "YQ"})
    segment = await tenant.ok(
        "POST",
        f"/v1/uploads/{began['stream_id']}/segments",
        json={"index": 0, "encrypted_size": 400, "piece_size": 128},
    )
    return began["stream_id"], segment["order_limits"]


@pytest.mark.parametrize(("forge", "code"), CASES, ids=[code for _, code in CASES])
async def test_forged_receipt_is_refused(
    tenant: Tenant, online: FarmerFleet, forge: Forge, code: str
) -> None:
    bucket = await tenant.bucket()
    stream, orders = await _segment(tenant, bucket)
    good = sign_receipts(online, orders)
    path = f"/v1/uploads/{stream}/segments/0/commit"

    # With exactly o = 8 receipts, one forged: too few valid ones, nothing recorded.
    receipts = [forge(online, orders[0], orders), *good[1:8]]
    refused = await tenant.call("POST", path, json={"receipts": receipts})
    assert (refused.status, refused.code) == (400, "not-enough-pieces")
    assert f"receipt 0: {code}" in refused.body["error"]["message"]

    # With every other receipt valid, the forged one is rejected and its piece not recorded.
    receipts = [forge(online, orders[0], orders), *good[1:]]
    done = await tenant.ok("POST", path, json={"receipts": receipts})
    assert done["pieces"] == 9
    assert [(r["position"], r["code"]) for r in done["rejected"]] == [(0, code)]
    await tenant.ok("POST", f"/v1/uploads/{stream}/commit", json={})
    download = await tenant.ok(
        "GET", f"/v1/buckets/{bucket}/object/segments/0", params={"key": "YQ"}
    )
    # The forged receipt's node holds no recorded piece: it is never sent for.
    assert orders[0]["node_id"] not in {o["node_id"] for o in download["order_limits"]}


async def test_duplicate_receipts_count_once(tenant: Tenant, online: FarmerFleet) -> None:
    bucket = await tenant.bucket()
    stream, orders = await _segment(tenant, bucket)
    good = sign_receipts(online, orders)
    # Eight receipts, but only seven different pieces.
    refused = await tenant.call(
        "POST",
        f"/v1/uploads/{stream}/segments/0/commit",
        json={"receipts": [*good[:7], good[0]]},
    )
    assert refused.code == "not-enough-pieces"
    assert "receipt 7: duplicate" in refused.body["error"]["message"]


async def test_receipt_of_another_segment_is_refused(tenant: Tenant, online: FarmerFleet) -> None:
    bucket = await tenant.bucket()
    stream, orders = await _segment(tenant, bucket)
    other = await tenant.ok(
        "POST",
        f"/v1/uploads/{stream}/segments",
        json={"index": 1, "encrypted_size": 400, "piece_size": 128},
    )
    foreign = sign_receipts(online, other["order_limits"])[:1]
    good = sign_receipts(online, orders)
    refused = await tenant.call(
        "POST",
        f"/v1/uploads/{stream}/segments/0/commit",
        json={"receipts": [*foreign, *good[1:8]]},
    )
    assert refused.code == "not-enough-pieces"
    assert "receipt 0: unknown-serial" in refused.body["error"]["message"]


async def test_receipts_of_a_replaced_order_limit_are_refused(
    tenant: Tenant, online: FarmerFleet
) -> None:
    """Beginning a segment again voids the order limits handed out before."""
    bucket = await tenant.bucket()
    stream, first = await _segment(tenant, bucket)
    again = await tenant.ok(
        "POST",
        f"/v1/uploads/{stream}/segments",
        json={"index": 0, "encrypted_size": 400, "piece_size": 128},
    )
    stale = sign_receipts(online, first)
    refused = await tenant.call(
        "POST", f"/v1/uploads/{stream}/segments/0/commit", json={"receipts": stale}
    )
    assert refused.code == "not-enough-pieces"
    fresh = sign_receipts(online, again["order_limits"])
    assert (
        await tenant.ok("POST", f"/v1/uploads/{stream}/segments/0/commit", json={"receipts": fresh})
    )["pieces"] == 10
