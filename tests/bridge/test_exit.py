"""Graceful exit at the bridge (``POST /v1/nodes/exit``), against a real bridge process on both
engines: the signed query's refusals, the transfers it hands out, every refused receipt, a piece
that changed hands before its transfer was reported, lost pieces, the end of an exit, and an exit
that stalls (`ExitStore.fail_stalled`, as the repair checker runs it).

Farmers are the doubles of `tests.bridge.helpers`: they store nothing, so the test signs each
new node's receipt with that node's identity, as a farmer that stored the piece would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select, update

from metadisk.bridge.config import DatabaseConfig, sqlite_url
from metadisk.bridge.db import tables as t
from metadisk.bridge.db.engine import Database
from metadisk.bridge.db.exit import ExitStore
from metadisk.bridge.db.overlay import OverlayStore
from metadisk.core.encoding import b64encode
from metadisk.core.identity import Identity, NodeId
from metadisk.core.messages import Action, NodeQuery, PieceReceipt
from metadisk.devnet.bridge import BridgeProcess
from metadisk.wire.api.nodes import (
    EXIT_PURPOSE,
    STANDING_PURPOSE,
    ExitStatus,
    ExitTransfer,
    NodeStanding,
)
from metadisk.wire.api.routes import NODE_EXIT, NODE_STANDING
from tests.bridge.helpers import Api, Farmer, FarmerFleet, Reply, Tenant, checkin_all, upload

EXIT_BATCH = 4
TIMEOUT = 3600


@pytest.fixture(scope="module")
def bridge(
    database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeProcess]:
    """Small exit batches (several rounds per exit) and a quick delete chore."""
    process = BridgeProcess(
        tmp_path_factory.mktemp("bridge"),
        database_url=database_url,
        settings={
            "repair": {"exit_batch": EXIT_BATCH, "exit_timeout": TIMEOUT},
            "chores": {"delete_interval": 0.2},
        },
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def fleet(bridge: BridgeProcess) -> Iterator[FarmerFleet]:
    """Room for the module's exits: each leaves the nodes that take new pieces one fewer, and a
    piece moves only to a node holding no other piece of its segment (10 pieces each)."""
    farmers = FarmerFleet(20, bridge_public_key=bridge.public_key)
    yield farmers
    farmers.close()


@pytest.fixture(scope="module")
def db(bridge: BridgeProcess, database_url: str | None) -> Iterator[Database]:
    """The bridge's own database, opened here to read what it recorded (and, for the stalled
    exit and the race, to play the repair checker and a repair)."""
    database = Database(DatabaseConfig(database_url or sqlite_url(bridge.data_dir)))
    yield database
    database.close()


@pytest.fixture
async def api(bridge: BridgeProcess, fleet: FarmerFleet) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        client = Api(session, bridge.url)
        await checkin_all(client, fleet.farmers)  # every double online, exiting ones too
        yield client


def query(
    farmer: Identity, bridge_id: str, *, purpose: str = EXIT_PURPOSE, offset: int = 0
) -> NodeQuery:
    return NodeQuery(
        public_key=farmer.public_key,
        bridge_id=NodeId.from_hex(bridge_id),
        purpose=purpose,
        timestamp=int(time.time()) + offset,
    ).signed_by(farmer)


async def ask(
    api: Api,
    encoded: bytes,
    done: list[dict[str, str]] | None = None,
    failed: list[dict[str, str]] | None = None,
) -> Reply:
    body: dict[str, Any] = {"query": b64encode(encoded)}
    if done is not None:
        body["done"] = done
    if failed is not None:
        body["failed"] = failed
    return await api.call("POST", NODE_EXIT, json=body)


@dataclass
class Exiting:
    """A node of the fleet that holds pieces of this test's objects, and how to drive its exit."""

    api: Api
    bridge: BridgeProcess
    fleet: FarmerFleet
    farmer: Farmer
    tenant: Tenant  # whose objects (bucket "exit") it holds pieces of

    async def step(
        self, done: list[dict[str, str]] | None = None, failed: list[dict[str, str]] | None = None
    ) -> ExitStatus:
        reply = await ask(self.api, self.query(), done, failed)
        assert reply.status == 200, reply
        return ExitStatus.model_validate(reply.body)

    def query(self) -> bytes:
        return query(self.farmer.identity, self.bridge.node_id).encode()

    async def exit_shown(self) -> str | None:
        """Its exit as its own standing shows it (and the operator's table, the same view)."""
        signed = query(self.farmer.identity, self.bridge.node_id, purpose=STANDING_PURPOSE)
        reply = await self.api.call(
            "POST", NODE_STANDING, json={"query": b64encode(signed.encode())}
        )
        assert reply.status == 200, reply
        return NodeStanding.model_validate(reply.body).exit

    def receipt(self, transfer: ExitTransfer, **changes: Any) -> PieceReceipt:
        """What the new node would sign once it stored the piece; `changes` forge it."""
        limit = transfer.limit
        signer = changes.pop("signer", self.fleet.by_node(limit.node_id.hex()).identity)
        fields = {
            "serial": limit.serial,
            "node_id": limit.node_id,
            "piece_id": limit.piece_id,
            "size": limit.limit,
            "piece_hash": transfer.piece_hash,
            "stored_at": int(time.time()),
            **changes,
        }
        return PieceReceipt(**fields).signed_by(signer)


def done(transfer: ExitTransfer, receipt: PieceReceipt) -> dict[str, str]:
    return {"piece_id": transfer.piece_id, "receipt": b64encode(receipt.encode())}


def pieces_of(db: Database, node_id: NodeId) -> list[Any]:
    p = t.pieces.c
    query = select(p.root_piece_id, p.piece_number, p.piece_id, p.piece_hash).where(
        p.node_id == node_id.raw
    )
    return list(db.read(lambda conn: conn.execute(query).all()))


def piece_row(db: Database, root: bytes, number: int) -> Any:
    p = t.pieces.c
    query = select(t.pieces).where(p.root_piece_id == root, p.piece_number == number)
    return db.read(lambda conn: conn.execute(query).first())


def node_row(db: Database, node_id: NodeId) -> Any:
    query = select(t.nodes).where(t.nodes.c.node_id == node_id.raw)
    return db.read(lambda conn: conn.execute(query).one())


def orders_from(db: Database, node_id: NodeId) -> list[Any]:
    to = t.transfer_orders.c
    query = select(t.transfer_orders).where(to.from_node_id == node_id.raw)
    return list(db.read(lambda conn: conn.execute(query).all()))


async def exiting(api: Api, bridge: BridgeProcess, fleet: FarmerFleet, db: Database) -> Exiting:
    """Upload objects until some node that never exited holds a few of their pieces."""
    tenant = await Tenant.create(api)
    await tenant.bucket("exit")
    for number in range(6):
        await upload(tenant, fleet, "exit", f"b2JqZWN0{number}", [4000, 4000])
    exits = ExitStore(db).exit_states()
    candidates = [f for f in fleet.farmers if f.node_id.raw not in exits]
    farmer = max(candidates, key=lambda f: len(pieces_of(db, f.node_id)))
    assert len(pieces_of(db, farmer.node_id)) >= 5
    return Exiting(api, bridge, fleet, farmer, tenant)


@pytest.fixture
async def leaving(api: Api, bridge: BridgeProcess, fleet: FarmerFleet, db: Database) -> Exiting:
    return await exiting(api, bridge, fleet, db)


# -- the query -------------------------------------------------------------------------------


async def test_bad_queries_are_refused_with_the_standing_codes(
    api: Api, bridge: BridgeProcess, fleet: FarmerFleet, db: Database
) -> None:
    farmer = fleet.farmers[0]
    attacker = fleet.farmers[1]
    own = query(attacker.identity, bridge.node_id)
    forged = dataclasses.replace(own, public_key=farmer.identity.public_key)
    cases = [
        (forged.encode(), 401, "bad-signature"),  # another node's key, the attacker's signature
        (b"not a node query", 401, "bad-signature"),
        (query(farmer.identity, bridge.node_id, purpose="standing").encode(), 401, "wrong-query"),
        (query(farmer.identity, Identity.generate().node_id.hex()).encode(), 401, "wrong-query"),
        (query(farmer.identity, bridge.node_id, offset=-3600).encode(), 401, "clock-skew"),
        (query(Identity.generate(), bridge.node_id).encode(), 404, "node-not-found"),
    ]
    for encoded, status, code in cases:
        reply = await ask(api, encoded)
        assert (reply.status, reply.code) == (status, code), code
    # None of them started anything.
    for node in (farmer, attacker):
        assert node_row(db, node.node_id).exit_started_at is None
    extra = await api.call("POST", NODE_EXIT, json={"query": "AA", "node": "x"})
    assert (extra.status, extra.code) == (400, "invalid-request")


async def test_a_disqualified_node_cannot_exit(
    api: Api, bridge: BridgeProcess, fleet: FarmerFleet, db: Database
) -> None:
    farmer = fleet.add()
    await checkin_all(api, [farmer])
    assert OverlayStore(db).disqualify(farmer.node_id.raw, int(time.time()))
    reply = await ask(api, query(farmer.identity, bridge.node_id).encode())
    assert (reply.status, reply.code) == (403, "exit-refused")
    assert node_row(db, farmer.node_id).exit_started_at is None


# -- a whole exit ----------------------------------------------------------------------------


async def test_an_exit_moves_every_piece_then_ends(leaving: Exiting, db: Database) -> None:
    node = leaving.farmer.node_id
    before = {(r.root_piece_id, r.piece_number): r for r in pieces_of(db, node)}
    assert await leaving.exit_shown() is None
    status = await leaving.step()
    assert await leaving.exit_shown() == "exiting"
    assert status.state == "exiting" and status.remaining == len(before)
    assert 0 < len(status.transfers) <= EXIT_BATCH
    assert node_row(db, node).exit_started_at is not None
    moved: dict[tuple[bytes, int], NodeId] = {}
    rounds = 0
    while status.state == "exiting":
        rounds += 1
        assert rounds < 20
        reports = []
        for transfer in status.transfers:
            limit = transfer.limit
            limit.verify_signature(leaving.bridge.public_key)
            assert limit.action == Action.PUT_REPAIR
            assert limit.node_id != node
            # The piece hash and size are the recorded ones; the serial is a transfer order's.
            (order,) = [o for o in orders_from(db, node) if o.serial == limit.serial]
            key = (order.root_piece_id, order.piece_number)
            assert transfer.piece_hash == before[key].piece_hash
            assert transfer.piece_id == before[key].piece_id.hex()
            # No node holds two pieces of one set: not the new one either.
            holders = _holders(db, order.root_piece_id)
            assert limit.node_id.raw not in holders
            moved[key] = limit.node_id
            reports.append(done(transfer, leaving.receipt(transfer)))
        status = await leaving.step(reports)
        assert not status.refused
    assert status.state == "exited" and status.remaining == 0 and not status.transfers
    assert set(moved) == set(before)
    row = node_row(db, node)
    assert row.exit_result == "exited" and row.exit_finished_at is not None
    assert pieces_of(db, node) == [] and orders_from(db, node) == []
    for (root, number), new_node in moved.items():
        piece = piece_row(db, root, number)
        assert piece.node_id == new_node.raw
        assert PieceReceipt.decode(piece.receipt).node_id == new_node
    # An exit that ended answers its state, and nothing more.
    again = await leaving.step()
    assert (again.state, again.transfers, again.remaining) == ("exited", [], 0)
    assert await leaving.exit_shown() == "exited"


async def test_an_exiting_node_gets_no_new_pieces(leaving: Exiting) -> None:
    await leaving.step()
    tenant = await Tenant.create(leaving.api)
    await tenant.bucket("after")
    for number in range(5):
        obj = await upload(tenant, leaving.fleet, "after", f"YWZ0ZXI{number}", [4000])
        path = "/v1/buckets/after/object/segments/0"
        orders = await tenant.ok("GET", path, params={"key": obj["key"]})
        assert leaving.farmer.node_id.hex() not in {o["node_id"] for o in orders["order_limits"]}


# -- what the farmer reports -----------------------------------------------------------------


async def test_bad_receipts_are_refused_and_the_pieces_handed_out_again(
    leaving: Exiting, db: Database
) -> None:
    status = await leaving.step()
    assert len(status.transfers) == EXIT_BATCH
    first, second, third, fourth = status.transfers
    involved = {tr.limit.node_id for tr in status.transfers} | {leaving.farmer.node_id}
    stranger = next(f.identity for f in leaving.fleet.farmers if f.node_id not in involved)
    other_piece = leaving.receipt(first, piece_id=second.limit.piece_id)
    wrong_hash = leaving.receipt(second, piece_hash=bytes(32))
    # Another node's receipt for the piece: signed by it and naming it.
    other_node = leaving.receipt(third, signer=stranger, node_id=stranger.node_id)
    # The new node's name, another key: a forgery.
    forged = dataclasses.replace(
        leaving.receipt(fourth, signer=stranger, node_id=stranger.node_id),
        node_id=fourth.limit.node_id,
    )
    unknown = leaving.receipt(first, serial=bytes(16))
    before = {r.piece_id: r for r in pieces_of(db, leaving.farmer.node_id)}
    status = await leaving.step(
        [
            done(first, other_piece),
            done(second, wrong_hash),
            done(third, other_node),
            done(fourth, forged),
            done(first, unknown),
        ]
    )
    refused = [(r.piece_id, r.code) for r in status.refused]
    assert refused == [
        (first.piece_id, "wrong-piece"),
        (second.piece_id, "wrong-hash"),
        (third.piece_id, "wrong-node"),
        (fourth.piece_id, "bad-signature"),
        (first.piece_id, "unknown-serial"),
    ]
    # Nothing moved; each refused transfer's order is gone, its new node asked to delete
    # whatever it kept, and its piece handed out again (in this answer or a later one).
    after = {r.piece_id: r for r in pieces_of(db, leaving.farmer.node_id)}
    assert after == before
    serials = {o.serial for o in orders_from(db, leaving.farmer.node_id)}
    for transfer in (first, second, third, fourth):
        assert transfer.limit.serial not in serials
    await _deleted(leaving.fleet, [first, second, third, fourth])
    handed = {tr.piece_id for tr in status.transfers}
    for _ in range(200):  # a random run of the node's pieces each time
        if {first.piece_id, second.piece_id, third.piece_id, fourth.piece_id} <= handed:
            break
        handed |= {tr.piece_id for tr in (await leaving.step()).transfers}
    assert {first.piece_id, second.piece_id, third.piece_id, fourth.piece_id} <= handed


async def test_a_piece_that_changed_hands_meanwhile_is_not_overwritten(
    leaving: Exiting, db: Database
) -> None:
    """The race: a repair moved one piece elsewhere and the object of another was deleted
    after their transfers were handed out; the receipts that then arrive change neither, and
    the copies they name are deleted from the new nodes."""
    s, o = t.segments.c, t.objects.c
    keys = dict(
        db.read(
            lambda conn: conn.execute(
                select(s.root_piece_id, o.key)
                .select_from(t.segments.join(t.objects, o.stream_id == s.stream_id))
                .where(o.project_id == leaving.tenant.project_id)
            ).all()
        )
    )
    for _ in range(20):  # until one is of this test's objects (the node holds others' too)
        status = await leaving.step()
        orders = {o.serial: o for o in orders_from(db, leaving.farmer.node_id)}
        if any(orders[tr.limit.serial].root_piece_id in keys for tr in status.transfers):
            break
    # One transfer of this test's objects (to delete one), another of another segment.
    deleted = next(tr for tr in status.transfers if orders[tr.limit.serial].root_piece_id in keys)
    gone = orders[deleted.limit.serial]
    repaired = next(
        tr for tr in status.transfers if orders[tr.limit.serial].root_piece_id != gone.root_piece_id
    )
    order = orders[repaired.limit.serial]
    elsewhere = next(
        f
        for f in leaving.fleet.farmers
        if f.node_id.raw not in _holders(db, order.root_piece_id)
        and f.node_id != repaired.limit.node_id
    )
    p = t.pieces.c
    db.write(
        lambda conn: conn.execute(
            update(t.pieces)
            .where(p.root_piece_id == order.root_piece_id, p.piece_number == order.piece_number)
            .values(node_id=elsewhere.node_id.raw, piece_id=b"\x01" * 32)
        )
    )
    key = keys[gone.root_piece_id]
    await leaving.tenant.ok("DELETE", "/v1/buckets/exit/object", params={"key": key})
    status = await leaving.step(
        [done(repaired, leaving.receipt(repaired)), done(deleted, leaving.receipt(deleted))]
    )
    assert status.refused == []
    row = piece_row(db, order.root_piece_id, order.piece_number)
    assert (row.node_id, row.piece_id) == (elsewhere.node_id.raw, b"\x01" * 32)
    assert piece_row(db, gone.root_piece_id, gone.piece_number) is None
    assert not {repaired.limit.serial, deleted.limit.serial} & {
        o.serial for o in orders_from(db, leaving.farmer.node_id)
    }
    await _deleted(leaving.fleet, [repaired, deleted])


async def test_what_a_node_does_not_report_is_handed_out_again(
    leaving: Exiting, db: Database
) -> None:
    """The node works through an answer's transfers before it asks again: those it does not
    report then were lost (it crashed, or never got the answer), and go to other nodes now."""
    first = await leaving.step()
    second = await leaving.step()  # as if the first answer never arrived
    serials = {o.serial for o in orders_from(db, leaving.farmer.node_id)}
    assert serials == {tr.limit.serial for tr in second.transfers}
    await _deleted(leaving.fleet, first.transfers)  # whatever their new nodes got goes
    late = await leaving.step([done(tr, leaving.receipt(tr)) for tr in first.transfers])
    assert {r.code for r in late.refused} == {"unknown-serial"}
    # A receipt sent again after it was recorded (its answer lost) counts as moved.
    reports = [done(tr, leaving.receipt(tr)) for tr in late.transfers]
    moved = await leaving.step(reports)
    assert moved.refused == [] and moved.remaining == late.remaining - len(reports)
    again = await leaving.step(reports)
    assert again.refused == [] and again.remaining == moved.remaining


async def test_failed_pieces(leaving: Exiting, db: Database) -> None:
    """A piece the node lost is dropped (repair rebuilds it); one it could not send is handed
    out again."""
    status = await leaving.step()
    lost, unsent = status.transfers[:2]
    held = len(pieces_of(db, leaving.farmer.node_id))
    status = await leaving.step(
        failed=[
            {"piece_id": lost.piece_id, "code": "corrupt-piece"},
            {"piece_id": unsent.piece_id, "code": "connection-failed"},
        ]
    )
    assert status.remaining == held - 1
    ids = {r.piece_id.hex() for r in pieces_of(db, leaving.farmer.node_id)}
    assert lost.piece_id not in ids and unsent.piece_id in ids
    serials = {o.serial for o in orders_from(db, leaving.farmer.node_id)}
    assert not {lost.limit.serial, unsent.limit.serial} & serials
    await _deleted(leaving.fleet, [lost, unsent])


async def test_an_exit_without_progress_fails(leaving: Exiting, db: Database) -> None:
    status = await leaving.step()
    assert status.transfers
    store = ExitStore(db)
    now = int(time.time())
    assert leaving.farmer.node_id.raw not in store.fail_stalled(now + TIMEOUT - 5, TIMEOUT)
    failed = store.fail_stalled(now + TIMEOUT + 5, TIMEOUT)
    assert leaving.farmer.node_id.raw in failed
    row = node_row(db, leaving.farmer.node_id)
    assert row.exit_result == "failed" and row.exit_finished_at == now + TIMEOUT + 5
    assert orders_from(db, leaving.farmer.node_id) == []  # its transfers went with it
    assert store.fail_stalled(now + 2 * TIMEOUT, TIMEOUT) == []  # once
    # The node hears it, with the pieces the bridge still records on it, and gets no more.
    late = await leaving.step([done(tr, leaving.receipt(tr)) for tr in status.transfers])
    assert late.state == "failed" and late.transfers == []
    assert late.remaining == len(pieces_of(db, leaving.farmer.node_id)) > 0
    states = store.exit_states()
    assert states[leaving.farmer.node_id.raw].result == "failed"
    assert await leaving.exit_shown() == "failed"


def _holders(db: Database, root: bytes) -> set[bytes]:
    p = t.pieces.c
    query = select(p.node_id).where(p.root_piece_id == root)
    return {r.node_id for r in db.read(lambda conn: conn.execute(query).all())}


async def _deleted(fleet: FarmerFleet, transfers: list[ExitTransfer]) -> None:
    """Wait until each transfer's new node was asked to delete the piece it names."""
    deadline = time.monotonic() + 20
    for transfer in transfers:
        farmer = fleet.by_node(transfer.limit.node_id.hex())
        while transfer.limit.piece_id not in farmer.deleted:
            assert time.monotonic() < deadline, "the new node was not asked to delete the piece"
            await asyncio.sleep(0.1)
