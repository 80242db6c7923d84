"""A bridge killed (SIGKILL) between begin and commit and in the middle of moves: after restart the
upload is not visible, and the reclaim chore drops it and has its pieces deleted from the farmers;
the moved object is visible under exactly one of its names."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import aiohttp
import pytest

from metadisk.core.encoding import b64decode, b64encode
from metadisk.core.messages import OrderLimit
from metadisk.devnet.bridge import BridgeProcess
from tests.bridge.helpers import Api, FarmerFleet, Tenant, checkin_all, sign_receipts, upload

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


async def test_killed_mid_upload_and_mid_move(bridge: BridgeProcess, fleet: FarmerFleet) -> None:
    """SIGKILL with an upload begun but not committed and moves back and forth under way."""
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
            json={"index": 0, "encrypted_size": 400, "piece_size": 128},
        )
        await tenant.ok(
            "POST",
            f"/v1/uploads/{stream}/segments/0/commit",
            json={"receipts": sign_receipts(fleet, first["order_limits"])},
        )
        second = await tenant.ok(  # begun, pieces maybe uploaded, never committed
            "POST",
            f"/v1/uploads/{stream}/segments",
            json={"index": 1, "encrypted_size": 400, "piece_size": 128},
        )

        await upload(tenant, fleet, bucket, "YQ", [400, 400])
        moved = 0
        under_way = asyncio.Event()

        async def mover() -> None:
            nonlocal moved
            here, there = "YQ", "Yg"
            while True:
                body = {
                    "key": here,
                    "new_bucket": bucket,
                    "new_key": there,
                    "encrypted_metadata": b64encode(f"meta {there}".encode()),
                    "segments": [
                        {"index": i, "encrypted_metadata": b64encode(f"key{i} {there}".encode())}
                        for i in range(2)
                    ],
                }
                await tenant.ok("POST", f"/v1/buckets/{bucket}/object/move", json=body)
                moved += 1
                if moved == 5:
                    under_way.set()
                here, there = there, here

        task = asyncio.create_task(mover())
        await under_way.wait()
        bridge.kill()  # most likely with the next move in flight
        with contextlib.suppress(aiohttp.ClientError):
            await task

    bridge.start()

    async with aiohttp.ClientSession() as session:
        tenant.api = Api(session, bridge.url)
        missing = await tenant.call(
            "GET", f"/v1/buckets/{bucket}/object", params={"key": "Y3Jhc2g"}
        )
        assert (missing.status, missing.code) == (404, "object-not-found")
        # Exactly one of the two names, with the metadata of its own move (one transaction).
        listing = await tenant.ok("GET", f"/v1/buckets/{bucket}/objects")
        [visible] = [item["key"] for item in listing["items"]]
        assert visible in ("YQ", "Yg")
        got = await tenant.ok("GET", f"/v1/buckets/{bucket}/object", params={"key": visible})
        assert got["encrypted_metadata"] == b64encode(f"meta {visible}".encode())
        assert [g["encrypted_metadata"] for g in got["segments"]] == [
            b64encode(f"key{i} {visible}".encode()) for i in range(2)
        ]

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
        # The project counted nothing for the lost upload; the moved object exactly once.
        usage = (await tenant.project())["usage"]
        assert (usage["storage_bytes"], usage["segments"]) == (800, 2)
