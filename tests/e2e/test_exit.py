"""Graceful exit end to end ("Must show"): a farmer leaves with `metadisk farmer exit --yes` (a
real CLI process); every segment it held keeps at least o pieces elsewhere, each one's file on
the node the bridge names, its own disk holds no piece of that bridge any more, every object
downloads byte-identical, and it gets no new pieces. Then a farmer killed (SIGKILL) in the middle
of its exit resumes it after a restart.

A real network: a bridge and 13 farmers (4/6/8/10, as `metadisk up`; 13 so that the second exit
still finds, for each segment, a node holding none of its pieces), one piece moved per exit
round (``[repair] exit_batch = 1``) so that an exit takes several rounds. The verdicts are read
from the bridge's SQLite file (read-only) and the farmers' data dirs.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from metadisk.client import Project
from metadisk.devnet.farmer import FarmerProcess
from metadisk.devnet.network import local_profile
from metadisk.wire.dataplane.contract import CHORE, EXIT, ExitReport
from tests.e2e.harness import (
    SEGMENT,
    SMALL,
    BackgroundNetwork,
    background_network,
    run_cli,
    wait_for,
)

FARMERS = 13
PROFILE = local_profile(10)  # 4/6/8/10: local_profile caps n at 10


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundNetwork]:
    with background_network(
        tmp_path_factory.mktemp("exit"),
        farmers=FARMERS,
        bridge_settings={"repair": {"exit_batch": 1}},
    ) as running:
        assert running.network.redundancy == PROFILE
        yield running


@dataclass(frozen=True)
class Uploaded:
    grant: str
    objects: dict[str, bytes]


@pytest.fixture(scope="module")
def uploaded(network: BackgroundNetwork) -> Uploaded:
    """Objects of mixed sizes: inline (0 B, 3 KB), one segment of small pieces, exactly one
    segment, and several segments with a short last one (1 MiB segments, `SMALL`)."""
    objects = {
        "empty": b"",
        "inline": os.urandom(3000),
        "small": os.urandom(100_000),
        "segment": os.urandom(SEGMENT),
        "two": os.urandom(SEGMENT + 1),
        "three": os.urandom(2 * SEGMENT + SEGMENT // 3),
        "four": os.urandom(3 * SEGMENT + 12345),
    }
    grant = network.tenant().grant
    with Project.open(grant, config=SMALL) as project:
        project.create_bucket("exit")
        for key, content in objects.items():
            project.upload("exit", key, content)
    return Uploaded(grant, objects)


def pieces_by_node(network: BackgroundNetwork) -> dict[bytes, list[sqlite3.Row]]:
    found: dict[bytes, list[sqlite3.Row]] = {}
    with network.bridge_db() as db:
        for row in db.execute("SELECT * FROM pieces"):
            found.setdefault(row["node_id"], []).append(row)
    return found


def node_row(network: BackgroundNetwork, farmer: FarmerProcess) -> sqlite3.Row:
    with network.bridge_db() as db:
        row: sqlite3.Row = db.execute(
            "SELECT * FROM nodes WHERE node_id = ?", (bytes.fromhex(farmer.node_id),)
        ).fetchone()
    return row


def busiest(network: BackgroundNetwork) -> FarmerProcess:
    """The farmer holding the most pieces, of those that never started an exit."""
    held = pieces_by_node(network)
    with network.bridge_db() as db:
        left = {r[0] for r in db.execute("SELECT node_id FROM nodes WHERE exit_started_at")}
    staying = [f for f in network.farmers if bytes.fromhex(f.node_id) not in left]
    farmer = max(staying, key=lambda f: len(held.get(bytes.fromhex(f.node_id), [])))
    assert len(held.get(bytes.fromhex(farmer.node_id), [])) >= 3
    return farmer


def bridge_pieces(network: BackgroundNetwork, farmer: FarmerProcess) -> list[Path]:
    """The bridge's piece files on the farmer's disk: stored ones, and in the trash."""
    bridge = network.network.bridge.node_id
    stored = (farmer.data_dir / "pieces" / bridge).glob("*/*")
    trashed = (farmer.data_dir / "trash" / bridge).glob("*")
    return sorted(p for p in [*stored, *trashed] if p.is_file())


def check_left_cleanly(
    network: BackgroundNetwork, farmer: FarmerProcess, held: list[sqlite3.Row]
) -> None:
    """The exit ended ``exited``; every set the farmer held keeps >= o pieces, on other nodes
    that have each piece's file; the farmer holds no piece of the bridge any more."""
    node_id = bytes.fromhex(farmer.node_id)
    row = node_row(network, farmer)
    assert row["exit_result"] == "exited" and row["exit_finished_at"] is not None
    now = pieces_by_node(network)
    assert node_id not in now  # no pieces row names it
    dirs = {bytes.fromhex(f.node_id): f.data_dir for f in network.farmers}
    bridge = network.network.bridge.node_id
    with network.bridge_db() as db:
        for piece in held:
            rows = db.execute(
                "SELECT * FROM pieces WHERE root_piece_id = ?", (piece["root_piece_id"],)
            ).fetchall()
            assert len(rows) >= PROFILE.o, len(rows)
            moved = [r for r in rows if r["piece_number"] == piece["piece_number"]]
            assert len(moved) == 1 and moved[0]["piece_hash"] == piece["piece_hash"]
            for r in rows:
                assert r["node_id"] != node_id
                name = r["piece_id"].hex()
                path = dirs[r["node_id"]] / "pieces" / bridge / name[:2] / name
                assert path.is_file(), f"piece {name[:16]} missing on its node"
    assert bridge_pieces(network, farmer) == []


def download_all(uploaded: Uploaded) -> None:
    with Project.open(uploaded.grant, config=SMALL) as project:
        for key, content in uploaded.objects.items():
            assert b"".join(project.stream("exit", key)) == content, key


def farmer_call(farmer: FarmerProcess, path: str, body: bytes | None = None) -> bytes:
    url = json.loads((farmer.data_dir / "listen.json").read_text())["local_url"] + path
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return bytes(answer.read())


def test_a_farmer_exits_and_every_piece_lives_on(
    network: BackgroundNetwork, uploaded: Uploaded
) -> None:
    farmer = busiest(network)
    node_id = bytes.fromhex(farmer.node_id)
    held = pieces_by_node(network)[node_id]
    # At least those: a piece an upload cut short may wait for the bridge's delete, or be in
    # the trash after it.
    assert len(bridge_pieces(network, farmer)) >= len(held)

    result = run_cli("farmer", "exit", "--data-dir", farmer.data_dir, "--yes", timeout=300)
    assert result.status == 0, result.err
    assert f"{len(held)} pieces moved" in result.out, result.out

    check_left_cleanly(network, farmer, held)
    download_all(uploaded)

    # No new pieces for it: more uploads land everywhere else.
    with Project.open(uploaded.grant, config=SMALL) as project:
        for number in range(4):
            project.upload("exit", f"after-{number}", os.urandom(SEGMENT + 1000))
    assert node_id not in pieces_by_node(network)
    assert bridge_pieces(network, farmer) == []

    # Nor does it check in there any more: a check-in run now leaves the bridge's record as is.
    before = node_row(network, farmer)["contact_timestamp"]
    time.sleep(1.1)  # contact timestamps are whole seconds
    farmer_call(farmer, CHORE.format(name="checkin"), b"")
    assert node_row(network, farmer)["contact_timestamp"] == before
    report = ExitReport.model_validate_json(farmer_call(farmer, EXIT))
    state = report.bridges[network.network.bridge.node_id]
    assert (state.state, state.transferred, state.failed, state.remaining) == (
        "exited",
        len(held),
        0,
        0,
    )


def test_an_exit_resumes_after_a_kill(network: BackgroundNetwork, uploaded: Uploaded) -> None:
    """Killed (SIGKILL) in the middle of its exit, the farmer resumes it when it starts again,
    reporting the receipts it got before the kill."""
    farmer = busiest(network)
    node_id = bytes.fromhex(farmer.node_id)
    held = pieces_by_node(network)[node_id]
    bridge = network.network.bridge.node_id
    state_file = farmer.data_dir / "exit.json"
    farmer_call(farmer, EXIT, b"{}")

    def moved_one() -> bool:
        try:
            record = json.loads(state_file.read_text())["bridges"][bridge]
        except (OSError, ValueError, KeyError):
            return False
        return bool(record["done"] or record["transferred"])

    wait_for(moved_one, "the first piece moved", within=120, every=0.05)
    os.kill(farmer.pid, signal.SIGSTOP)  # frozen at once, then killed: no clean shutdown
    record = json.loads(state_file.read_text())["bridges"][bridge]
    assert record["state"] == "exiting", "the exit ended before the kill"
    network.kill([farmer])
    network.call(farmer.start())

    def ended() -> ExitReport | None:
        report = ExitReport.model_validate_json(farmer_call(farmer, EXIT))
        return report if report.bridges[bridge].state != "exiting" else None

    state = wait_for(ended, "the exit ended after the restart", within=120, every=0.05).bridges[
        bridge
    ]
    assert (state.state, state.transferred, state.failed) == ("exited", len(held), 0), state
    check_left_cleanly(network, farmer, held)
    download_all(uploaded)
