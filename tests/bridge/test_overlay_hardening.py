"""Issue 13's holes in the node directory, each against the real thing: capacities out of range,
ping-back results as a port scanner, claimed space pulling pieces, the default proof of work and
fec0::/10."""

from __future__ import annotations

import ipaddress
import os
import random
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from metadisk.bridge import errors
from metadisk.bridge.config import (
    BridgeConfig,
    DatabaseConfig,
    HealthConfig,
    NodesConfig,
)
from metadisk.bridge.db import tables as t
from metadisk.bridge.db.overlay import OverlayStore
from metadisk.bridge.overlay.db import Candidate, NodeRecord
from metadisk.bridge.overlay.pinger import Pinger, PingFailed
from metadisk.bridge.overlay.service import MAX_CAPACITY, OverlayService, is_public
from metadisk.bridge.peer import Bridge
from metadisk.cli.bridge import load_config
from metadisk.core.encoding import b64encode
from metadisk.core.identity import Identity, NodeId
from metadisk.core.messages import NodeContact, NodeQuery
from metadisk.devnet.bridge import BridgeProcess
from metadisk.devnet.network import LocalNetwork
from metadisk.wire.api.nodes import STANDING_PURPOSE, PingFailure
from tests.bridge.helpers import Api, FarmerFleet
from tests.bridge.inprocess import paused_bridge

ADMIN = "admin-token-of-the-hardening-tests"
PING_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def bridge(
    database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeProcess]:
    process = BridgeProcess(
        tmp_path_factory.mktemp("bridge"),
        database_url=database_url,
        settings={"server": {"admin_token": ADMIN}, "nodes": {"ping_timeout": PING_TIMEOUT}},
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
async def api(bridge: BridgeProcess) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, bridge.url)


@pytest.fixture(scope="module")
def fleet(bridge: BridgeProcess) -> Iterator[FarmerFleet]:
    farmers = FarmerFleet(2, bridge_public_key=bridge.public_key)
    yield farmers
    farmers.close()


def _contact(identity: Identity, address: str, allocated: int, free: int) -> str:
    contact = NodeContact(identity.public_key, address, allocated, free, "test", int(time.time()))
    return b64encode(contact.signed_by(identity).encode())


# -- capacities -------------------------------------------------------------------------------


async def test_capacity_out_of_range_is_refused_with_a_code(
    api: Api, fleet: FarmerFleet, bridge: BridgeProcess
) -> None:
    farmer = fleet.farmers[0]
    bad = [
        (1 << 63, 1 << 63),  # one past a signed BIGINT: was a 500 and a traceback
        ((1 << 64) - 1, (1 << 64) - 1),  # the largest u64 a contact can carry
        (MAX_CAPACITY, 1 << 63),
        (1 << 30, (1 << 30) + 1),  # more free than allocated
    ]
    for allocated, free in bad:
        contact = _contact(farmer.identity, farmer.address, allocated, free)
        reply = await api.call("POST", "/v1/nodes/checkin", json={"contact": contact})
        assert (reply.status, reply.code) == (400, "invalid-capacity"), (allocated, free, reply)
    gone = await api.call("GET", f"/v1/nodes/{farmer.node_id.hex()}")
    assert (gone.status, gone.code) == (404, "node-not-found")  # the database never saw them
    assert "Traceback" not in bridge.log_tail(400)
    # The largest that fits is a valid claim (what it may pull is tested below).
    contact = _contact(farmer.identity, farmer.address, MAX_CAPACITY, MAX_CAPACITY)
    reply = await api.call("POST", "/v1/nodes/checkin", json={"contact": contact})
    assert reply.status == 200 and reply.body["online"] is True, reply


# -- ping-back results --------------------------------------------------------------------------


def _node_auth(identity: Identity, bridge: BridgeProcess, purpose: str = STANDING_PURPOSE) -> str:
    query = NodeQuery(
        identity.public_key, NodeId.from_hex(bridge.node_id), purpose, int(time.time())
    ).signed_by(identity)
    return f"Node {b64encode(query.encode())}"


async def test_ping_result_is_shown_only_to_the_node_and_admins(
    api: Api, fleet: FarmerFleet, bridge: BridgeProcess
) -> None:
    farmer, other = fleet.farmers[1], Identity.generate()
    path = f"/v1/nodes/{farmer.node_id.hex()}"
    farmer.ping_status = 403  # something answers there, but not a node: an open port
    try:
        contact = _contact(farmer.identity, farmer.address, 1 << 40, 1 << 40)
        reply = await api.call("POST", "/v1/nodes/checkin", json={"contact": contact})
    finally:
        farmer.ping_status = 200
    assert reply.body == {"node_id": farmer.node_id.hex(), "online": False}  # no code here
    stranger = await api.ok("GET", path)
    assert stranger["online"] is False and stranger["last_ping_error"] is None
    admin = await api.ok("GET", path, token=ADMIN)
    assert admin["last_ping_error"] == "http-error"
    # The node itself learns only that its node did not answer: it chose the address, so the
    # detail would tell it which ports of any host are open.
    headers = {"Authorization": _node_auth(farmer.identity, bridge)}
    async with api.session.get(api.url + path, headers=headers) as response:
        assert response.status == 200
        assert (await response.json())["last_ping_error"] == "unreachable"
    refusals = [
        (_node_auth(other, bridge), 403, "other-node"),
        (_node_auth(farmer.identity, bridge, purpose="graceful-exit"), 401, "wrong-query"),
        ("Node not-base64!", 401, "bad-signature"),
        ("Bearer not-the-admin-token", 401, "invalid-admin-token"),
    ]
    for authorization, status, code in refusals:
        async with api.session.get(
            api.url + path, headers={"Authorization": authorization}
        ) as response:
            body = await response.json()
            assert (response.status, body["error"]["code"]) == (status, code), authorization


class _Nodes:
    """The two `OverlayDB` calls a check-in makes, in memory."""

    def __init__(self) -> None:
        self.saved: list[NodeRecord] = []

    def node(self, node_id: bytes) -> NodeRecord | None:
        return None

    def save_contact(self, record: NodeRecord) -> None:
        self.saved.append(record)


async def test_failed_ping_back_answers_the_check_in_at_the_timeout_whatever_failed() -> None:
    """A refused connection fails at once, a filtered port at the timeout: unless every failure
    answers at the timeout, the check-in's own timing tells them apart."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    outcomes: list[PingFailure | None] = ["unreachable", "http-error", "bad-answer", None]
    for outcome in outcomes:
        farmer = Identity.generate()
        service = OverlayService(
            _Nodes(),  # type: ignore[arg-type]
            NodesConfig(difficulty=0, ping_timeout=3.0),
            _pinger(farmer, outcome),
            monotonic=lambda: 100.0,  # the ping failed the instant it began
            sleep=sleep,
        )
        contact = NodeContact(farmer.public_key, "http://8.8.8.8:7000", 1, 1, "t", 1000)
        result = await service.checkin(contact.signed_by(farmer).encode(), 1000)
        assert result.online is (outcome is None)
    assert waits == [3.0, 3.0, 3.0]  # each failure waits out the whole timeout; success none


def _pinger(farmer: Identity, outcome: PingFailure | None) -> Pinger:
    async def ping(address: str, wait: float) -> str:
        if outcome is None:
            return farmer.node_id.hex()
        raise PingFailed(outcome, "detail")

    return ping


# -- claimed capacity and selection --------------------------------------------------------------

CAP = 20  # [nodes] unvetted_pieces for the selection test
PIECE = 1 << 20


def _record(identity: Identity, index: int, free: int, now: int) -> NodeRecord:
    return NodeRecord(
        node_id=identity.node_id.raw,
        public_key=identity.public_key,
        address=f"http://192.0.2.{index}:7000",
        last_net=f"10.0.{index}.0/24",
        allocated=free,
        free=free,
        version="test",
        contact_timestamp=now,
        last_contact_at=now,
        last_ping_ok_at=now,
        last_ping_error=None,
        disqualified_at=None,
        created_at=now,
    )


def _store(peer: Bridge, chosen: list[Candidate], now: int) -> None:
    """Record one segment's pieces on `chosen`, as a commit does."""
    root = os.urandom(32)

    def write(conn: object) -> None:
        conn.execute(  # type: ignore[attr-defined]
            t.piece_sets.insert().values(
                root_piece_id=root,
                refs=1,
                created_at=now,
                k=1,
                m=1,
                o=1,
                n=len(chosen),
                piece_size=PIECE,
            )
        )
        for number, node in enumerate(chosen):
            conn.execute(  # type: ignore[attr-defined]
                t.pieces.insert().values(
                    root_piece_id=root,
                    piece_number=number,
                    node_id=node.node_id,
                    piece_id=os.urandom(32),
                    size=PIECE,
                    piece_hash=bytes(32),
                    stored_at=now,
                )
            )

    peer.db.write(write)


async def test_a_huge_claim_pulls_no_more_than_an_unvetted_share(
    fresh_database: str, tmp_path: Path
) -> None:
    """Claimed space is a threshold, not a weight, and the node's word: while honest nodes have
    room, a node claiming 2**63-1 bytes is chosen like any new node; once they are full it is the
    only one left, and then it gets no more than `unvetted_pieces` before audits vet it."""
    config = BridgeConfig(
        data_dir=tmp_path,
        database=DatabaseConfig(fresh_database),
        nodes=NodesConfig(difficulty=0, single_host=True, unvetted_pieces=CAP),
        health=HealthConfig(new_node_share=0.05),
    )
    async with paused_bridge(config) as peer:
        now = int(time.time())
        store = OverlayStore(peer.db)
        honest = [Identity.generate() for _ in range(10)]
        newcomer, fake = Identity.generate(), Identity.generate()
        for index, identity in enumerate(honest):
            store.save_contact(_record(identity, index, 64 * PIECE, now))
        store.save_contact(_record(newcomer, 20, 64 * PIECE, now))
        store.save_contact(_record(fake, 21, MAX_CAPACITY, now))
        vetted = [identity.node_id.raw for identity in honest]
        peer.db.write(
            lambda conn: conn.execute(
                t.nodes.update().where(t.nodes.c.node_id.in_(vetted)).values(vetted_at=now)
            )
        )
        overlay = OverlayService(store, config.nodes, _no_ping, config.health, rng=random.Random(5))
        # Room everywhere: the claim buys nothing over an honest new node claiming 64 pieces.
        got = {fake.node_id.raw: 0, newcomer.node_id.raw: 0}
        for _ in range(200):
            for node in overlay.select(5, 5, PIECE, now):
                if node.node_id in got:
                    got[node.node_id] += 1
        share = 200 * 5 * 0.05  # both new nodes together: 50 pieces expected
        assert got[fake.node_id.raw] <= share and got[newcomer.node_id.raw] <= share, got
        # The honest nodes fill up (as their check-ins say); the fake's claim never does.
        for identity in [*honest, newcomer]:
            store.save_contact(_record(identity, 0, PIECE - 1, now))
        taken = 0
        for _ in range(3 * CAP):
            try:
                (chosen,) = overlay.select(1, 1, PIECE, now)
            except errors.Unavailable as exc:
                assert exc.code == "not-enough-nodes"
                break
            assert chosen.node_id == fake.node_id.raw
            _store(peer, [chosen], now)
            taken += 1
        assert taken == CAP  # on main it took all 60, and would have taken any number
        # Once audits vet it (it showed that it stores what it holds), its claim counts again.
        peer.db.write(
            lambda conn: conn.execute(
                t.nodes.update().where(t.nodes.c.node_id == fake.node_id.raw).values(vetted_at=now)
            )
        )
        assert [c.node_id for c in overlay.select(1, 1, PIECE, now)] == [fake.node_id.raw]


async def _no_ping(address: str, wait: float) -> str:
    raise AssertionError("selection pings nobody")


# -- proof of work and addresses -------------------------------------------------------------


def test_public_bridges_ask_for_proof_of_work_test_networks_do_not(tmp_path: Path) -> None:
    assert NodesConfig().difficulty == 18  # measured in docs/bridge.md
    assert load_config(None, tmp_path, {}, {}).nodes.difficulty == 18
    assert BridgeProcess(tmp_path / "b").settings["nodes"]["difficulty"] == 0
    devnet = LocalNetwork(tmp_path / "net", farmers=1).bridge.settings["nodes"]
    assert devnet["difficulty"] == 0 and devnet["unvetted_pieces"] == 0
    for bad in (-1, 33):
        with pytest.raises(ValueError, match="difficulty"):
            NodesConfig(difficulty=bad)
    with pytest.raises(ValueError, match="unvetted_pieces"):
        NodesConfig(unvetted_pieces=-1)


@pytest.mark.parametrize("ip", ["fec0::1", "fec0:1:2:3::4", "feff:ffff::1"])
def test_site_local_ipv6_is_not_public(ip: str) -> None:
    assert not is_public(ipaddress.ip_address(ip))
