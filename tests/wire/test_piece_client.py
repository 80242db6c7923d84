"""`PieceClient` against a real farmer process: every route of the data plane and how each kind
of failure is reported."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import pytest_asyncio

from metadisk.core.audit import judge
from metadisk.core.bloom import BloomFilter
from metadisk.core.identity import Identity, NodeId
from metadisk.core.merkle import LEAF_SIZE, digest_piece
from metadisk.core.messages import Action, OrderLimit, RetainRequest
from metadisk.devnet.farmer import FarmerProcess, farmer_process
from metadisk.farmer.config import TrustedBridge
from metadisk.wire.dataplane import PieceClient, PieceClientConfig, PieceTransferError

on_module_loop = pytest.mark.asyncio(loop_scope="module")
BRIDGE = Identity.generate()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def farmer(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FarmerProcess]:
    trusted = TrustedBridge(BRIDGE.node_id, BRIDGE.public_key, "http://127.0.0.1:9")
    async with farmer_process(
        tmp_path_factory.mktemp("farmer") / "data", [trusted], allocated=64 << 20
    ) as process:
        yield process


@pytest_asyncio.fixture(loop_scope="module")
async def pieces() -> AsyncIterator[PieceClient]:
    client = PieceClient()
    yield client
    await client.aclose()


def limit(
    farmer: FarmerProcess, piece_id: bytes, action: Action, size: int = 1 << 20
) -> OrderLimit:
    now = int(time.time())
    return OrderLimit(
        os.urandom(16), BRIDGE.node_id, farmer.identity.node_id, piece_id, action, size,
        now, now + 600,
    ).signed_by(BRIDGE)  # fmt: skip


@on_module_loop
async def test_put_audit_get_delete(farmer: FarmerProcess, pieces: PieceClient) -> None:
    piece = os.urandom(3 * LEAF_SIZE + 123)
    piece_id = os.urandom(32)
    digest = digest_piece(piece).piece_hash
    receipt = await pieces.put(farmer.url, limit(farmer, piece_id, Action.PUT), digest, piece)
    receipt.verify_signature(farmer.identity.public_key)
    assert (receipt.piece_id, receipt.size, receipt.piece_hash) == (piece_id, len(piece), digest)

    audit_limit = limit(farmer, piece_id, Action.AUDIT, 0)
    audited = await pieces.audit(farmer.url, audit_limit, 2)
    assert audited.leaf == piece[2 * LEAF_SIZE : 3 * LEAF_SIZE]
    assert audited.response.leaf_index == 2
    key = farmer.identity.public_key
    assert judge(audit_limit, receipt, key, 2, audited.leaf, audited.response).passed

    into = memoryview(bytearray(100))
    await pieces.get(farmer.url, limit(farmer, piece_id, Action.GET), into, offset=7, ranged=True)
    assert bytes(into) == piece[7:107]

    assert await pieces.delete(farmer.url, limit(farmer, piece_id, Action.DELETE, 0)) is True
    # Gone: a second delete says so without failing, a read fails with the farmer's code.
    assert await pieces.delete(farmer.url, limit(farmer, piece_id, Action.DELETE, 0)) is False
    with pytest.raises(PieceTransferError) as missing:
        await pieces.get(farmer.url, limit(farmer, piece_id, Action.GET), memoryview(bytearray(1)))
    assert (missing.value.code, missing.value.status) == ("not-found", 404)


@on_module_loop
async def test_node_info(farmer: FarmerProcess, pieces: PieceClient) -> None:
    card = await pieces.node_info(farmer.url)
    assert card.node_id == farmer.identity.node_id
    assert card.public_key == farmer.identity.public_key
    assert card.address == farmer.url


@on_module_loop
async def test_refusals_keep_the_farmers_codes(farmer: FarmerProcess, pieces: PieceClient) -> None:
    piece_id = os.urandom(32)
    wrong_action = limit(farmer, piece_id, Action.GET)
    with pytest.raises(PieceTransferError) as refused:
        await pieces.put(farmer.url, wrong_action, digest_piece(b"x").piece_hash, b"x")
    assert (refused.value.code, refused.value.status) == ("wrong-action", 403)
    with pytest.raises(PieceTransferError) as bad_leaf:
        await pieces.audit(farmer.url, limit(farmer, piece_id, Action.AUDIT, 0), 0)
    assert bad_leaf.value.status == 404


@contextlib.asynccontextmanager
async def raw_server(answer: bytes | None, *, hold_after: bool = False) -> AsyncIterator[str]:
    """A TCP server that reads a request and writes `answer` (None: never answers); with
    `hold_after`, it then keeps the connection open, silent."""
    hold = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            if answer is None:
                await hold.wait()
            writer.write(answer or b"")
            await writer.drain()
            if hold_after:
                await hold.wait()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        hold.set()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("answer", "code", "status"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!", "bad-response", None),
        (b"HTTP/1.1 502 Bad\r\nContent-Length: 4\r\n\r\nnope", "bad-response", 502),
        (b"HTTP/1.1 302 Found\r\nLocation: http://10.0.0.1/\r\nContent-Length: 0\r\n\r\n",
         "bad-response", 302),
        (b"SSH-2.0-OpenSSH_9.6\r\n", "bad-response", None),
        (b"", "connection-failed", None),
    ],
)  # fmt: skip
async def test_what_an_answer_that_is_not_the_contract_becomes(
    answer: bytes, code: str, status: int | None
) -> None:
    pieces = PieceClient()
    try:
        async with raw_server(answer) as url:
            with pytest.raises(PieceTransferError) as failed:
                await pieces.node_info(url)
    finally:
        await pieces.aclose()
    assert (failed.value.code, failed.value.status) == (code, status)


async def test_unreachable_unresolvable_and_silent_farmers() -> None:
    pieces = PieceClient()
    try:
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
        with pytest.raises(PieceTransferError) as refused:
            await pieces.node_info(closed)
        assert refused.value.code == "connection-failed"
        with pytest.raises(PieceTransferError) as unknown:
            await pieces.node_info("http://no-such-host.invalid:7777")
        assert unknown.value.code == "unresolvable"
        async with raw_server(None) as silent:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await pieces.node_info(silent)
    finally:
        await pieces.aclose()


QUICK = PieceClientConfig(
    connect_timeout=1.0, first_byte_timeout=0.5, stall_timeout=0.5, answer_timeout=0.5
)
REFUSAL = b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"


@contextlib.asynccontextmanager
async def reading_server(
    *, stop_after: int | None, pace: float = 0.0, answer: bytes = REFUSAL
) -> AsyncIterator[str]:
    """A TCP server that reads a request's headers, then its body `pace` seconds per 64 KiB,
    and answers `answer`. With `stop_after`, it stops reading after that many body bytes and
    never answers: a farmer hung mid-upload. Its socket buffers are small, so that a sender
    notices a reader that stopped after a few hundred KiB, not after megabytes."""
    hold = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            limit = length if stop_after is None else min(length, stop_after)
            done = 0
            while done < limit:
                done += len(await reader.read(min(64 * 1024, limit - done)))
                if pace:
                    await asyncio.sleep(pace)
            if stop_after is not None:
                await hold.wait()
            writer.write(answer)
            await writer.drain()
        writer.close()

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    listener.bind(("127.0.0.1", 0))
    server = await asyncio.start_server(handle, sock=listener, limit=64 * 1024)
    port = listener.getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        hold.set()
        server.close()
        await server.wait_closed()


def fake_limit(action: Action) -> OrderLimit:
    now = int(time.time())
    node = Identity.generate().node_id
    return OrderLimit(
        os.urandom(16), BRIDGE.node_id, node, os.urandom(32), action, 64 << 20, now, now + 600
    ).signed_by(BRIDGE)


async def test_a_put_whose_farmer_stops_reading_is_stalled_not_hung() -> None:
    """aiohttp's own read timer starts only after the body is written: without the watchdog
    this PUT waited forever on a farmer that stopped reading."""
    piece = os.urandom(32 << 20)  # far more than the socket buffers hold
    pieces = PieceClient(QUICK)
    try:
        async with reading_server(stop_after=256 * 1024) as url:
            with pytest.raises(PieceTransferError) as caught:
                async with asyncio.timeout(30):  # only to catch a hang; it takes about 0.5 s
                    await pieces.put(url, fake_limit(Action.PUT), bytes(32), piece)
    finally:
        await pieces.aclose()
    assert caught.value.code == "stalled"


async def test_a_put_sent_whole_but_never_answered_times_out() -> None:
    pieces = PieceClient(QUICK)
    try:
        async with reading_server(stop_after=1 << 30) as url:  # reads it all, never answers
            with pytest.raises(PieceTransferError) as caught:
                async with asyncio.timeout(30):
                    await pieces.put(url, fake_limit(Action.PUT), bytes(32), os.urandom(1000))
    finally:
        await pieces.aclose()
    assert caught.value.code == "timeout"


async def test_a_slow_but_steady_farmer_is_not_cut_off() -> None:
    """Progress, not speed, is what counts: a farmer that reads the piece in small steps for
    longer than the stall timeout gets it all (here it then answers 500)."""
    config = PieceClientConfig(stall_timeout=1.0, answer_timeout=1.0)
    pieces = PieceClient(config)
    try:
        async with reading_server(stop_after=None, pace=0.01) as url:
            with pytest.raises(PieceTransferError) as caught:
                async with asyncio.timeout(60):
                    await pieces.put(url, fake_limit(Action.PUT), bytes(32), os.urandom(8 << 20))
    finally:
        await pieces.aclose()
    assert (caught.value.code, caught.value.status) == ("bad-response", 500)


async def test_an_answer_that_stops_midway_is_stalled() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + bytes(5000)
    pieces = PieceClient(QUICK)
    try:
        async with raw_server(head, hold_after=True) as url:
            with pytest.raises(PieceTransferError) as caught:
                async with asyncio.timeout(30):
                    await pieces.get(url, fake_limit(Action.GET), memoryview(bytearray(100000)))
        async with raw_server(None) as silent:
            with pytest.raises(PieceTransferError) as silence:
                async with asyncio.timeout(30):
                    await pieces.get(silent, fake_limit(Action.GET), memoryview(bytearray(10)))
    finally:
        await pieces.aclose()
    assert caught.value.code == "stalled"
    assert silence.value.code == "timeout"


@on_module_loop
async def test_a_hung_farmer_process_costs_a_timeout_not_forever(farmer: FarmerProcess) -> None:
    """The real thing: a farmer stopped with SIGSTOP (its kernel still accepts connections)."""
    piece = os.urandom(8 << 20)
    digest = digest_piece(piece).piece_hash
    piece_id = os.urandom(32)
    pieces = PieceClient(QUICK)
    try:
        put = limit(farmer, piece_id, Action.PUT, len(piece))
        await pieces.put(farmer.url, put, digest, piece)
        os.kill(farmer.pid, signal.SIGSTOP)
        try:
            async with asyncio.timeout(60):  # only to catch a hang
                with pytest.raises(PieceTransferError) as upload:
                    other = limit(farmer, os.urandom(32), Action.PUT, len(piece))
                    await pieces.put(farmer.url, other, digest, piece)
                with pytest.raises(PieceTransferError) as download:
                    into = memoryview(bytearray(len(piece)))
                    await pieces.get(farmer.url, limit(farmer, piece_id, Action.GET), into)
        finally:
            os.kill(farmer.pid, signal.SIGCONT)
    finally:
        await pieces.aclose()
    assert upload.value.code in ("stalled", "timeout")
    assert download.value.code == "timeout"


def retain_request(node: NodeId, issued_at: int, *, bridge: Identity = BRIDGE) -> RetainRequest:
    keep = BloomFilter.sized(1, 0.01, seed=os.urandom(32))
    keep.add(os.urandom(32))
    return RetainRequest(bridge.node_id, node, issued_at - 60, issued_at, keep.encode()).signed_by(
        bridge
    )


@on_module_loop
async def test_retain(farmer: FarmerProcess, pieces: PieceClient) -> None:
    now = int(time.time())
    assert await pieces.retain(farmer.url, retain_request(farmer.identity.node_id, now)) is None
    with pytest.raises(PieceTransferError) as stale:
        await pieces.retain(farmer.url, retain_request(farmer.identity.node_id, now - 1))
    assert (stale.value.code, stale.value.status) == ("stale-request", 409)
    stranger = Identity.generate()
    with pytest.raises(PieceTransferError) as untrusted:
        request = retain_request(farmer.identity.node_id, now, bridge=stranger)
        await pieces.retain(farmer.url, request)
    assert (untrusted.value.code, untrusted.value.status) == ("untrusted-bridge", 403)


async def test_a_retain_request_is_watched_like_a_put() -> None:
    """Tens of MiB go out in chunks: a farmer that stops reading them is stalled, not hung; an
    answer that is not the contract's is a bad response."""
    node = Identity.generate().node_id
    big = replace(retain_request(node, int(time.time())), filter=bytes(32 << 20))
    pieces = PieceClient(QUICK)
    try:
        async with reading_server(stop_after=256 * 1024) as url:
            with pytest.raises(PieceTransferError) as caught:
                async with asyncio.timeout(30):
                    await pieces.retain(url, big)
        garbled = b"HTTP/1.1 202 Accepted\r\nContent-Length: 3\r\n\r\nnot"
        async with reading_server(stop_after=None, answer=garbled) as url:
            with pytest.raises(PieceTransferError) as bad:
                await pieces.retain(url, retain_request(node, int(time.time())))
    finally:
        await pieces.aclose()
    assert caught.value.code == "stalled"
    assert bad.value.code == "bad-response"
