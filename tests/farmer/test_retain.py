"""Garbage collection by retain requests (``POST /v1/retain``), against a real peer: exactly the
pieces stored before ``created_before`` and not in the filter go to the trash, the trash is
purged after its grace, and every refusal has its code."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp

from metadisk.core.identity import Identity
from metadisk.core.messages import CLOCK_SKEW, Action, RetainRequest
from metadisk.farmer.config import format_size
from metadisk.farmer.peer import Peer
from metadisk.farmer.pieces.store import trailer_size
from metadisk.wire.dataplane.contract import MAX_RETAIN_BODY
from tests.farmer.helpers import Bridge, Clock, error_code, get, order_header, put


async def send(
    session: aiohttp.ClientSession, peer: Peer, body: bytes | RetainRequest
) -> tuple[int, dict[str, object]]:
    data = body.encode() if isinstance(body, RetainRequest) else body
    async with session.post(
        f"{peer.address}/v1/retain",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    ) as response:
        return response.status, await response.json()


async def store(
    session: aiohttp.ClientSession, peer: Peer, bridge: Bridge, clock: Clock, count: int
) -> dict[bytes, bytes]:
    node = peer.identity.node_id.hex()
    pieces = {}
    for _ in range(count):
        data = os.urandom(20_000)
        pid, receipt = await put(session, peer.address, bridge, node, data, now=clock.now)
        assert receipt.stored_at == int(clock.now)
        pieces[pid] = data
    return pieces


def trashed(peer: Peer, bridge: Bridge) -> set[bytes]:
    trash = peer.config.data_dir / "trash" / bridge.identity.node_id.hex()
    if not trash.exists():  # made by the first piece trashed
        return set()
    return {bytes.fromhex(path.name.split(".")[0]) for path in trash.iterdir()}


async def status(session: aiohttp.ClientSession, peer: Peer) -> dict[str, object]:
    async with session.get(f"{peer.address}/v1/status") as response:
        assert response.status == 200
        report: dict[str, object] = await response.json()
        return report


async def test_collects_exactly_the_old_unlisted_pieces(
    peer: Peer, bridge: Bridge, clock: Clock, session: aiohttp.ClientSession
) -> None:
    node = peer.identity.node_id.hex()
    old_kept = await store(session, peer, bridge, clock, 3)
    old_unlisted = await store(session, peer, bridge, clock, 3)
    clock.now += 100
    created_before = int(clock.now)
    # stored at created_before exactly: not before it, so never collected
    new_kept = await store(session, peer, bridge, clock, 2)
    new_unlisted = await store(session, peer, bridge, clock, 2)
    clock.now += 10
    request = bridge.retain(
        node, [*old_kept, *new_kept], created_before=created_before, issued_at=clock.now
    )
    keep = request.bloom_filter()
    assert not any(pid in keep for pid in [*old_unlisted, *new_unlisted])  # rate 1e-6

    code, answer = await send(session, peer, request)
    assert (code, answer) == (202, {"created_before": created_before, "queued": True})
    await peer.retain_chore.trigger_and_wait()

    assert trashed(peer, bridge) == set(old_unlisted)
    for pid in old_unlisted:
        code, _, _ = await get(session, peer.address, bridge, node, pid, now=clock.now)
        assert code == 404
    for pid, data in {**old_kept, **new_kept, **new_unlisted}.items():
        code, body, _ = await get(session, peer.address, bridge, node, pid, now=clock.now)
        assert (code, body) == (200, data)

    size = peer.store.disk_size(
        peer.store.piece_rel(bridge.identity.node_id.raw, next(iter(old_kept)))
    )
    report = await status(session, peer)
    assert (report["used"], report["trash"], report["pieces"]) == (7 * size, 3 * size, 7)
    assert report["free"] == peer.config.allocated - 7 * size  # the trash counts as free
    usage = report["bridges"][bridge.identity.node_id.hex()]  # type: ignore[index]
    assert usage["last_collection_at"] == int(clock.now)
    assert (usage["last_checked"], usage["last_collected"], usage["trash"]) == (10, 3, 3 * size)
    async with session.get(f"{peer.address}/metrics") as response:
        metrics = await response.text()
    assert 'metadisk_farmer_pieces_deleted_total{how="collected"} 3.0' in metrics
    assert f'metadisk_farmer_space_bytes{{kind="trash"}} {float(3 * size)}' in metrics

    # The trash keeps them for the grace period, then they are gone for good.
    clock.now += 3599
    await peer.trash_chore.trigger_and_wait()
    assert trashed(peer, bridge) == set(old_unlisted)
    clock.now += 2
    await peer.trash_chore.trigger_and_wait()
    assert trashed(peer, bridge) == set()
    report = await status(session, peer)
    assert (report["used"], report["trash"], report["pieces"]) == (7 * size, 0, 7)


async def test_runs_in_the_background_on_arrival(
    peer: Peer, bridge: Bridge, clock: Clock, session: aiohttp.ClientSession
) -> None:
    """Chores are paused here: only the request's own trigger can run the collection."""
    node = peer.identity.node_id.hex()
    unlisted = await store(session, peer, bridge, clock, 2)
    clock.now += 1
    request = bridge.retain(node, [], created_before=clock.now, issued_at=clock.now)
    code, _ = await send(session, peer, request)
    assert code == 202
    async with asyncio.timeout(10):
        # nothing to wait on: the chore runs by itself in the background
        while peer.usage.last_collection(bridge.identity.node_id.raw) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    assert trashed(peer, bridge) == set(unlisted)
    # The same request again is taken but has nothing left to do; an older one is refused.
    assert await send(session, peer, request) == (
        202,
        {"created_before": request.created_before, "queued": False},
    )
    older = bridge.retain(node, [], created_before=clock.now - 1, issued_at=clock.now - 1)
    code, body = await send(session, peer, older)
    assert (code, body["error"]["code"]) == (409, "stale-request")  # type: ignore[index]


async def test_the_chore_route_runs_it_now(
    peer: Peer, bridge: Bridge, clock: Clock, session: aiohttp.ClientSession
) -> None:
    node = peer.identity.node_id.hex()
    peer.retain.attach(None)  # type: ignore[arg-type]  # no trigger: only the route runs it
    unlisted = await store(session, peer, bridge, clock, 1)
    clock.now += 1
    request = bridge.retain(node, [], created_before=clock.now, issued_at=clock.now)
    assert (await send(session, peer, request))[0] == 202
    assert peer.retain.queued == 1
    async with session.post(f"{peer.address}/v1/chores/retain") as response:
        assert response.status == 200
        assert await response.json() == {"chore": "retain", "done": True}
    assert peer.retain.queued == 0
    assert trashed(peer, bridge) == set(unlisted)


async def test_a_newer_request_replaces_a_queued_one(
    peer: Peer, bridge: Bridge, clock: Clock, session: aiohttp.ClientSession
) -> None:
    node = peer.identity.node_id.hex()
    peer.retain.attach(None)  # type: ignore[arg-type]
    pieces = await store(session, peer, bridge, clock, 2)
    first, second = list(pieces)
    clock.now += 1
    keep_first = bridge.retain(node, [first], created_before=clock.now, issued_at=clock.now)
    assert (await send(session, peer, keep_first))[0] == 202
    clock.now += 1
    keep_second = bridge.retain(node, [second], created_before=clock.now, issued_at=clock.now)
    assert (await send(session, peer, keep_second))[0] == 202
    assert peer.retain.queued == 1
    await peer.retain_chore.trigger_and_wait()
    assert trashed(peer, bridge) == {first}


async def raw_post(peer: Peer, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """A request written by hand (a Content-Length that the body does not follow)."""
    host, port = peer.address.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        async with asyncio.timeout(10):
            # not until the end: the server lingers, reading the body it was promised
            head_bytes = await reader.readuntil(b"\r\n\r\n")
            lines = head_bytes.decode().split("\r\n")
            length = next(
                int(line.split(":", 1)[1])
                for line in lines
                if line.lower().startswith("content-length:")
            )
            body_bytes = await reader.readexactly(length)
    finally:
        writer.close()
    return int(lines[0].split(" ", 2)[1]), body_bytes


async def test_refusals_each_have_their_code(
    peer: Peer, bridge: Bridge, clock: Clock, session: aiohttp.ClientSession
) -> None:
    node = peer.identity.node_id.hex()
    pieces = await store(session, peer, bridge, clock, 2)
    clock.now += 10
    now = clock.now

    def good(**changes: object) -> RetainRequest:
        request = bridge.retain(node, [], created_before=now, issued_at=now)
        return replace(request, **changes).signed_by(bridge.identity)  # type: ignore[arg-type]

    stranger = Bridge.new()
    cases: list[tuple[bytes | RetainRequest, int, str]] = [
        (b"", 400, "malformed"),
        (b"\x06\x01 not a retain request", 400, "malformed"),
        (good().encode() + b"\x00", 400, "malformed"),
        (good(filter=b"not a filter"), 400, "malformed"),
        (good(created_before=int(now) + 1), 400, "malformed"),
        (stranger.retain(node, [], created_before=now, issued_at=now), 403, "untrusted-bridge"),
        (replace(good(), created_before=int(now) - 5), 403, "bad-signature"),
        (replace(good(), signature=bytes(64)), 403, "bad-signature"),
        (good(node_id=Identity.generate().node_id), 403, "wrong-node"),
        (good(issued_at=int(now) - CLOCK_SKEW - 1, created_before=0), 409, "stale-request"),
        (good(issued_at=int(now) + CLOCK_SKEW + 1), 409, "stale-request"),
    ]
    for body, status, code in cases:
        got, answer = await send(session, peer, body)
        assert (got, answer["error"]["code"]) == (status, code), (body, answer)  # type: ignore[index]
        await peer.retain_chore.trigger_and_wait()
    # Too large: a declared length past the cap is refused before the body is read...
    got, answer = await raw_post(
        peer,
        f"POST /v1/retain HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_RETAIN_BODY + 1}\r\n"
        "Connection: close\r\n\r\n",
    )
    assert got == 413 and b'"too-large"' in answer

    # ...and a body without one as soon as it passes the cap.
    async def endless() -> AsyncIterator[bytes]:
        chunk = bytes(1 << 20)
        for _ in range(MAX_RETAIN_BODY // len(chunk) + 2):
            yield chunk

    try:
        async with session.post(f"{peer.address}/v1/retain", data=endless()) as response:
            assert response.status == 413
            assert await error_code(response) == "too-large"
    except aiohttp.ClientOSError:
        pass  # the farmer may close the connection while the rest is still being sent
    async with session.get(f"{peer.address}/metrics") as response:
        metrics = await response.text()
    assert 'metadisk_farmer_refusals_total{code="too-large",route="/v1/retain"}' in metrics

    assert trashed(peer, bridge) == set()  # nothing refused ever ran
    for pid in pieces:
        code, _, _ = await get(session, peer.address, bridge, node, pid, now=clock.now)
        assert code == 200


async def test_delete_and_collection_keep_the_accounting_exact(
    peer: Peer, bridge: Bridge, clock: Clock, session: aiohttp.ClientSession
) -> None:
    """A piece deleted while it is also unlisted is moved once, and counted once."""
    node = peer.identity.node_id.hex()
    pieces = await store(session, peer, bridge, clock, 3)
    victim = next(iter(pieces))
    limit = bridge.limit(node, victim, Action.DELETE, now=clock.now)
    async with session.delete(
        f"{peer.address}/v1/pieces/{victim.hex()}", headers=order_header(limit)
    ) as response:
        assert response.status == 204
    clock.now += 1
    request = bridge.retain(node, [], created_before=clock.now, issued_at=clock.now)
    assert (await send(session, peer, request))[0] == 202
    await peer.retain_chore.trigger_and_wait()
    assert trashed(peer, bridge) == set(pieces)
    assert peer.usage.pieces == 0 and peer.usage.used == 0
    on_disk = sum(
        path.stat().st_size
        for path in (peer.config.data_dir / "trash" / bridge.identity.node_id.hex()).iterdir()
    )
    assert peer.usage.trash == on_disk
    assert peer.usage.last_collection(bridge.identity.node_id.raw).collected == 2  # type: ignore[union-attr]


async def test_a_real_farmer_process_and_its_status_command(
    tmp_path: Path, bridge: Bridge, session: aiohttp.ClientSession
) -> None:
    """End to end: the `PieceClient` sends the request, a farmer process collects, `metadisk
    farmer status` shows the trash and the collection."""
    from metadisk.devnet.farmer import farmer_process
    from metadisk.wire.dataplane import PieceClient
    from tests.farmer.test_standing import cli

    async with farmer_process(
        tmp_path / "data", [bridge.trusted], allocated=64 << 20, checkin_interval=3600
    ) as farmer:
        old = [
            (await put(session, farmer.url, bridge, farmer.node_id, os.urandom(10_000)))[0]
            for _ in range(4)
        ]
        await asyncio.sleep(1.05 - time.time() % 1)  # the next second: stored_at moves on
        created_before = int(time.time())
        new = (await put(session, farmer.url, bridge, farmer.node_id, os.urandom(10_000)))[0]
        request = bridge.retain(farmer.node_id, old[:2], created_before=created_before)
        client = PieceClient()
        try:
            assert await client.retain(farmer.url, request) is None
        finally:
            await client.aclose()
        async with session.post(f"{farmer.url}/v1/chores/retain") as response:
            assert response.status == 200
        for pid, expected in [
            (old[0], 200),
            (old[1], 200),
            (old[2], 404),
            (old[3], 404),
            (new, 200),
        ]:
            code, _, _ = await get(session, farmer.url, bridge, farmer.node_id, pid)
            assert code == expected

        code, out, err = await cli("status", "--data-dir", str(farmer.data_dir), "--timeout", "2")
        assert code == 0, err
        lines = out.splitlines()
        space = [line for line in lines if line.startswith("space ")]
        assert len(space) == 1 and " in the trash, " in space[0] and "3 pieces" in space[0]
        (collected,) = [line for line in lines if line.startswith("  collected ")]
        assert collected.endswith(": 2 of 5 pieces moved to the trash")
        assert "just now" in collected or " s ago" in collected
        (row,) = [line for line in lines if line.startswith("bridge ")]
        assert f"  trash {format_size(2 * (10_000 + trailer_size(10_000)))}  " in row
