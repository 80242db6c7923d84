"""A farmer's graceful exit as its operator drives it: the loopback route (`POST`/`GET /v1/exit`)
and `metadisk farmer exit`, against a real bridge process, a bridge that is down, and a bridge
that disqualified the node. Moving pieces is tests/e2e/test_exit.py's."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from metadisk.core.identity import Identity
from metadisk.core.messages import Action
from metadisk.devnet.bridge import BridgeProcess
from metadisk.devnet.farmer import FarmerProcess, farmer_process
from metadisk.farmer.config import TrustedBridge
from metadisk.farmer.errors import NotFound
from metadisk.farmer.exit.service import remove_bridge
from metadisk.farmer.peer import running
from metadisk.wire.dataplane.contract import EXIT, BridgeExit, ExitReport
from tests.farmer.helpers import Bridge, Clock, make_config, order_header, put
from tests.farmer.real_bridge import trusted, wait_online
from tests.farmer.test_cli import assert_one_line_error, cli


@pytest.fixture(scope="module")
def real_bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    process = BridgeProcess(tmp_path_factory.mktemp("bridge"))
    process.start()
    yield process
    process.stop()


@pytest_asyncio.fixture
async def farmer(
    tmp_path: Path, real_bridge: BridgeProcess
) -> AsyncIterator[tuple[FarmerProcess, TrustedBridge, TrustedBridge]]:
    """A farmer checked in with a real bridge, and trusting a second one that is down."""
    bridges = [trusted(real_bridge), Bridge.new().trusted]
    async with farmer_process(
        tmp_path / "farmer", bridges, allocated=64 << 20, checkin_interval=3600
    ) as process:
        await wait_online(real_bridge.url, process.node_id)
        yield process, bridges[0], bridges[1]


async def call(farmer: FarmerProcess, body: bytes | None = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            "POST" if body is not None else "GET", farmer.url + EXIT, data=body
        ) as response,
    ):
        return response.status, await response.json()


async def exit_state(farmer: FarmerProcess, bridge: TrustedBridge) -> BridgeExit | None:
    status, body = await call(farmer)
    assert status == 200, body
    return ExitReport.model_validate(body).bridges.get(bridge.node_id.hex())


async def wait_state(
    farmer: FarmerProcess, bridge: TrustedBridge, done: Any, within: float = 30.0
) -> BridgeExit:
    deadline = time.monotonic() + within
    while True:
        state = await exit_state(farmer, bridge)
        if state is not None and done(state):
            return state
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.1)


async def test_the_exit_route(
    farmer: tuple[FarmerProcess, TrustedBridge, TrustedBridge],
) -> None:
    process, real, down = farmer
    assert await call(process) == (200, {"bridges": {}})
    status, body = await call(process, json.dumps({"bridge": "ab" * 32}).encode())
    assert (status, body["error"]["code"]) == (404, "unknown-bridge")
    for bad in (b"not json", b'{"bridge": "xyz"}', b'{"bridges": null}'):
        status, body = await call(process, bad)
        assert (status, body["error"]["code"]) == (400, "malformed-request"), bad

    # A bridge that is down: the exit waits for it, saying why.
    status, body = await call(process, json.dumps({"bridge": down.node_id.hex()}).encode())
    assert status == 202 and body["bridges"][down.node_id.hex()]["state"] == "exiting"
    waiting = await wait_state(process, down, lambda s: s.error is not None)
    assert waiting.state == "exiting" and waiting.error.endswith("[unreachable]")

    # The real bridge: the node holds nothing there, so its exit ends at once.
    status, body = await call(process, json.dumps({"bridge": real.node_id.hex()}).encode())
    assert status == 202
    ended = await wait_state(process, real, lambda s: s.state != "exiting")
    assert (ended.state, ended.transferred, ended.failed, ended.remaining) == ("exited", 0, 0, 0)
    # Asking again changes nothing.
    status, body = await call(process, b"")
    assert status == 202 and body["bridges"][real.node_id.hex()]["state"] == "exited"

    # Restarted, it remembers: one exit done, the other resumed.
    await process.stop()
    await process.start()
    assert (await exit_state(process, real)) == ended
    resumed = await wait_state(process, down, lambda s: s.error is not None)
    assert resumed.state == "exiting"
    saved = json.loads((process.data_dir / "exit.json").read_text())
    assert set(saved["bridges"]) == {real.node_id.hex(), down.node_id.hex()}


async def test_a_disqualified_node_cannot_exit(
    farmer: tuple[FarmerProcess, TrustedBridge, TrustedBridge], real_bridge: BridgeProcess
) -> None:
    process, real, _ = farmer
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "metadisk.cli.bridge", "disqualify", process.node_id,
         "--config", str(real_bridge.config_path)],
        capture_output=True, check=True,
    )  # fmt: skip
    result = await cli(
        "exit", "--data-dir", str(process.data_dir), "--bridge", real.node_id.hex(), "--yes"
    )
    assert_one_line_error(result, f"the exit from {real.node_id.hex()[:16]} failed: ")
    assert result[2].rstrip().endswith("[exit-refused]"), result
    state = await exit_state(process, real)
    assert state is not None and state.state == "failed"


async def test_the_exit_command_refuses_what_it_cannot_do(
    farmer: tuple[FarmerProcess, TrustedBridge, TrustedBridge], tmp_path: Path
) -> None:
    process, _, _ = farmer
    data_dir = str(process.data_dir)
    # Irreversible: without --yes it asks, and without an answer does nothing.
    assert_one_line_error(await cli("exit", "--data-dir", data_dir), "not confirmed")
    assert await call(process) == (200, {"bridges": {}})
    assert_one_line_error(
        await cli("exit", "--data-dir", data_dir, "--bridge", "ab" * 32, "--yes"),
        "not a trusted bridge of this node",
    )
    assert_one_line_error(await cli("exit", "--yes"), "missing --data-dir")
    assert_one_line_error(await cli("exit", "--data-dir", str(tmp_path), "--yes"), "no farmer.toml")
    await process.stop()
    assert_one_line_error(
        await cli("exit", "--data-dir", data_dir, "--yes"), "no running node found in"
    )


async def test_a_bridge_left_leaves_nothing_on_the_disk(tmp_path: Path, clock: Clock) -> None:
    """`remove_bridge`: every piece of the bridge goes, in the trash too; the other
    bridge's stay, and the counters follow."""
    left, kept = Bridge.new(), Bridge.new()
    config = dataclasses.replace(
        make_config(tmp_path, left.trusted), bridges=(left.trusted, kept.trusted)
    )
    async with (
        running(config, Identity.generate(), clock=clock) as peer,
        aiohttp.ClientSession() as session,
    ):
        node = peer.identity.node_id.hex()
        data = os.urandom(100_000)
        first, _ = await put(session, peer.address, left, node, data, now=clock.now)
        second, _ = await put(session, peer.address, left, node, os.urandom(5000), now=clock.now)
        other, _ = await put(session, peer.address, kept, node, os.urandom(7000), now=clock.now)
        limit = left.limit(node, second, Action.DELETE, now=clock.now)
        async with session.delete(
            f"{peer.address}/v1/pieces/{second.hex()}", headers=order_header(limit)
        ) as response:
            assert response.status == 204  # in the trash now
        assert await peer.pieces.read_piece(left.identity.node_id.raw, first) == data
        with pytest.raises(NotFound):
            await peer.pieces.read_piece(left.identity.node_id.raw, second)

        assert await remove_bridge(peer.pieces, left.identity.node_id.raw) == 2
        name = left.identity.node_id.hex()
        assert [p for p in (config.data_dir / "pieces" / name).rglob("*") if p.is_file()] == []
        assert [p for p in (config.data_dir / "trash" / name).rglob("*") if p.is_file()] == []
        usage = peer.usage.snapshot()
        assert (usage[name]["stored"], usage[name]["pieces"], usage[name]["trash"]) == (0, 0, 0)
        assert usage[kept.identity.node_id.hex()]["pieces"] == 1
        assert peer.usage.used == usage[kept.identity.node_id.hex()]["stored"]
        assert len(await peer.pieces.read_piece(kept.identity.node_id.raw, other)) == 7000
