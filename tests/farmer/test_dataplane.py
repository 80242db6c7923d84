"""The data plane of a real farmer process: round trips, ranges, audits, deletes and every refusal.

One farmer process serves the whole module (each test uses fresh piece ids); tests that need a
farmer of their own start one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest
import pytest_asyncio
from yarl import URL

from metadisk.core.audit import judge
from metadisk.core.encoding import b64decode, b64encode
from metadisk.core.identity import Identity, NodeId
from metadisk.core.merkle import LEAF_SIZE, digest_piece
from metadisk.core.messages import Action, AuditResponse
from metadisk.devnet.farmer import FarmerProcess, farmer_process
from tests.farmer.helpers import (
    Bridge,
    error_code,
    get,
    order_header,
    piece_id,
    put,
    put_headers,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

BRIDGE = Bridge.new()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def farmer(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FarmerProcess]:
    async with farmer_process(
        tmp_path_factory.mktemp("dataplane") / "data",
        [BRIDGE.trusted],
        allocated=256 << 20,
        checkin_interval=3600,
    ) as process:
        yield process


@pytest_asyncio.fixture(loop_scope="module")
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def piece_url(farmer: FarmerProcess, pid: bytes) -> str:
    return f"{farmer.url}/v1/pieces/{pid.hex()}"


@pytest.mark.parametrize("size", [0, 1, LEAF_SIZE, 3 * LEAF_SIZE + 17, (2 << 20) + 7])
async def test_put_get_round_trip(
    farmer: FarmerProcess, session: aiohttp.ClientSession, size: int
) -> None:
    data = os.urandom(size)
    pid, receipt = await put(session, farmer.url, BRIDGE, farmer.node_id, data)
    receipt.verify_signature(farmer.identity.public_key)
    digest = digest_piece(data)
    assert (receipt.piece_id, receipt.size) == (pid, size)
    assert receipt.piece_hash == digest.piece_hash
    assert receipt.node_id == farmer.identity.node_id

    status, body, response = await get(session, farmer.url, BRIDGE, farmer.node_id, pid)
    assert status == 200
    assert body == data
    assert response.headers["Content-Length"] == str(size)


async def test_ranges(farmer: FarmerProcess, session: aiohttp.ClientSession) -> None:
    size = 100_000
    data = os.urandom(size)
    pid, _ = await put(session, farmer.url, BRIDGE, farmer.node_id, data)
    cases = {
        "bytes=0-99": (0, 100),  # start
        "bytes=40000-49999": (40_000, 10_000),  # middle
        f"bytes={size - 100}-{size - 1}": (size - 100, 100),  # end
        f"bytes={size - 10}-": (size - 10, 10),  # open-ended
        f"bytes={size - 10}-{size + 500}": (size - 10, 10),  # end past the piece: clipped
        "bytes=-250": (size - 250, 250),  # suffix
        f"bytes=-{size * 2}": (0, size),  # suffix longer than the piece
    }
    for header, (offset, count) in cases.items():
        status, body, response = await get(
            session, farmer.url, BRIDGE, farmer.node_id, pid, headers={"Range": header}
        )
        assert status == 206, header
        assert body == data[offset : offset + count], header
        last = offset + count - 1
        assert response.headers["Content-Range"] == f"bytes {offset}-{last}/{size}"


@pytest.mark.parametrize("header", ["bytes=100000-", "bytes=200000-300000", "bytes=-0"])
async def test_unsatisfiable_range(
    farmer: FarmerProcess, session: aiohttp.ClientSession, header: str
) -> None:
    pid, _ = await put(session, farmer.url, BRIDGE, farmer.node_id, os.urandom(100_000))
    limit = BRIDGE.limit(farmer.node_id, pid, Action.GET)
    async with session.get(
        piece_url(farmer, pid), headers={**order_header(limit), "Range": header}
    ) as response:
        assert response.status == 416
        assert response.headers["Content-Range"] == "bytes */100000"
        assert await error_code(response) == "range-not-satisfiable"


@pytest.mark.parametrize("header", ["bytes=5-3", "bytes=0-1,5-6", "items=0-1", "bytes=-"])
async def test_malformed_range(
    farmer: FarmerProcess, session: aiohttp.ClientSession, header: str
) -> None:
    pid, _ = await put(session, farmer.url, BRIDGE, farmer.node_id, b"x" * 100)
    limit = BRIDGE.limit(farmer.node_id, pid, Action.GET)
    async with session.get(
        piece_url(farmer, pid), headers={**order_header(limit), "Range": header}
    ) as response:
        assert response.status == 400
        assert await error_code(response) == "malformed-range"


async def test_get_bytes_count_against_the_limit(
    farmer: FarmerProcess, session: aiohttp.ClientSession
) -> None:
    data = os.urandom(10_000)
    pid, _ = await put(session, farmer.url, BRIDGE, farmer.node_id, data)
    limit = BRIDGE.limit(farmer.node_id, pid, Action.GET, limit=6_000)
    url = piece_url(farmer, pid)
    async with session.get(url, headers=order_header(limit)) as response:
        assert response.status == 400
        assert await error_code(response) == "over-limit"
    async with session.get(url, headers={**order_header(limit), "Range": "bytes=0-3999"}) as r:
        assert r.status == 206
        assert await r.read() == data[:4000]
    # the same order limit has 2,000 bytes left: a second 4,000-byte range is refused
    async with session.get(url, headers={**order_header(limit), "Range": "bytes=4000-7999"}) as r:
        assert r.status == 400
        assert await error_code(r) == "over-limit"
    async with session.get(url, headers={**order_header(limit), "Range": "bytes=4000-5999"}) as r:
        assert r.status == 206
        assert await r.read() == data[4000:6000]


async def test_get_repair_is_a_get(farmer: FarmerProcess, session: aiohttp.ClientSession) -> None:
    data = os.urandom(5000)
    pid, _ = await put(session, farmer.url, BRIDGE, farmer.node_id, data)
    limit = BRIDGE.limit(farmer.node_id, pid, Action.GET_REPAIR)
    async with session.get(piece_url(farmer, pid), headers=order_header(limit)) as response:
        assert response.status == 200
        assert await response.read() == data


async def test_put_repair_stores(farmer: FarmerProcess, session: aiohttp.ClientSession) -> None:
    data, pid = os.urandom(5000), piece_id()
    limit = BRIDGE.limit(farmer.node_id, pid, Action.PUT_REPAIR)
    async with session.put(
        piece_url(farmer, pid), data=data, headers=put_headers(limit, data)
    ) as response:
        assert response.status == 201
    status, body, _ = await get(session, farmer.url, BRIDGE, farmer.node_id, pid)
    assert (status, body) == (200, data)


async def test_audit_proofs_verify_against_the_receipt(
    farmer: FarmerProcess, session: aiohttp.ClientSession
) -> None:
    data = os.urandom(5 * LEAF_SIZE + 123)
    pid, receipt = await put(session, farmer.url, BRIDGE, farmer.node_id, data)
    leaves = len(digest_piece(data).leaf_hashes)
    for index in sorted({0, 1, leaves // 2, leaves - 1}):
        limit = BRIDGE.limit(farmer.node_id, pid, Action.AUDIT)
        async with session.post(
            f"{piece_url(farmer, pid)}/audit",
            json={"leaf_index": index},
            headers=order_header(limit),
        ) as response:
            assert response.status == 200
            body = await response.json()
        leaf = b64decode(body["leaf"])
        assert leaf == data[index * LEAF_SIZE : (index + 1) * LEAF_SIZE]
        response = AuditResponse.decode(b64decode(body["response"]))
        key = farmer.identity.public_key
        assert judge(limit, receipt, key, index, leaf, response).passed


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"leaf_index": 10**6}, "bad-leaf-index"),
        ({"leaf_index": -1}, "bad-leaf-index"),
        ({"leaf_index": "0"}, "malformed-request"),
        ({"leaf": 0}, "malformed-request"),
        ([], "malformed-request"),
    ],
)
async def test_audit_refuses_bad_requests(
    farmer: FarmerProcess, session: aiohttp.ClientSession, body: object, code: str
) -> None:
    pid, _ = await put(session, farmer.url, BRIDGE, farmer.node_id, os.urandom(3000))
    limit = BRIDGE.limit(farmer.node_id, pid, Action.AUDIT)
    async with session.post(
        f"{piece_url(farmer, pid)}/audit", json=body, headers=order_header(limit)
    ) as response:
        assert response.status == 400
        assert await error_code(response) == code


async def test_delete_moves_to_trash(farmer: FarmerProcess, session: aiohttp.ClientSession) -> None:
    pid, _ = await put(session, farmer.url, BRIDGE, farmer.node_id, os.urandom(4000))
    for expected in (204, 404):
        limit = BRIDGE.limit(farmer.node_id, pid, Action.DELETE)
        async with session.delete(piece_url(farmer, pid), headers=order_header(limit)) as r:
            assert r.status == expected
            if expected == 404:
                assert await error_code(r) == "not-found"
    status, _, _ = await get(session, farmer.url, BRIDGE, farmer.node_id, pid)
    assert status == 404
    trash = list((farmer.data_dir / "trash" / BRIDGE.identity.node_id.hex()).iterdir())
    assert any(path.name.startswith(pid.hex()) for path in trash)


async def test_get_missing_piece(farmer: FarmerProcess, session: aiohttp.ClientSession) -> None:
    status, _, _ = await get(session, farmer.url, BRIDGE, farmer.node_id, piece_id())
    assert status == 404


async def test_pieces_are_kept_per_bridge(
    farmer: FarmerProcess, session: aiohttp.ClientSession
) -> None:
    """A bridge's order limit never reaches another bridge's pieces (here: an untrusted one)."""
    pid, _ = await put(session, farmer.url, BRIDGE, farmer.node_id, b"mine")
    other = Bridge.new()
    status, _, _ = await get(session, farmer.url, other, farmer.node_id, pid)
    assert status == 403
    path = farmer.data_dir / "pieces" / BRIDGE.identity.node_id.hex() / pid.hex()[:2] / pid.hex()
    assert path.is_file()


async def test_node_info(farmer: FarmerProcess, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{farmer.url}/v1/node") as response:
        info = await response.json()
    assert info["node_id"] == farmer.node_id
    assert NodeId.from_public_key(b64decode(info["public_key"])).hex() == farmer.node_id
    assert info["address"] == farmer.url
    assert info["version"]


async def test_status(farmer: FarmerProcess, session: aiohttp.ClientSession) -> None:
    data = os.urandom(50_000)
    await put(session, farmer.url, BRIDGE, farmer.node_id, data)
    async with session.get(f"{farmer.url}/v1/status") as response:
        info = await response.json()
    assert info["node_id"] == farmer.node_id
    assert info["allocated"] == 256 << 20
    assert info["used"] + info["free"] == info["allocated"]
    assert info["pieces"] >= 1
    usage = info["bridges"][BRIDGE.identity.node_id.hex()]
    assert usage["stored"] >= 50_000
    assert usage["bandwidth_in"] >= 50_000


# -- refusals, one per check


async def test_no_order_limit(farmer: FarmerProcess, session: aiohttp.ClientSession) -> None:
    pid = piece_id()
    url = piece_url(farmer, pid)
    hash_header = {"X-Metadisk-Piece-Hash": b64encode(digest_piece(b"x").piece_hash)}
    for request in (
        session.put(url, data=b"x", headers=hash_header),
        session.get(url),
        session.delete(url),
        session.post(url + "/audit", json={"leaf_index": 0}),
    ):
        async with request as response:
            assert response.status == 401
            assert await error_code(response) == "missing-order-limit"


@pytest.mark.parametrize(
    "header",
    ["%%%", "AAAA", b64encode(b"\x01\x01" + b"\x00" * 50), "A" * 5000, b64encode(b"\x09" * 300)],
)
async def test_malformed_order_limit(
    farmer: FarmerProcess, session: aiohttp.ClientSession, header: str
) -> None:
    async with session.get(
        piece_url(farmer, piece_id()), headers={"X-Metadisk-Order-Limit": header}
    ) as response:
        assert response.status == 400
        assert await error_code(response) == "malformed-order-limit"


async def refused_put(
    farmer: FarmerProcess,
    session: aiohttp.ClientSession,
    limit_pid: bytes,
    url_pid: bytes,
    data: bytes,
    **changes: object,
) -> tuple[int, str]:
    limit = BRIDGE.limit(farmer.node_id, limit_pid, Action.PUT)
    limit = replace(limit, **changes) if changes else limit  # type: ignore[arg-type]
    async with session.put(
        piece_url(farmer, url_pid), data=data, headers=put_headers(limit, data)
    ) as response:
        return response.status, await error_code(response)


async def test_forged_signature(farmer: FarmerProcess, session: aiohttp.ClientSession) -> None:
    pid = piece_id()
    limit = BRIDGE.limit(farmer.node_id, pid, Action.PUT)
    forged = replace(limit, limit=limit.limit + 1)  # signature no longer covers the fields
    data = b"forged"
    async with session.put(
        piece_url(farmer, pid), data=data, headers=put_headers(forged, data)
    ) as response:
        assert response.status == 403
        assert await error_code(response) == "bad-signature"
    flipped = replace(limit, signature=bytes([limit.signature[0] ^ 1]) + limit.signature[1:])
    async with session.put(
        piece_url(farmer, pid), data=data, headers=put_headers(flipped, data)
    ) as response:
        assert response.status == 403
        assert await error_code(response) == "bad-signature"


async def test_untrusted_bridge(farmer: FarmerProcess, session: aiohttp.ClientSession) -> None:
    pid, data = piece_id(), b"untrusted"
    limit = Bridge.new().limit(farmer.node_id, pid, Action.PUT)
    async with session.put(
        piece_url(farmer, pid), data=data, headers=put_headers(limit, data)
    ) as response:
        assert response.status == 403
        assert await error_code(response) == "untrusted-bridge"


@pytest.mark.parametrize(
    ("now_offset", "ttl", "code"),
    [(-7200, 3600, "expired"), (3600, 3600, "not-yet-valid")],
)
async def test_order_limit_time_window(
    farmer: FarmerProcess, session: aiohttp.ClientSession, now_offset: int, ttl: int, code: str
) -> None:
    import time

    pid, data = piece_id(), b"late"
    limit = BRIDGE.limit(farmer.node_id, pid, Action.PUT, now=time.time() + now_offset, ttl=ttl)
    async with session.put(
        piece_url(farmer, pid), data=data, headers=put_headers(limit, data)
    ) as response:
        assert response.status == 403
        assert await error_code(response) == code


async def test_wrong_node(farmer: FarmerProcess, session: aiohttp.ClientSession) -> None:
    pid, data = piece_id(), b"elsewhere"
    limit = BRIDGE.limit(Identity.generate().node_id, pid, Action.PUT)
    async with session.put(
        piece_url(farmer, pid), data=data, headers=put_headers(limit, data)
    ) as response:
        assert response.status == 403
        assert await error_code(response) == "wrong-node"


async def test_wrong_piece(farmer: FarmerProcess, session: aiohttp.ClientSession) -> None:
    assert await refused_put(farmer, session, piece_id(), piece_id(), b"p") == (403, "wrong-piece")
    stored, _ = await put(session, farmer.url, BRIDGE, farmer.node_id, b"stored")
    limit = BRIDGE.limit(farmer.node_id, piece_id(), Action.GET)
    async with session.get(piece_url(farmer, stored), headers=order_header(limit)) as response:
        assert response.status == 403
        assert await error_code(response) == "wrong-piece"


@pytest.mark.parametrize(
    ("method", "action"),
    [
        ("PUT", Action.GET),
        ("PUT", Action.DELETE),
        ("GET", Action.PUT),
        ("GET", Action.AUDIT),
        ("DELETE", Action.GET),
        ("POST", Action.GET),
    ],
)
async def test_wrong_action(
    farmer: FarmerProcess, session: aiohttp.ClientSession, method: str, action: Action
) -> None:
    data = b"act"
    pid, _ = await put(session, farmer.url, BRIDGE, farmer.node_id, data)
    limit = BRIDGE.limit(farmer.node_id, pid, action)
    url = piece_url(farmer, pid) + ("/audit" if method == "POST" else "")
    async with session.request(
        method, url, data=data, headers=put_headers(limit, data)
    ) as response:
        assert response.status == 403
        assert await error_code(response) == "wrong-action"


async def test_replayed_put_serial(farmer: FarmerProcess, session: aiohttp.ClientSession) -> None:
    pid, data = piece_id(), os.urandom(1000)
    limit = BRIDGE.limit(farmer.node_id, pid, Action.PUT)
    headers = put_headers(limit, data)
    async with session.put(piece_url(farmer, pid), data=data, headers=headers) as response:
        assert response.status == 201
    async with session.put(piece_url(farmer, pid), data=data, headers=headers) as response:
        assert response.status == 409
        assert await error_code(response) == "serial-reused"
    # still refused after the piece is deleted: the serial, not the piece, is single-use
    delete = BRIDGE.limit(farmer.node_id, pid, Action.DELETE)
    async with session.delete(piece_url(farmer, pid), headers=order_header(delete)) as response:
        assert response.status == 204
    async with session.put(piece_url(farmer, pid), data=data, headers=headers) as response:
        assert response.status == 409
        assert await error_code(response) == "serial-reused"


async def test_existing_piece(farmer: FarmerProcess, session: aiohttp.ClientSession) -> None:
    pid, _ = await put(session, farmer.url, BRIDGE, farmer.node_id, b"first")
    assert await refused_put(farmer, session, pid, pid, b"second") == (409, "piece-exists")
    status, body, _ = await get(session, farmer.url, BRIDGE, farmer.node_id, pid)
    assert (status, body) == (200, b"first")


async def test_body_over_the_limit(farmer: FarmerProcess, session: aiohttp.ClientSession) -> None:
    pid, data = piece_id(), os.urandom(10_001)
    limit = BRIDGE.limit(farmer.node_id, pid, Action.PUT, limit=10_000)
    async with session.put(
        piece_url(farmer, pid), data=data, headers=put_headers(limit, data)
    ) as response:
        assert response.status == 400
        assert await error_code(response) == "over-limit"
    status, _, _ = await get(session, farmer.url, BRIDGE, farmer.node_id, pid)
    assert status == 404


async def test_hash_mismatch_stores_nothing(
    farmer: FarmerProcess, session: aiohttp.ClientSession
) -> None:
    pid, data = piece_id(), os.urandom(300_000)
    limit = BRIDGE.limit(farmer.node_id, pid, Action.PUT)
    headers = put_headers(limit, data[:-1] + bytes([data[-1] ^ 1]))
    async with session.put(piece_url(farmer, pid), data=data, headers=headers) as response:
        assert response.status == 400
        assert await error_code(response) == "hash-mismatch"
    status, _, _ = await get(session, farmer.url, BRIDGE, farmer.node_id, pid)
    assert status == 404
    assert not list((farmer.data_dir / "tmp").iterdir())
    # the id is still free for a correct upload
    _, receipt = await put(session, farmer.url, BRIDGE, farmer.node_id, data, pid)
    assert receipt.size == len(data)


async def test_chunked_upload_needs_length(
    farmer: FarmerProcess, session: aiohttp.ClientSession
) -> None:
    pid, data = piece_id(), b"chunked body"

    async def body() -> AsyncIterator[bytes]:
        yield data

    limit = BRIDGE.limit(farmer.node_id, pid, Action.PUT)
    async with session.put(
        piece_url(farmer, pid), data=body(), headers=put_headers(limit, data)
    ) as response:
        assert response.status == 411
        assert await error_code(response) == "length-required"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (None, "missing-piece-hash"),
        ("not base64!", "malformed-piece-hash"),
        ("AAAA", "malformed-piece-hash"),
    ],
)
async def test_piece_hash_header(
    farmer: FarmerProcess, session: aiohttp.ClientSession, value: str | None, code: str
) -> None:
    pid = piece_id()
    headers = order_header(BRIDGE.limit(farmer.node_id, pid, Action.PUT))
    if value is not None:
        headers["X-Metadisk-Piece-Hash"] = value
    async with session.put(piece_url(farmer, pid), data=b"abc", headers=headers) as response:
        assert response.status == 400
        assert await error_code(response) == code


@pytest.mark.parametrize(
    "raw_id",
    [
        "..%2F..%2Fetc",
        "..%2F..%2Fetc%2Fpasswd",
        "%2E%2E",
        "..",
        "g" * 64,
        "ab" * 31,
        "ab" * 33,
        "AB" * 32,
        "ab" * 32 + "%00",
        "ab" * 31 + "%2F" + "ab",
        "ab" * 32 + "%2F..",
        "ab" * 32 + "/extra",
    ],
)
async def test_bad_piece_ids(
    farmer: FarmerProcess, session: aiohttp.ClientSession, raw_id: str
) -> None:
    pid = piece_id()
    limit = BRIDGE.limit(farmer.node_id, pid, Action.GET)
    url = URL(f"{farmer.url}/v1/pieces/{raw_id}", encoded=True)
    async with session.get(url, headers=order_header(limit)) as response:
        assert response.status in (400, 404), raw_id
        if response.status == 400:
            assert await error_code(response) == "bad-piece-id"
        else:  # a path with extra segments is no piece route at all
            assert await error_code(response) == "not-found"


async def test_full_allocation(
    tmp_path_factory: pytest.TempPathFactory, session: aiohttp.ClientSession
) -> None:
    async with farmer_process(
        tmp_path_factory.mktemp("small") / "data",
        [BRIDGE.trusted],
        allocated=1 << 20,
        checkin_interval=3600,
    ) as small:
        big = os.urandom((1 << 20) + 1)
        pid = piece_id()
        limit = BRIDGE.limit(small.node_id, pid, Action.PUT)
        async with session.put(
            piece_url(small, pid), data=big, headers=put_headers(limit, big)
        ) as response:
            assert response.status == 507
            assert await error_code(response) == "insufficient-storage"
        # The refusal is in the farmer's log as a warning, with its code and no header.
        (line,) = [line for line in small.log_tail(50).splitlines() if " refused " in line]
        assert " WARNING " in line and "code=insufficient-storage" in line and "status=507" in line
        assert "route=/v1/pieces/{piece_id}" in line and "Order-Limit" not in line

        # an upload in flight holds the bytes it sent, not the ones it promised: a second one
        # that fits beside what it sent is taken, and the first is refused as its bytes come
        first, release = os.urandom(600_000), asyncio.Event()

        async def slow_body() -> AsyncIterator[bytes]:
            yield first[:1000]
            await release.wait()
            yield first[1000:]

        first_id = piece_id()
        first_limit = BRIDGE.limit(small.node_id, first_id, Action.PUT)
        headers = {**put_headers(first_limit, first), "Content-Length": str(len(first))}
        upload = asyncio.create_task(
            session.put(piece_url(small, first_id), data=slow_body(), headers=headers)
        )
        second = os.urandom(600_000)
        await wait_for_reservation(session, small)
        second_id = piece_id()
        second_limit = BRIDGE.limit(small.node_id, second_id, Action.PUT)
        async with session.put(
            piece_url(small, second_id), data=second, headers=put_headers(second_limit, second)
        ) as response:
            assert response.status == 201
        release.set()
        async with await upload as response:
            assert response.status == 507
            assert await error_code(response) == "insufficient-storage"
        # and once stored, the space stays used
        async with session.put(
            piece_url(small, first_id), data=first, headers=put_headers(first_limit, first)
        ) as response:
            assert response.status == 507


async def wait_for_reservation(session: aiohttp.ClientSession, farmer: FarmerProcess) -> None:
    """Until the farmer has accepted an upload and reserved its space (free drops)."""
    async with asyncio.timeout(30):
        while True:  # the farmer is another process: there is no event to wait on
            async with session.get(f"{farmer.url}/v1/status") as response:
                info = await response.json()
            if info["used"] + info["free"] < info["allocated"]:
                return
            await asyncio.sleep(0.01)
