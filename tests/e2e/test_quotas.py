"""Quotas against real farmers (issue 13): a project limited to 2 MB cannot get farmers to take
much more than its order limits promise for 2 MB of segments (n/k of it, plus padding), however
many uploads and segments it begins; once it lets them go, the library's uploads of every size
class fit in the same limit and download byte-identical.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import aiohttp
import pytest

from metadisk.client import Project
from metadisk.core.erasure import LOCAL
from metadisk.core.merkle import digest_piece
from metadisk.devnet.network import Tenant
from metadisk.wire.api import objects as w
from metadisk.wire.api import routes
from metadisk.wire.dataplane import PieceClient
from tests.e2e.harness import SMALL, BackgroundNetwork, MiB, background_network

LIMIT = 2_000_000  # every project's storage limit on this bridge
SEGMENT = 250_000  # encrypted bytes a segment the adversary begins
ATTEMPTS = 16  # segments it tries to begin: twice what the limit holds


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundNetwork]:
    settings = {"accounts": {"default_limits": {"storage_bytes": LIMIT}}}
    with background_network(
        tmp_path_factory.mktemp("quotas"), farmers=10, bridge_settings=settings
    ) as network:
        yield network


async def grab(tenant: Tenant, bridge: str) -> tuple[int, int, list[str]]:
    """Begin segment after segment, two to an upload, and PUT every piece each order limit
    allows to its farmer; (segments granted, bytes the farmers took, the uploads begun)."""
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    piece_size = LOCAL.codec().piece_size(SEGMENT)
    granted = taken = 0
    streams: list[str] = []
    pieces = PieceClient()
    try:
        async with aiohttp.ClientSession(bridge, headers=headers) as http:
            for attempt in range(ATTEMPTS):
                if attempt % 2 == 0:
                    path = routes.BUCKET_UPLOADS.format(bucket="bkt")
                    async with http.post(path, json={"key": f"k{attempt}"}) as answer:
                        assert answer.status == 201, await answer.text()
                        began = w.BeganUpload.model_validate_json(await answer.read())
                    streams.append(began.stream_id)
                body = {"index": attempt % 2, "encrypted_size": SEGMENT, "piece_size": piece_size}
                path = routes.SEGMENTS.format(stream_id=streams[-1])
                async with http.post(path, json=body) as answer:
                    if answer.status == 403:
                        assert (await answer.json())["error"]["code"] == "limit-exceeded"
                        continue
                    assert answer.status == 201, await answer.text()
                    orders = w.SegmentOrders.model_validate_json(await answer.read())
                granted += 1
                for addressed in orders.order_limits:
                    data = os.urandom(addressed.order_limit.limit)
                    receipt = await pieces.put(
                        addressed.address,
                        addressed.order_limit,
                        digest_piece(data).piece_hash,
                        data,
                    )
                    taken += receipt.size
    finally:
        await pieces.aclose()
    return granted, taken, streams


async def abort(tenant: Tenant, bridge: str, streams: list[str]) -> None:
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    async with aiohttp.ClientSession(bridge, headers=headers) as http:
        for stream in streams:
            async with http.delete(routes.UPLOAD.format(stream_id=stream)) as answer:
                assert answer.status == 204, await answer.text()


def test_farmers_take_what_the_storage_limit_promises_and_no_more(
    network: BackgroundNetwork,
) -> None:
    tenant = network.tenant()
    with Project.open(tenant.grant, config=SMALL) as project:
        project.create_bucket("bkt")
        granted, taken, streams = network.call(grab(tenant, network.bridge_url))
        assert granted == LIMIT // SEGMENT
        padding = LOCAL.n * 64 * granted  # pieces are whole 64-byte columns
        assert taken <= LOCAL.n / LOCAL.k * LIMIT + padding

        # Let go of what was grabbed: the limit holds the library's uploads again.
        network.call(abort(tenant, network.bridge_url, streams))
        objects = {
            "inline": os.urandom(100),
            "tiny": os.urandom(5000),
            "segments": os.urandom(MiB + MiB // 2),  # two segments at SMALL's 1 MiB
        }
        for key, data in objects.items():
            project.upload("bkt", key, data)
        for key, data in objects.items():
            assert b"".join(project.stream("bkt", key)) == data
