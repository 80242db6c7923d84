"""Quotas count what is promised (issue 13): begun segments reserve against the project's storage
and segment limits until they are committed, aborted or reclaimed; piece sizes are exactly the
codec's; pending uploads and order limits of uncommitted segments are capped per project. On a
real bridge process, on SQLite and again on PostgreSQL; two API processes share the last bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Connection, insert, select

from metadisk.bridge.config import DatabaseConfig, ObjectsConfig, sqlite_url
from metadisk.bridge.db import tables as t
from metadisk.bridge.db.engine import Database
from metadisk.bridge.db.metainfo import MetainfoStore
from metadisk.bridge.db.migrate import alembic_config, upgrade
from metadisk.bridge.reclaim.chore import UploadReclaimer
from metadisk.core.encoding import b64decode
from metadisk.core.erasure import LOCAL
from metadisk.core.messages import OrderLimit
from metadisk.devnet.bridge import BridgeProcess
from metadisk.devnet.postgres import postgres_database
from metadisk.wire.api import routes
from tests.bridge.conftest import ENGINES, postgres_url_or_skip
from tests.bridge.helpers import Api, FarmerFleet, Reply, Tenant, sign_receipts

PENDING_UPLOADS = 4
PENDING_ORDERS = 12 * LOCAL.n  # room for the storage tests' ten pending segments
SETTINGS = {
    "objects": {
        # One profile: the cap on order limits must allow one segment of every profile.
        "profiles": {"local": {"k": LOCAL.k, "m": LOCAL.m, "o": LOCAL.o, "n": LOCAL.n}},
        "max_pending_uploads": PENDING_UPLOADS,
        "max_pending_orders": PENDING_ORDERS,
    }
}
SEGMENT = 100_000  # encrypted bytes
PIECE = 25_024  # the codec's pieces of it at k=4: ceil(100,000 / 4) rounded up to 64
_o = t.objects.c


@pytest.fixture(scope="module")
def bridge(
    database_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BridgeProcess]:
    process = BridgeProcess(
        tmp_path_factory.mktemp("bridge"), database_url=database_url, settings=SETTINGS
    )
    process.start()
    yield process
    process.stop()


def store_of(bridge: BridgeProcess, database_url: str | None) -> tuple[Database, MetainfoStore]:
    """The bridge's own database, opened from the test (what a worker process does)."""
    db = Database(DatabaseConfig(database_url or sqlite_url(bridge.data_dir)))
    return db, MetainfoStore(db)


async def quota_tenant(api: Api, storage: int = 10 * SEGMENT, segments: int = 100) -> Tenant:
    tenant = await Tenant.create(api, limits={"storage_bytes": storage, "segments": segments})
    await tenant.bucket()
    return tenant


async def begin(tenant: Tenant) -> str:
    began = await tenant.ok(
        "POST", routes.BUCKET_UPLOADS.format(bucket="bucket"), json={"key": "YQ"}
    )
    return str(began["stream_id"])


async def segment(
    tenant: Tenant, stream: str, index: int = 0, size: int = SEGMENT, piece: int | None = None
) -> Reply:
    """Begin a segment; its pieces are the codec's size unless `piece` says otherwise."""
    piece = LOCAL.codec().piece_size(size) if piece is None else piece
    body = {"index": index, "encrypted_size": size, "piece_size": piece}
    return await tenant.call("POST", routes.SEGMENTS.format(stream_id=stream), json=body)


async def commit(tenant: Tenant, fleet: FarmerFleet, stream: str, orders: list[Any]) -> None:
    for index, limits in enumerate(orders):
        path = routes.SEGMENT_COMMIT.format(stream_id=stream, index=index)
        await tenant.ok("POST", path, json={"receipts": sign_receipts(fleet, limits)})
    await tenant.ok("POST", routes.UPLOAD_COMMIT.format(stream_id=stream), json={})


def limit_sizes(reply: Reply) -> list[int]:
    """The byte budgets of the PUT order limits in a begin segment's answer."""
    return [
        OrderLimit.decode(b64decode(o["order_limit"])).limit for o in reply.body["order_limits"]
    ]


def refused(reply: Reply, code: str = "limit-exceeded") -> bool:
    return (reply.status, reply.code) == (403, code)


async def test_begins_cannot_reserve_beyond_the_storage_limit(
    api: Api, online: FarmerFleet
) -> None:
    """Segments of many uploads, and segments begun again, all count: what order limits allow
    farmers to take stays within n/k of the storage limit."""
    tenant = await quota_tenant(api)
    granted = 0
    promised = 0
    for _ in range(PENDING_UPLOADS - 1):
        stream = await begin(tenant)
        for index in range(3):
            reply = await segment(tenant, stream, index)
            if reply.status == 201:
                granted += 1
                promised += sum(limit_sizes(reply))
            else:
                assert refused(reply), reply
    assert granted == 9
    # Begun again at an index already pending: the first order limits are still valid.
    again = await begin(tenant)
    last = await segment(tenant, again, 0)
    assert last.status == 201
    granted += 1
    promised += sum(limit_sizes(last))
    assert refused(await segment(tenant, again, 0))
    assert refused(await segment(tenant, again, 1))
    assert promised <= LOCAL.n / LOCAL.k * 10 * SEGMENT + LOCAL.n * 64 * granted


async def test_segment_limit_counts_pending_segments(api: Api, online: FarmerFleet) -> None:
    tenant = await quota_tenant(api, segments=2)
    first, second = await begin(tenant), await begin(tenant)
    assert (await segment(tenant, first, 0)).status == 201
    assert (await segment(tenant, second, 0)).status == 201
    assert refused(await segment(tenant, first, 1))


async def test_commit_turns_the_reservation_into_usage(api: Api, online: FarmerFleet) -> None:
    tenant = await quota_tenant(api, storage=3 * SEGMENT)
    stream = await begin(tenant)
    orders = []
    for index in range(2):
        reply = await segment(tenant, stream, index)
        assert reply.status == 201, reply
        orders.append(reply.body["order_limits"])
    other = await begin(tenant)
    assert refused(await segment(tenant, other, 0, 2 * SEGMENT))
    await commit(tenant, online, stream, orders)
    usage = (await tenant.project())["usage"]
    assert (usage["storage_bytes"], usage["segments"]) == (2 * SEGMENT, 2)
    # Counted once, as usage: one more segment fits, a second does not.
    assert (await segment(tenant, other, 0)).status == 201
    assert refused(await segment(tenant, other, 1))


async def test_abort_releases_the_reservation(api: Api, online: FarmerFleet) -> None:
    tenant = await quota_tenant(api, storage=SEGMENT)
    stream = await begin(tenant)
    assert (await segment(tenant, stream)).status == 201
    other = await begin(tenant)
    assert refused(await segment(tenant, other))
    await tenant.ok("DELETE", routes.UPLOAD.format(stream_id=stream))
    assert (await segment(tenant, other)).status == 201


async def test_reclaim_releases_the_reservation(
    api: Api, online: FarmerFleet, bridge: BridgeProcess, database_url: str | None
) -> None:
    tenant = await quota_tenant(api, storage=SEGMENT)
    stream = await begin(tenant)
    assert (await segment(tenant, stream)).status == 201
    other = await begin(tenant)
    assert refused(await segment(tenant, other))
    db, store = store_of(bridge, database_url)
    try:
        # The bridge's reclaim chore, run one upload's deadline later than the other's.
        deadline = (await tenant.ok("GET", routes.UPLOAD.format(stream_id=stream)))["deadline"]
        reclaimer = UploadReclaimer(store, lambda: int(deadline) + 1)
        assert await reclaimer.cycle() >= 1
    finally:
        db.close()
    gone = await tenant.call("GET", routes.UPLOAD.format(stream_id=stream))
    assert gone.code == "upload-not-found"
    # (`other` was begun as late or later: it may be gone as well.)
    assert (await segment(tenant, await begin(tenant))).status == 201


@pytest.mark.parametrize(
    ("size", "piece"),
    [
        (1, 2 * 1 + 4096),  # the old slack: 2 * ceil(size / k) + 4096
        (SEGMENT, 2 * (SEGMENT // 4) + 4096),
        (SEGMENT, SEGMENT // 4),  # ceil(size / k), not rounded up to 64 like the codec's
        (SEGMENT, PIECE + 64),
    ],
)
async def test_piece_sizes_are_exact(api: Api, online: FarmerFleet, size: int, piece: int) -> None:
    tenant = await quota_tenant(api)
    stream = await begin(tenant)
    reply = await segment(tenant, stream, 0, size, piece)
    assert (reply.status, reply.code) == (400, "invalid-request"), reply
    exact = LOCAL.codec().piece_size(size)
    ok = await segment(tenant, stream, 0, size, exact)
    assert ok.status == 201
    assert set(limit_sizes(ok)) == {exact}


async def test_pending_uploads_are_capped(api: Api, online: FarmerFleet) -> None:
    tenant = await quota_tenant(api)
    streams = [await begin(tenant) for _ in range(PENDING_UPLOADS)]
    path = routes.BUCKET_UPLOADS.format(bucket="bucket")
    over = await tenant.call("POST", path, json={"key": "Yg"})
    assert refused(over, "pending-uploads-limit"), over
    # Other projects are not held back by this one.
    assert (await (await quota_tenant(api)).call("POST", path, json={"key": "Yg"})).status == 201
    await tenant.ok("DELETE", routes.UPLOAD.format(stream_id=streams[0]))
    assert (await tenant.call("POST", path, json={"key": "Yg"})).status == 201


async def test_order_limits_of_uncommitted_segments_are_capped(
    api: Api, online: FarmerFleet
) -> None:
    tenant = await quota_tenant(api, storage=100 * SEGMENT)
    stream = await begin(tenant)
    orders = []
    for index in range(PENDING_ORDERS // LOCAL.n):
        reply = await segment(tenant, stream, index, 1000)
        assert reply.status == 201, reply
        orders.append(reply.body["order_limits"])
    full = PENDING_ORDERS // LOCAL.n
    over = await segment(tenant, stream, full, 1000)
    assert refused(over, "pending-orders-limit"), over
    # Committing a segment gives its order limits back.
    path = routes.SEGMENT_COMMIT.format(stream_id=stream, index=0)
    await tenant.ok("POST", path, json={"receipts": sign_receipts(online, orders[0])})
    assert (await segment(tenant, stream, full, 1000)).status == 201


async def test_two_api_processes_never_both_grant_the_last_bytes(
    api: Api, online: FarmerFleet, bridge: BridgeProcess, database_url: str | None
) -> None:
    second = BridgeProcess(
        bridge.data_dir, role="api", name="api-2", database_url=database_url, settings=SETTINGS
    )
    await asyncio.to_thread(second.start)
    try:
        tenant = await quota_tenant(api, storage=3 * SEGMENT)
        streams = [await begin(tenant) for _ in range(PENDING_UPLOADS)]
        other = Api(api.session, second.url)

        async def ask(n: int) -> Reply:
            via = tenant if n % 2 else replace(tenant, api=other)
            return await segment(via, streams[n % PENDING_UPLOADS], n // PENDING_UPLOADS)

        replies = await asyncio.gather(*(ask(n) for n in range(4 * PENDING_UPLOADS)))
    finally:
        await asyncio.to_thread(second.stop)
    assert all(r.status == 201 or refused(r) for r in replies), replies
    assert sum(r.status == 201 for r in replies) == 3


def test_caps_are_checked_when_configured() -> None:
    with pytest.raises(ValueError, match=r"\[objects\] max_pending_uploads must be at least 1"):
        ObjectsConfig(max_pending_uploads=0)
    with pytest.raises(ValueError, match="max_pending_orders must be at least 110"):
        ObjectsConfig(max_pending_orders=100)  # the global profile's segments take 110


@pytest.mark.parametrize("engine", ENGINES)
def test_the_migration_reserves_what_pending_uploads_hold(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = sqlite_url(tmp_path) if engine == "sqlite" else None
    with contextlib.ExitStack() as stack:
        if url is None:
            url = stack.enter_context(postgres_database(postgres_url_or_skip()))
        db = Database(DatabaseConfig(url))
        stack.callback(db.close)
        db.write(lambda conn: command.upgrade(alembic_config(conn), "0003"))
        pending, committed = os.urandom(16), os.urandom(16)

        def rows(conn: Connection) -> None:
            run = conn.execute
            run(insert(t.users).values(id="u", email="u@x", password_hash="-", created_at=1))
            run(
                insert(t.projects).values(
                    id="p", owner_id="u", name="p", salt=b"s" * 32, created_at=1, max_buckets=1,
                    max_storage=1, max_egress=1, max_segments=1,
                )
            )  # fmt: skip
            run(
                insert(t.buckets).values(
                    project_id="p", name="b", profile="local", k=1, m=1, o=1, n=1, created_at=1
                )
            )
            for stream, status in ((pending, t.PENDING), (committed, t.COMMITTED)):
                run(
                    insert(t.objects).values(
                        stream_id=stream, project_id="p", bucket="b", key=stream.hex(),
                        status=status, created_at=1,
                    )
                )  # fmt: skip
                for index, size in enumerate((100, 30)):
                    run(
                        insert(t.segments).values(
                            stream_id=stream, index=index, status=t.PENDING, created_at=1,
                            root_piece_id=os.urandom(32), encrypted_size=size, piece_size=size,
                            k=1, m=1, o=1, n=1,
                        )
                    )  # fmt: skip
                    run(
                        insert(t.segment_orders).values(
                            serial=os.urandom(16), stream_id=stream, segment_index=index,
                            piece_number=0, node_id=os.urandom(32), piece_id=os.urandom(32),
                            expires_at=1,
                        )
                    )  # fmt: skip

        db.write(rows)
        upgrade(db)
        reserved = (_o.reserved_storage, _o.reserved_segments, _o.reserved_orders)
        got = db.read(
            lambda conn: {
                r.stream_id: tuple(r)[1:] for r in conn.execute(select(_o.stream_id, *reserved))
            }
        )
        assert got == {pending: (130, 2, 2), committed: (0, 0, 0)}
