"""A farmer's own standing (a signed NodeQuery, no token) and the operators' node table (admin
token): every refusal with its code, and the attacks the signature and bridge id must stop."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from metadisk.core.encoding import b64encode
from metadisk.core.identity import Identity, NodeId
from metadisk.core.messages import NodeQuery
from metadisk.devnet.bridge import BridgeProcess
from metadisk.wire.api.nodes import STANDING_PURPOSE, EvidenceList, NodeStanding, NodeTable
from metadisk.wire.api.routes import ADMIN_NODE_EVIDENCE, ADMIN_NODES, NODE_STANDING
from tests.bridge.helpers import Api, Farmer, FarmerFleet, Reply, checkin

ADMIN_TOKEN = "an-admin-token-" + "x" * 32


@pytest.fixture(scope="module")
def bridge(
    database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeProcess]:
    """The admin API on (a token in ``[server] admin_token``)."""
    process = BridgeProcess(
        tmp_path_factory.mktemp("bridge"),
        database_url=database_url,
        settings={"server": {"admin_token": ADMIN_TOKEN}},
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def other_bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    """A second bridge with default settings: the admin API off."""
    process = BridgeProcess(tmp_path_factory.mktemp("other"))
    process.start()
    yield process
    process.stop()


@pytest.fixture
async def other_api(other_bridge: BridgeProcess) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, other_bridge.url)


def query(
    farmer: Identity,
    bridge_id: str,
    *,
    purpose: str = STANDING_PURPOSE,
    timestamp: int | None = None,
) -> NodeQuery:
    return NodeQuery(
        public_key=farmer.public_key,
        bridge_id=NodeId.from_hex(bridge_id),
        purpose=purpose,
        timestamp=int(time.time()) if timestamp is None else timestamp,
    ).signed_by(farmer)


async def ask(api: Api, encoded: bytes) -> Reply:
    return await api.call("POST", NODE_STANDING, json={"query": b64encode(encoded)})


async def checked_in(api: Api, fleet: FarmerFleet) -> Farmer:
    """A new farmer, checked in and pinged back."""
    farmer = fleet.add()
    reply = await checkin(api, farmer)
    assert reply.status == 200 and reply.body["online"], reply
    return farmer


# -- the standing route ---------------------------------------------------------------------


async def test_a_node_reads_its_own_standing(
    api: Api, bridge: BridgeProcess, fleet: FarmerFleet
) -> None:
    before = int(time.time())
    farmer = await checked_in(api, fleet)
    reply = await ask(api, query(farmer.identity, bridge.node_id).encode())
    assert reply.status == 200, reply
    standing = NodeStanding.model_validate(reply.body)
    assert standing.node_id == farmer.node_id
    assert standing.address == farmer.address
    assert standing.online and not standing.vetted
    assert not (standing.suspended or standing.disqualified or standing.contained)
    assert standing.pieces == 0 and standing.audits == standing.audits_passed == 0
    assert 0.0 <= standing.audit_score <= 1.0 and 0.0 <= standing.online_score <= 1.0
    assert standing.last_seen is not None and standing.last_seen >= before - 1
    assert standing.created_at >= before - 1


async def test_an_unknown_node_is_404(api: Api, bridge: BridgeProcess) -> None:
    stranger = Identity.generate()
    reply = await ask(api, query(stranger, bridge.node_id).encode())
    assert (reply.status, reply.code) == (404, "node-not-found")


async def test_a_query_for_another_purpose_is_refused(
    api: Api, bridge: BridgeProcess, fleet: FarmerFleet
) -> None:
    farmer = await checked_in(api, fleet)
    for purpose in ("exit", "Standing", ""):
        reply = await ask(api, query(farmer.identity, bridge.node_id, purpose=purpose).encode())
        assert (reply.status, reply.code) == (401, "wrong-query"), purpose


async def test_a_query_for_another_bridge_id_is_refused(
    api: Api, fleet: FarmerFleet, other_bridge: BridgeProcess
) -> None:
    farmer = await checked_in(api, fleet)
    for bridge_id in (other_bridge.node_id, Identity.generate().node_id.hex()):
        reply = await ask(api, query(farmer.identity, bridge_id).encode())
        assert (reply.status, reply.code) == (401, "wrong-query")


@pytest.mark.parametrize("offset", [-3600, -601, 601, 3600])
async def test_a_query_far_from_the_bridge_clock_is_refused(
    api: Api, bridge: BridgeProcess, fleet: FarmerFleet, offset: int
) -> None:
    """The bridge's contact_skew (600 s) bounds how long a query can be replayed."""
    farmer = await checked_in(api, fleet)
    stale = query(farmer.identity, bridge.node_id, timestamp=int(time.time()) + offset)
    reply = await ask(api, stale.encode())
    assert (reply.status, reply.code) == (401, "clock-skew")


async def test_a_bad_signature_is_refused(
    api: Api, bridge: BridgeProcess, fleet: FarmerFleet
) -> None:
    farmer = await checked_in(api, fleet)
    encoded = bytearray(query(farmer.identity, bridge.node_id).encode())
    encoded[-1] ^= 1
    reply = await ask(api, bytes(encoded))
    assert (reply.status, reply.code) == (401, "bad-signature")
    unsigned = dataclasses.replace(query(farmer.identity, bridge.node_id), signature=bytes(64))
    assert (await ask(api, unsigned.encode())).code == "bad-signature"


@pytest.mark.parametrize("body", [b"", b"not a node query", b"\x00" * 200])
async def test_what_is_not_a_node_query_is_refused(api: Api, body: bytes) -> None:
    reply = await ask(api, body)
    assert (reply.status, reply.code) == (401, "bad-signature")


async def test_a_body_that_is_not_base64url_is_refused(api: Api) -> None:
    reply = await api.call("POST", NODE_STANDING, json={"query": "not base64!"})
    assert (reply.status, reply.code) == (400, "invalid-request")
    extra = await api.call("POST", NODE_STANDING, json={"query": "AA", "node_id": "x"})
    assert (extra.status, extra.code) == (400, "invalid-request")


# -- attacks ----------------------------------------------------------------------------------


async def test_a_node_cannot_read_another_nodes_standing_with_its_own_signature(
    api: Api, bridge: BridgeProcess, fleet: FarmerFleet
) -> None:
    victim = await checked_in(api, fleet)
    attacker = await checked_in(api, fleet)
    own = query(attacker.identity, bridge.node_id)
    # The attacker's signature under the victim's key: the victim's key does not verify it.
    forged = dataclasses.replace(own, public_key=victim.identity.public_key)
    reply = await ask(api, forged.encode())
    assert (reply.status, reply.code) == (401, "bad-signature")
    # Its own valid query answers its own standing, never the victim's.
    mine = await ask(api, own.encode())
    assert mine.status == 200
    assert mine.body["node_id"] == attacker.node_id.hex() != victim.node_id.hex()


async def test_a_query_signed_for_one_bridge_is_refused_by_another(
    api: Api,
    other_api: Api,
    bridge: BridgeProcess,
    other_bridge: BridgeProcess,
    fleet: FarmerFleet,
) -> None:
    farmer = await checked_in(api, fleet)
    reply = await checkin(other_api, farmer)
    assert reply.status == 200 and reply.body["online"], reply
    for_this = query(farmer.identity, bridge.node_id).encode()
    for_other = query(farmer.identity, other_bridge.node_id).encode()
    # Known at both bridges, each answers the query signed for it and refuses the other's.
    assert (await ask(api, for_this)).status == 200
    assert (await ask(other_api, for_other)).status == 200
    refused = await ask(other_api, for_this)
    assert (refused.status, refused.code) == (401, "wrong-query")
    refused = await ask(api, for_other)
    assert (refused.status, refused.code) == (401, "wrong-query")


# -- the admin node table ---------------------------------------------------------------------


async def test_the_admin_route_is_off_without_a_token(other_api: Api) -> None:
    for token in (None, "", "anything"):
        reply = await other_api.call("GET", ADMIN_NODES, token=token)
        assert (reply.status, reply.code) == (403, "admin-disabled"), token


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", "Bearer wrong", f"Basic {ADMIN_TOKEN}", f"Bearer {ADMIN_TOKEN}x", ADMIN_TOKEN],
)
async def test_the_admin_route_refuses_a_wrong_token(api: Api, authorization: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with api.session.get(api.url + ADMIN_NODES, headers=headers) as response:
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "invalid-admin-token"


async def test_the_admin_route_lists_every_node(
    api: Api, bridge: BridgeProcess, fleet: FarmerFleet
) -> None:
    farmers = [await checked_in(api, fleet) for _ in range(3)]
    reply = await api.call("GET", ADMIN_NODES, token=ADMIN_TOKEN)
    assert reply.status == 200, reply
    table = NodeTable.model_validate(reply.body)
    listed = {node.node_id: node for node in table.nodes}
    assert len(listed) == len(table.nodes)  # one row per node
    # These three, and every other node that checked in here (only the fleet ever did).
    assert {farmer.node_id for farmer in farmers} <= set(listed)
    assert set(listed) <= {farmer.node_id for farmer in fleet.farmers}
    for farmer in farmers:
        node = listed[farmer.node_id]
        assert node.address == farmer.address and node.online and not node.disqualified
    # The operator's row and the node's own view are one standing.
    own = await ask(api, query(farmers[0].identity, bridge.node_id).encode())
    mine, row = NodeStanding.model_validate(own.body), listed[farmers[0].node_id]
    stable = ("node_id", "address", "vetted", "audits", "pieces", "disqualified", "created_at")
    assert {f: getattr(mine, f) for f in stable} == {f: getattr(row, f) for f in stable}


async def test_a_nodes_evidence_needs_the_admin_token(
    api: Api, other_api: Api, fleet: FarmerFleet
) -> None:
    farmer = await checked_in(api, fleet)
    path = ADMIN_NODE_EVIDENCE.format(node_id=farmer.node_id.hex())
    off = await other_api.call("GET", path, token=ADMIN_TOKEN)
    assert (off.status, off.code) == (403, "admin-disabled")
    wrong = await api.call("GET", path, token="wrong")
    assert (wrong.status, wrong.code) == (401, "invalid-admin-token")
    clean = await api.call("GET", path, token=ADMIN_TOKEN)
    assert clean.status == 200 and EvidenceList.model_validate(clean.body).evidence == []
