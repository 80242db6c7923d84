"""A farmer's standing at its bridges (`metadisk farmer status`, `metadisk.farmer.standing`),
against real bridge processes, and a stand-in bridge for the answers a real one never gives."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from metadisk.core.encoding import b64decode
from metadisk.core.identity import Identity, NodeId
from metadisk.core.messages import NodeQuery
from metadisk.devnet.bridge import BridgeProcess
from metadisk.devnet.farmer import FarmerProcess, farmer_process
from metadisk.farmer.config import TrustedBridge
from metadisk.farmer.standing import standings
from metadisk.wire.api.nodes import STANDING_PURPOSE
from metadisk.wire.api.routes import NODE_STANDING
from metadisk.wire.errors import error_body
from tests.farmer.helpers import Bridge
from tests.farmer.real_bridge import trusted, wait_online

CLI = [sys.executable, "-m", "metadisk.cli.farmer"]
# Far more proof of work than a test identity has: this bridge refuses the farmer's check-ins.
PICKY = {"nodes": {"difficulty": 30}}


@pytest.fixture(scope="module")
def real_bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    process = BridgeProcess(tmp_path_factory.mktemp("bridge"))
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def picky_bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    process = BridgeProcess(tmp_path_factory.mktemp("picky"), settings=PICKY)
    process.start()
    yield process
    process.stop()


async def cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def block(out: str, bridge: TrustedBridge) -> list[str]:
    """The lines `farmer status` printed about `bridge`: its head line and the indented ones."""
    lines = out.splitlines()
    head = f"standing  {bridge.node_id.hex()[:16]}  {bridge.url}"
    (start,) = [i for i, line in enumerate(lines) if line.startswith(head)]
    found = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        found.append(line)
    return found


@pytest_asyncio.fixture
async def farmer(
    tmp_path: Path, real_bridge: BridgeProcess, picky_bridge: BridgeProcess
) -> AsyncIterator[tuple[FarmerProcess, list[TrustedBridge]]]:
    """A farmer trusting a real bridge (checked in), one that refuses it, and one that is down."""
    bridges = [trusted(real_bridge), trusted(picky_bridge), Bridge.new().trusted]
    async with farmer_process(
        tmp_path / "farmer", bridges, allocated=64 << 20, checkin_interval=3600
    ) as process:
        await wait_online(real_bridge.url, process.node_id)
        yield process, bridges


async def test_status_shows_the_standing_at_each_bridge(
    farmer: tuple[FarmerProcess, list[TrustedBridge]],
) -> None:
    process, (real, picky, down) = farmer
    code, out, err = await cli("status", "--data-dir", str(process.data_dir), "--timeout", "5")
    assert code == 0, err
    assert err == ""
    assert out.startswith(f"node      {process.node_id}  ({process.url}, up ")
    assert f"\ndashboard {process.dashboard_url}  (this machine only)\n" in out

    shown = block(out, real)
    rows = {line[2:15].strip(): line[16:] for line in shown[1:]}
    assert shown[0].endswith(real.url)  # nothing said after the URL: an answer follows
    assert rows["online"] == "yes"
    assert rows["vetted"] == "no (0 audits decided, 0 passed)"
    assert rows["scores"].startswith("audit 1.000  unknown 1.000  online ")
    assert rows["suspended"] == rows["disqualified"] == rows["contained"] == "no"
    assert rows["pieces"] == "0"
    assert "uptime" in rows
    assert rows["last seen"].endswith(" UTC)")
    assert " ago (" in rows["last seen"] or "just now (" in rows["last seen"]

    # The bridge that refused its check-ins does not know it; the one that is down is said so.
    (picky_line,) = block(out, picky)
    assert "does not know this node" in picky_line and picky_line.endswith("[node-not-found]")
    (down_line,) = block(out, down)
    assert "unreachable" in down_line and down_line.endswith("[unreachable]")

    # Stopped, the node still has a standing to show, and the command says it is not running.
    await process.stop()
    code, out, err = await cli("status", "--data-dir", str(process.data_dir), "--timeout", "5")
    assert code == 1
    assert out.startswith(f"node      {process.node_id}  (not running)\n")
    assert len(block(out, real)) > 1
    assert err.startswith("error: no running node found in ") and len(err.splitlines()) == 1


async def test_status_without_a_config_is_one_line(tmp_path: Path) -> None:
    code, out, err = await cli("status", "--data-dir", str(tmp_path))
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"error: no farmer.toml in {tmp_path} (run `metadisk farmer setup`)"
    ]
    code, _, err = await cli("status", "--data-dir", str(tmp_path), "--timeout", "0")
    assert code == 1 and err.splitlines() == ["error: --timeout must be more than 0 seconds"]


async def test_the_library_reads_the_standing_from_a_real_bridge(
    farmer: tuple[FarmerProcess, list[TrustedBridge]],
) -> None:
    process, bridges = farmer
    answers = await standings(process.identity, bridges, per_bridge=5)
    assert [answer.bridge for answer in answers] == bridges  # in the config's order
    real, picky, down = answers
    assert real.code is None and real.standing is not None
    assert real.standing.node_id == process.identity.node_id
    assert real.standing.address == process.url and real.standing.online
    assert (picky.standing, picky.code) == (None, "node-not-found")
    assert (down.standing, down.code) == (None, "unreachable")


# -- what only a stand-in bridge answers -------------------------------------------------------


class StandInBridge:
    """``POST /v1/nodes/standing`` answering what a test sets, and keeping the queries."""

    def __init__(self) -> None:
        self.identity = Identity.generate()
        self.queries: list[NodeQuery] = []
        self.answer: Any = None  # a web.Response, or a number of seconds to hang
        self.url = ""

    async def standing(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.queries.append(NodeQuery.decode(b64decode(body["query"])))
        if isinstance(self.answer, float):
            await asyncio.sleep(self.answer)
        assert isinstance(self.answer, web.StreamResponse)
        return self.answer

    @property
    def trusted(self) -> TrustedBridge:
        return TrustedBridge(self.identity.node_id, self.identity.public_key, self.url)


@pytest_asyncio.fixture
async def stand_in() -> AsyncIterator[StandInBridge]:
    fake = StandInBridge()
    app = web.Application()
    app.router.add_post(NODE_STANDING, fake.standing)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def standing_of(node_id: NodeId) -> dict[str, Any]:
    return {
        "node_id": node_id.hex(), "address": "http://127.0.0.1:1", "online": True,
        "vetted": True, "audit_score": 1.0, "unknown_score": 1.0, "online_score": 1.0,
        "audits": 3, "audits_passed": 3, "suspended": False, "disqualified": False,
        "contained": False, "pieces": 7, "success_rate": 1.0, "latency_ms": 1.0,
        "last_seen": 1, "created_at": 1, "uptime": 1.0,
    }  # fmt: skip


async def test_the_query_is_signed_for_that_bridge_only(stand_in: StandInBridge) -> None:
    farmer = Identity.generate()
    stand_in.answer = web.json_response(standing_of(farmer.node_id))
    before = int(time.time())
    (answer,) = await standings(farmer, [stand_in.trusted])
    assert answer.standing is not None and answer.standing.pieces == 7
    (query,) = stand_in.queries
    query.verify_signature()
    assert query.node_id == farmer.node_id
    assert query.bridge_id == stand_in.identity.node_id
    assert query.purpose == STANDING_PURPOSE
    assert before <= query.timestamp <= time.time()


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        # another node's figures are never shown as this node's
        (lambda: web.json_response(standing_of(Identity.generate().node_id)), "bad-answer"),
        (lambda: web.json_response({"online": True}), "bad-answer"),
        (lambda: web.Response(status=502, text="<html>bad gateway</html>"), "bad-answer"),
        (
            lambda: web.Response(
                status=401, body=error_body("clock-skew", "query timestamp is +900 s")
            ),
            "clock-skew",
        ),
        (lambda: 3.0, "timeout"),
    ],
)
async def test_a_bad_or_slow_bridge_costs_only_its_own_line(
    stand_in: StandInBridge, answer: Any, code: str
) -> None:
    farmer = Identity.generate()
    stand_in.answer = answer()
    started = time.monotonic()
    bad, also = await standings(farmer, [stand_in.trusted, Bridge.new().trusted], per_bridge=1)
    assert time.monotonic() - started < 4
    assert (bad.standing, bad.code) == (None, code)
    assert bad.message and "\n" not in bad.message
    assert also.code == "unreachable"
