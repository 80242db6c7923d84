"""Crash safety: kill -9 at any moment leaves no partial piece, and restarts keep everything
acknowledged and the counters exact."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from metadisk.core.messages import Action
from metadisk.devnet.farmer import FarmerProcess, farmer_process
from metadisk.farmer.pieces.store import trailer_size
from tests.farmer.helpers import Bridge, get, order_header, piece_id, put, put_headers


async def status(session: aiohttp.ClientSession, farmer: FarmerProcess) -> dict[str, Any]:
    async with session.get(f"{farmer.url}/v1/status") as response:
        assert response.status == 200
        result: dict[str, Any] = await response.json()
        return result


def temp_files(farmer: FarmerProcess) -> list[Path]:
    return list((farmer.data_dir / "tmp").iterdir())


async def wait_for_temp_bytes(farmer: FarmerProcess, size: int) -> None:
    """Until an upload's temp file holds `size` bytes (the farmer is mid-write)."""
    async with asyncio.timeout(30):
        # the farmer is another process: there is no event to wait on
        while not any(path.stat().st_size >= size for path in temp_files(farmer)):  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_kill_during_put(
    tmp_path: Path, bridge: Bridge, session: aiohttp.ClientSession
) -> None:
    async with farmer_process(tmp_path / "data", [bridge.trusted], checkin_interval=3600) as farmer:
        before = {}
        for size in (1, 70_000, 1 << 20):
            data = os.urandom(size)
            pid, _ = await put(session, farmer.url, bridge, farmer.node_id, data)
            before[pid] = data

        data, pid, stall = os.urandom(4 << 20), piece_id(), asyncio.Event()

        async def stalled() -> AsyncIterator[bytes]:
            yield data[: 3 << 20]
            await stall.wait()  # never set: the farmer dies first
            yield data[3 << 20 :]

        limit = bridge.limit(farmer.node_id, pid, Action.PUT)
        headers = {**put_headers(limit, data), "Content-Length": str(len(data))}
        upload = asyncio.create_task(
            session.put(f"{farmer.url}/v1/pieces/{pid.hex()}", data=stalled(), headers=headers)
        )
        await wait_for_temp_bytes(farmer, 1 << 20)
        await farmer.kill()
        with pytest.raises(aiohttp.ClientError):
            async with await upload:
                pass
        assert temp_files(farmer)  # the partial upload is on disk...

        await farmer.start()
        assert not temp_files(farmer)  # ...and gone after the restart
        status_code, _, _ = await get(session, farmer.url, bridge, farmer.node_id, pid)
        assert status_code == 404
        for stored, expected in before.items():
            code, body, _ = await get(session, farmer.url, bridge, farmer.node_id, stored)
            assert (code, body) == (200, expected)
        info = await status(session, farmer)
        assert info["pieces"] == len(before)
        assert info["used"] == sum(len(d) + trailer_size(len(d)) for d in before.values())
        # the id the crash interrupted can be stored afresh
        await put(session, farmer.url, bridge, farmer.node_id, data, pid)


async def test_kill_under_load_keeps_every_acknowledged_piece(
    tmp_path: Path, bridge: Bridge, session: aiohttp.ClientSession
) -> None:
    """Kill at an arbitrary moment of many concurrent uploads and deletes, then check that every
    acknowledged piece is served intact, nothing else is visible but whole pieces, and the
    counters match what is on disk."""
    async with farmer_process(tmp_path / "data", [bridge.trusted], checkin_interval=3600) as farmer:
        attempted: dict[bytes, bytes] = {}
        acknowledged: dict[bytes, bytes] = {}
        deleting: set[bytes] = set()  # a delete was sent: the piece may or may not be there
        deleted: set[bytes] = set()
        enough = asyncio.Event()

        async def uploader(worker: int) -> None:
            for n in range(1000):
                data = os.urandom(1000 + 7919 * ((worker * 31 + n) % 60))
                pid = piece_id()
                attempted[pid] = data
                await put(session, farmer.url, bridge, farmer.node_id, data, pid)
                acknowledged[pid] = data
                if n % 5 == 4:  # deletes crash mid-way too
                    victim = next(p for p in acknowledged if p not in deleting)
                    deleting.add(victim)
                    limit = bridge.limit(farmer.node_id, victim, Action.DELETE)
                    async with session.delete(
                        f"{farmer.url}/v1/pieces/{victim.hex()}", headers=order_header(limit)
                    ) as response:
                        if response.status == 204:
                            deleted.add(victim)
                if len(acknowledged) >= 60:
                    enough.set()

        workers = [asyncio.create_task(uploader(w)) for w in range(12)]
        await enough.wait()
        await farmer.kill()
        results = await asyncio.gather(*workers, return_exceptions=True)
        assert all(isinstance(r, aiohttp.ClientError) for r in results), results

        await farmer.start()
        assert not temp_files(farmer)
        visible = 0
        expected_used = 0
        for pid, data in attempted.items():
            code, body, _ = await get(session, farmer.url, bridge, farmer.node_id, pid)
            if pid in acknowledged and pid not in deleting:
                assert (code, body) == (200, data)
            if pid in deleted:
                assert code == 404
            assert code in (200, 404)
            if code == 200:
                assert body == data  # whole and correct, never partial
                visible += 1
                expected_used += len(data) + trailer_size(len(data))
        trash = farmer.data_dir / "trash" / bridge.identity.node_id.hex()
        trash_bytes = sum(p.stat().st_size for p in trash.iterdir()) if trash.exists() else 0
        info = await status(session, farmer)
        assert info["pieces"] == visible
        assert info["used"] == expected_used
        assert info["trash"] == trash_bytes


async def test_restart_keeps_usage(
    tmp_path: Path, bridge: Bridge, session: aiohttp.ClientSession
) -> None:
    async with farmer_process(tmp_path / "data", [bridge.trusted], checkin_interval=3600) as farmer:
        data = os.urandom(300_000)
        pid, _ = await put(session, farmer.url, bridge, farmer.node_id, data)
        await get(session, farmer.url, bridge, farmer.node_id, pid)
        await get(session, farmer.url, bridge, farmer.node_id, pid, headers={"Range": "bytes=-10"})
        before = await status(session, farmer)
        usage = before["bridges"][bridge.identity.node_id.hex()]
        assert usage["bandwidth_in"] == 300_000
        assert usage["bandwidth_out"] == 300_010
        assert usage["pieces"] == 1

        old_url = farmer.url
        await farmer.stop()
        await farmer.start()
        assert farmer.url == old_url  # same port after a restart
        after = await status(session, farmer)
        for key in ("used", "trash", "free", "pieces", "bridges"):
            assert after[key] == before[key], key
        code, body, _ = await get(session, farmer.url, bridge, farmer.node_id, pid)
        assert (code, body) == (200, data)
