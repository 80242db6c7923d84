"""The node directory: every check-in check, ping-backs, selection rules, disqualification."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from metadisk.bridge.overlay.db import Candidate
from metadisk.bridge.overlay.service import distinct_networks, network_of, resolve
from metadisk.core.encoding import b64encode
from metadisk.core.identity import Identity
from metadisk.devnet.bridge import BridgeProcess
from tests.bridge.helpers import Api, Farmer, FarmerFleet, Tenant, checkin, checkin_all, upload

DIFFICULTY = 4
ADMIN = "admin-token-of-the-node-tests"
SETTINGS = {
    # A failed ping-back answers the check-in only at the ping timeout: keep it short.
    "nodes": {"difficulty": DIFFICULTY, "single_host": False, "ping_timeout": 2.0},
    "server": {"admin_token": ADMIN},
    "objects": {
        "profiles": {
            "local": {"k": 4, "m": 6, "o": 8, "n": 10},
            "single": {"k": 1, "m": 1, "o": 1, "n": 1},
        }
    },
}


@pytest.fixture(scope="module")
def bridge(
    database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeProcess]:
    """Proof of work required, and the one-piece-per-/24 rule on (all farmers are 127.0.0.1)."""
    process = BridgeProcess(
        tmp_path_factory.mktemp("bridge"), database_url=database_url, settings=SETTINGS
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def fleet(bridge: BridgeProcess) -> Iterator[FarmerFleet]:
    farmers = FarmerFleet(10, bridge_public_key=bridge.public_key, difficulty=DIFFICULTY)
    yield farmers
    farmers.close()


def _worker(fleet: FarmerFleet, difficulty: int = DIFFICULTY) -> Farmer:
    return fleet.add(Identity.generate(difficulty))


async def test_bridge_info(api: Api, bridge: BridgeProcess) -> None:
    info = await api.ok("GET", "/v1/bridge")
    assert info["node_id"] == bridge.node_id
    assert info["public_key"] == b64encode(bridge.public_key)
    assert info["difficulty"] == DIFFICULTY
    assert info["version"]


async def test_good_checkin_is_online(api: Api, fleet: FarmerFleet) -> None:
    farmer = _worker(fleet)
    reply = await checkin(api, farmer)
    assert reply.status == 200
    assert reply.body == {"node_id": farmer.node_id.hex(), "online": True}


async def test_node_status_is_public(api: Api, fleet: FarmerFleet, bridge: BridgeProcess) -> None:
    farmer = _worker(fleet)
    path = f"/v1/nodes/{farmer.node_id.hex()}"
    unknown = await api.call("GET", path)
    assert (unknown.status, unknown.code) == (404, "node-not-found")
    before = int(time.time())
    await checkin(api, farmer)
    status = await api.ok("GET", path)  # no token
    assert status["node_id"] == farmer.node_id.hex() and status["address"] == farmer.address
    assert status["online"] is True and status["last_ping_error"] is None
    assert status["last_seen"] >= before and status["last_ping_ok"] >= before
    # Its ping-back fails: offline at once (a check-in's ping decides), and why it failed.
    farmer.ping_status = 503
    try:
        await checkin(api, farmer)
        down = await api.ok("GET", path)
        assert down["online"] is False and down["last_ping_error"] is None  # not for strangers
        assert down["last_ping_ok"] is None
        assert (await api.ok("GET", path, token=ADMIN))["last_ping_error"] == "http-error"
    finally:
        farmer.ping_status = 200
    await checkin(api, farmer)
    assert (await api.ok("GET", path))["online"] is True
    # Disqualified: never online again, whatever its check-ins.
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "metadisk.cli.bridge", "disqualify", farmer.node_id.hex(),
         "--config", str(bridge.config_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    await checkin(api, farmer)
    assert (await api.ok("GET", path))["online"] is False
    for bad in ("00" * 31, "zz" * 32, "AB" * 32):
        reply = await api.call("GET", f"/v1/nodes/{bad}")
        assert reply.status == 400, (bad, reply)


async def test_bad_signature(api: Api, fleet: FarmerFleet) -> None:
    farmer = _worker(fleet)
    contact = farmer.contact()
    forged = dataclasses.replace(contact, free=contact.free + 1)  # signature no longer matches
    reply = await api.call(
        "POST", "/v1/nodes/checkin", json={"contact": b64encode(forged.encode())}
    )
    assert (reply.status, reply.code) == (400, "bad-signature")


async def test_insufficient_difficulty(api: Api, fleet: FarmerFleet) -> None:
    while True:
        weak = Identity.generate()
        if weak.node_id.difficulty() < DIFFICULTY:
            break
    farmer = fleet.add(weak)
    reply = await checkin(api, farmer)
    assert (reply.status, reply.code) == (400, "insufficient-difficulty")


async def test_clock_skew(api: Api, fleet: FarmerFleet) -> None:
    farmer = _worker(fleet)
    for timestamp in (int(time.time()) - 7200, int(time.time()) + 7200):
        reply = await checkin(api, farmer, timestamp=timestamp)
        assert (reply.status, reply.code) == (400, "clock-skew")


async def test_malformed_contact(api: Api) -> None:
    for contact in ("", "AAAA", b64encode(b"\x03\x01" + bytes(40))):
        reply = await api.call("POST", "/v1/nodes/checkin", json={"contact": contact})
        assert (reply.status, reply.code) == (400, "malformed")
    reply = await api.call("POST", "/v1/nodes/checkin", json={"contact": "not base64!"})
    assert (reply.status, reply.code) == (400, "invalid-request")


async def test_invalid_address(api: Api, fleet: FarmerFleet) -> None:
    farmer = _worker(fleet)
    for address in ("ftp://127.0.0.1:21", "http://127.0.0.1", "http://127.0.0.1:80/path", "x"):
        farmer.address = address
        reply = await checkin(api, farmer)
        assert (reply.status, reply.code) == (400, "invalid-address"), address


async def test_unreachable_address_is_not_online(api: Api, fleet: FarmerFleet) -> None:
    farmer = _worker(fleet)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        farmer.address = f"http://127.0.0.1:{probe.getsockname()[1]}"
    reply = await checkin(api, farmer)
    assert reply.status == 200
    assert reply.body == {"node_id": farmer.node_id.hex(), "online": False}
    status = await api.ok("GET", f"/v1/nodes/{farmer.node_id.hex()}", token=ADMIN)
    assert status["last_ping_error"] == "unreachable"  # a code, not "Connection refused"


async def test_node_id_mismatch_on_ping_is_not_online(api: Api, fleet: FarmerFleet) -> None:
    impostor = _worker(fleet)
    impostor.answer_node_id = Identity.generate().node_id.hex()
    reply = await checkin(api, impostor)
    assert reply.body == {"node_id": impostor.node_id.hex(), "online": False}
    status = await api.ok("GET", f"/v1/nodes/{impostor.node_id.hex()}", token=ADMIN)
    assert status["last_ping_error"] == "wrong-node"
    # Pointing at another node's address does not work either.
    victim = _worker(fleet)
    thief = _worker(fleet)
    thief.address = victim.address
    assert (await checkin(api, thief)).body["online"] is False


async def test_stale_contact(api: Api, fleet: FarmerFleet) -> None:
    farmer = _worker(fleet)
    now = int(time.time())
    assert (await checkin(api, farmer, timestamp=now)).status == 200
    reply = await checkin(api, farmer, timestamp=now - 60)
    assert (reply.status, reply.code) == (400, "stale-contact")


async def test_one_piece_per_network(
    api: Api, tenant: Tenant, fleet: FarmerFleet, bridge: BridgeProcess
) -> None:
    """All farmers share 127.0.0.0/24: only one may hold a piece of a segment."""
    await checkin_all(api, fleet.farmers[:10])  # the others are the check-in tests' misfits
    await tenant.bucket("wide")
    began = await tenant.ok("POST", "/v1/buckets/wide/uploads", json={"key": "YQ"})
    refused = await tenant.call(
        "POST",
        f"/v1/uploads/{began['stream_id']}/segments",
        json={"index": 0, "encrypted_size": 400, "piece_size": 100},
    )
    assert (refused.status, refused.code) == (503, "not-enough-nodes")
    # A refusal a client cannot fix is in the bridge's log as a warning, with its code.
    logged = [line for line in bridge.log_tail(200).splitlines() if "code=not-enough-nodes" in line]
    assert logged and " WARNING " in logged[-1] and "status=503" in logged[-1]
    assert "route=/v1/uploads/{stream_id}/segments" in logged[-1]
    await tenant.bucket("narrow", profile="single")
    one = await upload(tenant, fleet, "narrow", "YQ", [400])
    assert one["segments"][0]["redundancy"] == {"k": 1, "m": 1, "o": 1, "n": 1}


def test_distinct_networks() -> None:
    nodes = [
        Candidate(b"a", b"", "", "10.0.0.0/24"),
        Candidate(b"b", b"", "", "10.0.0.0/24"),
        Candidate(b"c", b"", "", "10.0.1.0/24"),
        Candidate(b"d", b"", "", "10.0.2.0/24"),
    ]
    assert [c.node_id for c in distinct_networks(nodes)] == [b"a", b"c", b"d"]
    assert [c.node_id for c in distinct_networks(nodes, {"10.0.1.0/24"})] == [b"a", b"d"]


async def test_network_of() -> None:
    assert network_of(ipaddress.ip_address("192.168.7.200")) == "192.168.7.0/24"
    assert network_of(ipaddress.ip_address("2001:db8:1:2:3::4")) == "2001:db8:1:2::/64"
    assert network_of((await resolve("localhost"))[0]) in ("127.0.0.0/24", "::/64")


async def test_disqualified_nodes_get_nothing(
    api: Api, tenant: Tenant, fleet: FarmerFleet, bridge: BridgeProcess
) -> None:
    await tenant.bucket("dqx", profile="single")
    await checkin_all(api, fleet.farmers[:1])
    obj = await upload(tenant, fleet, "dqx", "YQ", [400])
    assert obj["segment_count"] == 1
    path = "/v1/buckets/dqx/object/segments/0"
    holder = (await tenant.ok("GET", path, params={"key": "YQ"}))["order_limits"][0]["node_id"]
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "metadisk.cli.bridge", "disqualify", holder,
         "--config", str(bridge.config_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert result.stdout.strip() == "disqualified"
    gone = await tenant.call("GET", path, params={"key": "YQ"})
    assert (gone.status, gone.code) == (503, "segment-unavailable")
    # A disqualified node checking in again stays out of selection.
    await checkin(api, fleet.by_node(holder))
    for _ in range(5):
        began = await tenant.ok("POST", "/v1/buckets/dqx/uploads", json={"key": "Yg"})
        segment = await tenant.call(
            "POST",
            f"/v1/uploads/{began['stream_id']}/segments",
            json={"index": 0, "encrypted_size": 400, "piece_size": 400},
        )
        if segment.status == 201:
            assert holder not in {o["node_id"] for o in segment.body["order_limits"]}
