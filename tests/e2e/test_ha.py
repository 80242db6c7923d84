"""Two bridge API processes and a worker on one PostgreSQL, with clients uploading through both:
kill -9 one API process mid-run. Every acknowledged upload reads back byte-identical, and no
chore item is processed twice, with a second worker competing for them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from metadisk.bridge.db.tables import PENDING
from metadisk.client import AsyncProject, BridgeAccounts, BridgeNodes, ClientError
from metadisk.core.grant import AccessGrant
from metadisk.core.identity import NodeId
from metadisk.core.macaroon import APIKey
from metadisk.core.paths import EncryptionAccess
from metadisk.devnet.bridge import BridgeProcess
from metadisk.devnet.farmer import FarmerProcess, prepare_farmer
from metadisk.devnet.network import local_profile
from metadisk.devnet.postgres import postgres_database, psycopg_url
from metadisk.farmer.config import TrustedBridge
from metadisk.wire.dataplane.contract import PIECE
from tests.bridge.conftest import postgres_url_or_skip
from tests.e2e.harness import SMALL
from tests.metrics import Scrape, scrape, summed

pytestmark = pytest.mark.postgres

FARMERS = 6
CLIENTS_PER_API = 3
SIZES = (1_000, 150_000, 700_000)  # inline; one segment; two segments (512 KiB at 2/3/4/6)
UPLOAD_TTL = 6  # seconds: uploads the killed process left half done are reclaimed soon


@pytest.fixture
def database() -> Iterator[str]:
    with postgres_database(postgres_url_or_skip()) as url:
        yield url


class Cluster:
    """Bridge API processes, workers and farmers on one database and one bridge identity."""

    def __init__(self, root: Path, database: str) -> None:
        scheme = local_profile(FARMERS)
        self.root = root
        self.settings = {
            "objects": {
                "profiles": {"local": {"k": scheme.k, "m": scheme.m, "o": scheme.o, "n": scheme.n}},
                "upload_ttl": UPLOAD_TTL,
            },
            # Small batches, so that two workers draining one queue take turns at it.
            "chores": {"reclaim_interval": 0.5, "delete_interval": 0.5, "delete_batch": 5},
        }
        self.database = database
        self.apis = [self._bridge("api", f"api-{i}") for i in (1, 2)]
        self.workers = [self._bridge("worker", "worker-1")]
        self.farmers: list[FarmerProcess] = []

    def _bridge(self, role: str, name: str) -> BridgeProcess:
        return BridgeProcess(
            self.root / "bridge",
            role=role,
            name=name,
            database_url=self.database,
            settings=self.settings,
        )

    async def start(self) -> None:
        # The first API process migrates and makes the identity; the others then share both.
        await asyncio.to_thread(self.apis[0].start)
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in [*self.apis[1:], *self.workers]))
        first = self.apis[0]
        trusted = TrustedBridge(NodeId.from_hex(first.node_id), first.public_key, first.url)
        for number in range(1, FARMERS + 1):
            config, identity = prepare_farmer(self.root / f"farmer-{number}", [trusted])
            self.farmers.append(FarmerProcess(config, identity))
        await asyncio.gather(*(farmer.start() for farmer in self.farmers))
        nodes = BridgeNodes(first.url)
        try:
            deadline = time.monotonic() + 60
            for farmer in self.farmers:
                while not (status := await _status(nodes, farmer)) or not status:
                    assert time.monotonic() < deadline, f"{farmer.data_dir.name} not online"
                    await asyncio.sleep(0.1)
        finally:
            await nodes.aclose()

    async def add_worker(self) -> BridgeProcess:
        worker = self._bridge("worker", f"worker-{len(self.workers) + 1}")
        await asyncio.to_thread(worker.start)
        self.workers.append(worker)
        return worker

    async def stop(self) -> None:
        await asyncio.gather(*(farmer.stop() for farmer in self.farmers), return_exceptions=True)
        for process in [*self.workers, *self.apis]:
            await asyncio.to_thread(process.stop)

    async def farmers_scrape(self) -> Scrape:
        return summed(await asyncio.gather(*(scrape(f.url) for f in self.farmers)))

    async def workers_scrape(self) -> Scrape:
        return summed(await asyncio.gather(*(scrape(w.url) for w in self.workers)))


async def _status(nodes: BridgeNodes, farmer: FarmerProcess) -> bool:
    with contextlib.suppress(ClientError):
        return (await nodes.status(farmer.identity.node_id)).online
    return False


@contextlib.asynccontextmanager
async def cluster(root: Path, database: str) -> AsyncIterator[Cluster]:
    running = Cluster(root, database)
    try:
        await running.start()
        yield running
    finally:
        await running.stop()


async def grants(api_urls: list[str]) -> list[str]:
    """One tenant's full grant for each API process (same key, same encryption keys)."""
    accounts = BridgeAccounts(api_urls[0])
    try:
        await accounts.register("ha@example.org", "correct horse battery")
        await accounts.login("ha@example.org", "correct horse battery")
        project = await accounts.create_project("halves")
        api_key = APIKey.parse((await accounts.create_api_key(project.id, "k")).api_key)
    finally:
        await accounts.aclose()
    access = EncryptionAccess(root_key=os.urandom(32))
    return [AccessGrant(url, api_key, access).serialize() for url in api_urls]


async def test_losing_an_api_process_loses_no_acknowledged_upload(
    tmp_path: Path, database: str
) -> None:
    async with cluster(tmp_path, database) as net:
        survivor_grant, doomed_grant = await grants([api.url for api in net.apis])
        async with await AsyncProject.open(survivor_grant, config=SMALL) as setup:
            await setup.create_bucket("halves")
        acknowledged: dict[str, str] = {}  # key -> sha256 of what upload() said it stored
        refused_after_kill = 0
        stop = asyncio.Event()
        killed = asyncio.Event()

        async def client(number: int, grant: str) -> None:
            nonlocal refused_after_kill
            rng = random.Random(number)
            project = await AsyncProject.open(grant, config=SMALL)
            try:
                for sequence in range(10_000):
                    if stop.is_set():
                        return
                    key = f"client-{number}/{sequence}"
                    data = os.urandom(rng.choice(SIZES))
                    try:
                        await project.upload("halves", key, data)
                    except ClientError:
                        if not killed.is_set():
                            raise
                        # Its API process is gone: go on through the one that is up, as a
                        # load balancer would send it.
                        refused_after_kill += 1
                        await project.aclose()
                        project = await AsyncProject.open(survivor_grant, config=SMALL)
                        continue
                    acknowledged[key] = hashlib.sha256(data).hexdigest()
            finally:
                await project.aclose()

        clients = [
            asyncio.create_task(client(n * 2 + i, grant))
            for n in range(CLIENTS_PER_API)
            for i, grant in enumerate((survivor_grant, doomed_grant))
        ]
        try:
            deadline = time.monotonic() + 60
            while len(acknowledged) < 24:
                assert time.monotonic() < deadline, "too few uploads before the kill"
                assert not any(task.done() for task in clients), [t.exception() for t in clients]
                await asyncio.sleep(0.05)
            killed.set()
            await asyncio.to_thread(net.apis[1].kill)  # SIGKILL, mid-upload
            before_kill = len(acknowledged)
            while len(acknowledged) < before_kill + 24:
                assert time.monotonic() < deadline + 60, "uploads did not go on after the kill"
                assert not any(task.done() for task in clients), [t.exception() for t in clients]
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.gather(*clients)
        assert refused_after_kill >= 1, "the kill hit no upload in flight"

        # Every acknowledged upload reads back byte-identical through the surviving process.
        async with await AsyncProject.open(survivor_grant, config=SMALL) as reader:
            for key, digest in acknowledged.items():
                back = b"".join([bytes(v) async for v in reader.stream("halves", key)])
                assert hashlib.sha256(back).hexdigest() == digest, key

            # The uploads the kill cut off expire and are reclaimed, their pieces deleted.
            await drained(net, within=UPLOAD_TTL + 60)

            # Now two workers compete for the deletes of everything: each piece is deleted
            # exactly once (a second delete of a piece would be answered 404 by its farmer).
            await net.add_worker()
            farmers0 = await net.farmers_scrape()
            each0 = [await scrape(worker.url) for worker in net.workers]
            workers0 = summed(each0)
            await reader.delete_bucket("halves", force=True)
        await drained(net, within=60)
        farmers = await net.farmers_scrape()
        workers = await net.workers_scrape() - workers0
        http = "metadisk_http_requests_total"
        deleted = workers.total("metadisk_bridge_piece_deletes_total", outcome="deleted")
        assert deleted > 0
        assert workers.total("metadisk_bridge_piece_deletes_total", outcome="missing") == 0
        delta = farmers - farmers0
        assert delta.total(http, route=PIECE, method="DELETE", status="404") == 0
        assert delta.total(http, route=PIECE, method="DELETE", status="204") == deleted
        gone = farmers0.total("metadisk_farmer_pieces") - farmers.total("metadisk_farmer_pieces")
        assert gone == deleted
        for worker, before in zip(net.workers, each0, strict=True):  # both worked the queue
            share = await scrape(worker.url) - before
            assert share.total("metadisk_chore_runs_total", chore="piece-deletion") > 0


def _queued(database: str) -> tuple[int, int]:
    """Uploads not yet committed and piece deletes not yet sent, read from the database."""
    with psycopg.connect(psycopg_url(database)) as conn:
        pending = conn.execute(f"SELECT count(*) FROM objects WHERE status = {PENDING}")
        uploads = int(pending.fetchone()[0])
        deletes = int(conn.execute("SELECT count(*) FROM piece_deletes").fetchone()[0])
    return uploads, deletes


async def drained(net: Cluster, *, within: float) -> None:
    """Wait until every upload is committed or reclaimed, no piece delete is queued, and the
    farmers' delete counts have settled."""
    deadline = time.monotonic() + within
    last: float | None = None
    while True:
        uploads, deletes = await asyncio.to_thread(_queued, net.database)
        farmers = await net.farmers_scrape()
        seen = farmers.total("metadisk_http_requests_total", route=PIECE, method="DELETE")
        if uploads == deletes == 0 and seen == last:
            return
        last = seen
        assert time.monotonic() < deadline, f"{uploads} uploads, {deletes} deletes left"
        await asyncio.sleep(0.5)
