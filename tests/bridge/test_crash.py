"""A bridge killed (SIGKILL) between begin and commit: after restart nothing is visible, and the
reclaim chore drops the upload and has its pieces deleted from the farmers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import pytest

from metadisk.bridge.launcher import BridgeProcess
from metadisk.core.encoding import b64decode
from metadisk.core.messages import OrderLimit
from tests.bridge.helpers import Api, FarmerFleet, Tenant, checkin_all, sign_receipts

SETTINGS = {
    "objects": {"upload_ttl": 2},
    "chores": {"reclaim_interval": 0.2, "delete_interval": 0.2},
}


@pytest.fixture
def bridge(
    database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeProcess]:
    process = BridgeProcess(
        tmp_path_factory.mktemp("bridge"), database_url=database_url, settings=SETTINGS
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def fleet(bridge: BridgeProcess) -> Iterator[FarmerFleet]:
    farmers = FarmerFleet(10, bridge_public_key=bridge.public_key)
    yield farmers
    farmers.close()


def _piece_ids(orders: list[dict[str, str]]) -> set[bytes]:
    return {OrderLimit.decode(b64decode(o["order_limit"])).piece_id for o in orders}


async def test_killed_between_begin_and_commit(bridge: BridgeProcess, fleet: FarmerFleet) -> None:
    async with aiohttp.ClientSession() as session:
        api = Api(session, bridge.url)
        await checkin_all(api, fleet.farmers)
        tenant = await Tenant.create(api)
        bucket = await tenant.bucket()
        began = await tenant.ok("POST", f"/v1/buckets/{bucket}/uploads", json={"key": "Y3Jhc2g"})
        stream = began["stream_id"]
        first = await tenant.ok(
            "POST",
            f"/v1/uploads/{stream}/segments",
            json={"index": 0, "encrypted_size": 400, "piece_size": 100},
        )
        await tenant.ok(
            "POST",
            f"/v1/uploads/{stream}/segments/0/commit",
            json={"receipts": sign_receipts(fleet, first["order_limits"])},
        )
        second = await tenant.ok(  # begun, pieces maybe uploaded, never committed
            "POST",
            f"/v1/uploads/{stream}/segments",
            json={"index": 1, "encrypted_size": 400, "piece_size": 100},
        )

    bridge.kill()
    bridge.start()

    async with aiohttp.ClientSession() as session:
        tenant.api = Api(session, bridge.url)
        missing = await tenant.call(
            "GET", f"/v1/buckets/{bucket}/object", params={"key": "Y3Jhc2g"}
        )
        assert (missing.status, missing.code) == (404, "object-not-found")
        listing = await tenant.ok("GET", f"/v1/buckets/{bucket}/objects")
        assert listing["items"] == []

        # The restarted bridge's reclaim chore drops the upload once past its deadline, and its
        # deletion chore asks each farmer to delete what it may hold (bounded wait, no timing).
        wanted = _piece_ids(first["order_limits"]) | _piece_ids(second["order_limits"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            deleted = {piece for farmer in fleet.farmers for piece in farmer.deleted}
            if wanted <= deleted:
                break
            await asyncio.sleep(0.1)
        deleted = {piece for farmer in fleet.farmers for piece in farmer.deleted}
        assert wanted <= deleted
        assert not any(farmer.delete_failures for farmer in fleet.farmers)
        gone = await tenant.call("POST", f"/v1/uploads/{stream}/commit", json={})
        assert gone.code == "upload-not-found"
        # The project counted nothing for the lost upload.
        assert (await tenant.project())["usage"]["storage_bytes"] == 0
