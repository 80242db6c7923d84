"""``/metrics`` on every peer of a real network (a bridge API, a bridge worker, ten farmers),
scraped around one upload and its download: each shows its share of the requests and bytes."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from metadisk.client import AsyncProject
from metadisk.devnet.network import LocalNetwork
from metadisk.wire.api import routes
from metadisk.wire.dataplane.contract import PIECE
from tests.e2e.harness import SEGMENT, SMALL, SMALL_PIECES
from tests.metrics import Scrape, scrape, summed

SEGMENTS = 4


async def test_every_peer_counts_an_upload_and_a_download(tmp_path: Path) -> None:
    async with LocalNetwork(
        tmp_path / "net",
        farmers=10,
        separate_worker=True,
        bridge_settings={"chores": {"delete_interval": 0.2}},
    ) as network:
        assert network.worker is not None
        tenant = await network.create_tenant()
        data = os.urandom(SEGMENTS * SEGMENT - 100)  # four segments, the last a bit short

        async def farmers() -> Scrape:
            return summed(await asyncio.gather(*(scrape(f.url) for f in network.farmers)))

        bridge0, worker0, farmers0 = await asyncio.gather(
            scrape(network.bridge.url), scrape(network.worker.url), farmers()
        )
        async with await AsyncProject.open(tenant.grant, config=SMALL) as project:
            await project.create_bucket("bkt")
            await project.upload("bkt", "object", data)
            back = b"".join([bytes(view) async for view in project.stream("bkt", "object")])
            assert back == data
        bridge = await scrape(network.bridge.url) - bridge0
        farmer = await farmers() - farmers0

        # The bridge API: one begin and one commit per segment, the object's commit, its bytes.
        http = "metadisk_http_requests_total"
        assert bridge.total(http, route=routes.SEGMENTS, method="POST", status="201") == SEGMENTS
        assert bridge.total(http, route=routes.SEGMENT_COMMIT, status="200") == SEGMENTS
        assert bridge.total(http, route=routes.UPLOAD_COMMIT, status="200") == 1
        assert bridge.total(http, route=routes.OBJECT_SEGMENT, method="GET") == SEGMENTS
        assert bridge.total("metadisk_http_received_bytes_total", route=routes.SEGMENT_COMMIT) > 0
        assert bridge.total("metadisk_http_sent_bytes_total", route=routes.SEGMENTS) > 0
        assert bridge.total("metadisk_bridge_segments_committed_total") == SEGMENTS
        assert bridge.total("metadisk_bridge_committed_bytes_total") >= len(data)
        scheme = network.redundancy
        assert bridge.total("metadisk_bridge_order_limits_total", action="put") >= (
            SEGMENTS * scheme.n
        )

        # The farmers: every piece stored came in a PUT, every byte of it counted, and the
        # download read at least the object's bytes back out.
        stored = farmer.total("metadisk_farmer_pieces_stored_total")
        assert stored >= SEGMENTS * scheme.o
        assert farmer.total(http, route=PIECE, method="PUT", status="201") == stored
        received = farmer.total("metadisk_http_received_bytes_total", route=PIECE)
        assert received >= farmer.total("metadisk_farmer_stored_bytes_total")
        assert received >= stored * SMALL_PIECES
        assert farmer.total("metadisk_farmer_served_bytes_total") >= len(data)
        assert farmer.total("metadisk_http_sent_bytes_total", route=PIECE) >= len(data)

        # The worker: it sends the deletes of the pieces the upload stored but did not record,
        # and each farmer answered each delete it sent once.
        unrecorded = stored - bridge.total("metadisk_bridge_pieces_committed_total")
        deletes = "metadisk_bridge_piece_deletes_total"
        deadline = time.monotonic() + 60
        while True:
            worker = await scrape(network.worker.url)
            settled = worker - worker0
            if settled.total(deletes, outcome="deleted") >= unrecorded:
                break
            assert time.monotonic() < deadline, "the worker did not send its deletes"
            await asyncio.sleep(0.2)
        # Its reclaim chore ran too (at its start; no upload expired).
        assert worker.total("metadisk_chore_runs_total", chore="reclaim", outcome="ok") >= 1
        assert worker.total("metadisk_bridge_queue_depth", queue="uploads-expired") == 0
        farmer = await farmers() - farmers0
        sent = settled.total(deletes, outcome="deleted")
        assert sent == unrecorded  # each stored piece the bridge did not keep, deleted once
        # A piece whose upload was cancelled before it landed is "missing": the farmer says 404.
        missing = settled.total(deletes, outcome="missing")
        assert missing == farmer.total(http, route=PIECE, method="DELETE", status="404")
        assert sent == farmer.total(http, route=PIECE, method="DELETE", status="204")
        assert sent == farmer.total("metadisk_farmer_pieces_deleted_total", how="deleted")
        assert settled.total("metadisk_chore_runs_total", chore="piece-deletion") >= 1
