"""Garbage collection end to end (issue 12, "Must show"): what deletes missed, filters catch.

A `LocalNetwork` of 12 farmers with ``chore_interval=0.5`` (``metadisk up --chore-interval
0.5``: every node is sent a filter of the pieces it keeps each half second) makes orphans the
three ways the issue names, each time with the farmers holding them hung (SIGSTOP) while the
bridge sends their deletes, and ``delete_max_attempts = 1`` so a failed delete is given up at
once, as ten failures are after about 85 minutes with the defaults. A hung farmer still has
those requests in its socket buffers and would act on them when it wakes, so it is killed and
started again instead (its owner restarting it): the deletes are lost, the pieces stay on its
disk, and only garbage collection can find them. The orphans:

- pieces of an object deleted while one of its farmers hung;
- pieces of an upload abandoned (never committed, reclaimed after its deadline);
- surplus pieces: stored on all n farmers, the segment committed with o receipts.

Each orphan must leave its farmer's disk (pieces and trash) within one collection cycle plus
the farmers' trash grace (2 s here), counted from when its farmer is back, and the farmers must
have counted it as collected; every piece the bridge still records stays, and every kept
object downloads byte-identical.
"""

from __future__ import annotations

import os
import secrets
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from metadisk.client import Project
from metadisk.core.encoding import b64encode
from metadisk.core.merkle import digest_piece
from metadisk.core.messages import OrderLimit
from metadisk.devnet.farmer import FarmerProcess
from metadisk.devnet.network import Tenant
from metadisk.wire.api import objects as w
from metadisk.wire.api import routes
from metadisk.wire.dataplane import PieceClient
from tests.e2e.harness import SMALL, BackgroundNetwork, MiB, background_network, wait_for

INTERVAL = 0.5
GRACE = 2
PIECE_SIZE = 64 << 10


def recorded(network: BackgroundNetwork) -> set[tuple[str, str]]:
    """(node id hex, piece id hex) of every piece the bridge records."""
    with network.bridge_db() as db:
        rows = db.execute("SELECT node_id, piece_id FROM pieces").fetchall()
    return {(r["node_id"].hex(), r["piece_id"].hex()) for r in rows}


def on_disk(network: BackgroundNetwork) -> set[tuple[str, str]]:
    """(node id hex, piece id hex) of every piece file on a farmer's disk, trash included."""
    found = set()
    for farmer in network.farmers:
        for path in farmer.data_dir.glob("pieces/*/*/*"):
            found.add((farmer.node_id, path.name))
        for path in farmer.data_dir.glob("trash/*/*"):
            found.add((farmer.node_id, path.name.split(".")[0]))
    return found


def no_deletes_queued(network: BackgroundNetwork) -> bool:
    with network.bridge_db() as db:
        pending = db.execute("SELECT COUNT(*) FROM piece_deletes").fetchone()[0]
        uploads = db.execute("SELECT COUNT(*) FROM objects WHERE status = 1").fetchone()[0]
    return pending == 0 and uploads == 0


def collected(farmers: list[FarmerProcess]) -> float:
    """Pieces `farmers` moved to their trash on a bridge's retain request since they started
    (their metrics)."""
    total = 0.0
    for each in farmers:
        with urllib.request.urlopen(each.url + "/metrics", timeout=10) as answer:
            for family in text_string_to_metric_families(answer.read().decode()):
                for sample in family.samples:
                    if sample.name == "metadisk_farmer_pieces_deleted_total":
                        total += sample.value if sample.labels.get("how") == "collected" else 0
    return total


def collected_within_a_cycle(
    network: BackgroundNetwork, garbage: set[tuple[str, str]], farmers: list[FarmerProcess]
) -> None:
    """Wait for `garbage` to leave the disks of `farmers` (just restarted: their counters start
    at 0): found online again in a few checks, then one collection cycle and the trash grace.
    They must have counted each piece as collected: the deletes never reached them."""
    wait_for(
        lambda: not (garbage & on_disk(network)),
        "every orphaned piece collected and its trash emptied",
        within=30 + INTERVAL + GRACE,
    )
    assert collected(farmers) >= len(garbage)


def deletes_lost(
    network: BackgroundNetwork,
    farmers: list[FarmerProcess],
    garbage: set[tuple[str, str]],
    action: Callable[[], object],
) -> None:
    """Run `action` with `farmers` hung until every delete it queues is sent (and given up),
    then kill and restart them: what they had not read of those deletes dies with them, and
    `garbage` is still on their disks."""
    for each in farmers:
        network.hang(each)
    try:
        action()
        wait_for(lambda: no_deletes_queued(network), "the deletes sent, and given up")
    finally:
        network.kill(farmers)  # a stopped process dies of SIGKILL too
    assert garbage and garbage <= on_disk(network)
    network.restart(farmers)


def farmer(network: BackgroundNetwork, node_id: str) -> FarmerProcess:
    return next(f for f in network.farmers if f.node_id == node_id)


async def begin_segment(
    tenant: Tenant, bridge: str, key: str
) -> tuple[str, list[w.AddressedLimit]]:
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    async with aiohttp.ClientSession(bridge, headers=headers) as http:
        path = routes.BUCKET_UPLOADS.format(bucket="bkt")
        async with http.post(path, json={"key": key}) as answer:
            assert answer.status in (200, 201), await answer.text()
            began = w.BeganUpload.model_validate_json(await answer.read())
        path = routes.SEGMENTS.format(stream_id=began.stream_id)
        body = {"index": 0, "encrypted_size": 4 * PIECE_SIZE, "piece_size": PIECE_SIZE}
        async with http.post(path, json=body) as answer:
            assert answer.status in (200, 201), await answer.text()
            orders = w.SegmentOrders.model_validate_json(await answer.read())
    return began.stream_id, orders.order_limits


async def store(limits: list[w.AddressedLimit]) -> list[str]:
    """PUT a random piece under each limit; the receipts, base64url."""
    client = PieceClient()
    receipts = []
    try:
        for addressed in limits:
            limit: OrderLimit = addressed.order_limit
            data = os.urandom(PIECE_SIZE)
            receipt = await client.put(
                addressed.address, limit, digest_piece(data).piece_hash, data
            )
            receipts.append(b64encode(receipt.encode()))
    finally:
        await client.aclose()
    return receipts


async def commit(tenant: Tenant, bridge: str, stream: str, receipts: list[str]) -> None:
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    async with aiohttp.ClientSession(bridge, headers=headers) as http:
        path = routes.SEGMENT_COMMIT.format(stream_id=stream, index=0)
        async with http.post(path, json={"receipts": receipts}) as answer:
            assert answer.status == 200, await answer.text()
        path = routes.UPLOAD_COMMIT.format(stream_id=stream)
        async with http.post(path, json={}) as answer:
            assert answer.status == 200, await answer.text()


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundNetwork]:
    settings: dict[str, Any] = {
        "server": {"admin_token": secrets.token_hex(16)},
        "chores": {"delete_max_attempts": 1, "delete_timeout": 2},
        "objects": {"upload_ttl": 4},
    }
    with background_network(
        tmp_path_factory.mktemp("gc"),
        farmers=12,
        chore_interval=INTERVAL,
        bridge_settings=settings,
        farmer_settings={"trash_grace": GRACE},
    ) as network:
        yield network


def test_garbage_collection_removes_what_deletes_missed(network: BackgroundNetwork) -> None:
    tenant = network.tenant()
    kept = {f"kept-{i}": os.urandom(size) for i, size in enumerate([3 * MiB, MiB + 7, 200_000])}
    with Project.open(tenant.grant, config=SMALL) as project:
        project.create_bucket("bkt")
        for key, data in kept.items():
            project.upload("bkt", key, data)

        # 1. An object deleted while a farmer holding one of its pieces hung.
        before = recorded(network)
        project.upload("bkt", "doomed", os.urandom(2 * MiB))
        doomed = recorded(network) - before
        hung = farmer(network, sorted(doomed)[0][0])
        orphans = {piece for piece in doomed if piece[0] == hung.node_id}
        deletes_lost(network, [hung], orphans, lambda: project.delete("bkt", "doomed"))
        collected_within_a_cycle(network, orphans, [hung])

        # 2. An upload abandoned: pieces on every farmer it was given, never committed.
        _, limits = network.call(begin_segment(tenant, network.bridge_url, "abandoned"))
        network.call(store(limits))
        abandoned = {(a.node_id.hex(), a.piece_id) for a in limits}
        holders = [farmer(network, a.node_id.hex()) for a in limits]
        deletes_lost(network, holders, abandoned, lambda: None)  # reclaim queues them
        collected_within_a_cycle(network, abandoned, holders)

        # 3. Surplus: n pieces stored, the segment committed with o of them.
        stream, limits = network.call(begin_segment(tenant, network.bridge_url, "surplus"))
        receipts = network.call(store(limits))
        o = 8
        surplus = {(a.node_id.hex(), a.piece_id) for a in limits[o:]}
        holders = [farmer(network, node) for node, _ in surplus]
        deletes_lost(
            network,
            holders,
            surplus,
            lambda: network.call(commit(tenant, network.bridge_url, stream, receipts[:o])),
        )
        collected_within_a_cycle(network, surplus, holders)

        # Nothing the bridge keeps went: every recorded piece is on its farmer's disk.
        assert recorded(network) <= on_disk(network)
        for key, data in kept.items():
            assert b"".join(project.stream("bkt", key)) == data, key
