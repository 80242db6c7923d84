"""`metadisk bridge nodes`: the operator's node table from a bridge's data dir, as a table and as
JSON (the admin route's own shape), and one-line errors when there is nothing to read."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

from metadisk.devnet.bridge import BridgeProcess
from metadisk.wire.api.nodes import NodeStanding, NodeTable
from tests.bridge.helpers import Api, FarmerFleet, checkin

BRIDGE = [sys.executable, "-m", "metadisk.cli.bridge"]
COLUMNS = ["node", "address", "online", "vetted", "audit", "online score", "suspended",
           "disqualified", "pieces", "last seen"]  # fmt: skip


async def run(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *BRIDGE,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def where(bridge: BridgeProcess, database_url: str | None) -> list[str]:
    """The options that point the command at `bridge`'s data: its data dir (and its database,
    when that is not the SQLite file in the data dir)."""
    args = ["--data-dir", str(bridge.data_dir)]
    return [*args, "--database", database_url] if database_url else args


def rows(out: str) -> dict[str, list[str]]:
    """The table's rows by short node id, cells split on the runs of spaces between them."""
    lines = out.splitlines()
    assert lines[0].split() == [word for column in COLUMNS for word in column.split()]
    found = {}
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.split("  ") if cell.strip()]
        found[cells[0]] = cells
    return found


async def test_the_table_has_a_row_per_node(
    bridge: BridgeProcess, database_url: str | None, online: FarmerFleet
) -> None:
    code, out, err = await run("nodes", *where(bridge, database_url))
    assert code == 0, err
    table = rows(out)
    checked_in = [farmer for farmer in online.farmers if farmer.node_id.hex()[:16] in table]
    assert len(checked_in) == len(online.farmers) == len(table)
    for farmer in online.farmers:
        cells = table[farmer.node_id.hex()[:16]]
        address, up, vetted, audit, online_score, suspended, disqualified, pieces = cells[1:9]
        last_seen = cells[9]
        assert address == farmer.address
        assert (up, vetted, suspended, disqualified) == ("yes", "no", "no", "no")
        assert float(audit) == float(online_score) == 1.0
        assert int(pieces) == 0
        assert last_seen == "just now" or last_seen.endswith(" ago")


async def test_json_is_the_admin_routes_table(
    bridge: BridgeProcess, database_url: str | None, online: FarmerFleet
) -> None:
    code, out, err = await run("nodes", "--json", *where(bridge, database_url))
    assert code == 0, err
    table = NodeTable.model_validate_json(out)
    assert {node.node_id for node in table.nodes} == {f.node_id for f in online.farmers}
    # The same field names as the route's NodeStanding, every one of them.
    assert set(NodeTable.model_validate_json(out).model_dump()["nodes"][0]) == set(
        NodeStanding.model_fields
    )
    for node in table.nodes:
        assert node.online and not node.disqualified and node.last_seen is not None


async def test_a_disqualified_node_says_so(
    api: Api, bridge: BridgeProcess, database_url: str | None, online: FarmerFleet
) -> None:
    farmer = online.add()
    assert (await checkin(api, farmer)).status == 200
    code, _, err = await run("disqualify", farmer.node_id.hex(), *where(bridge, database_url))
    assert code == 0, err
    code, out, err = await run("nodes", *where(bridge, database_url))
    assert code == 0, err
    cells = rows(out)[farmer.node_id.hex()[:16]]
    assert (cells[2], cells[7]) == ("no", "yes")  # online, disqualified
    code, out, _ = await run("nodes", "--json", *where(bridge, database_url))
    (node,) = [n for n in NodeTable.model_validate_json(out).nodes if n.node_id == farmer.node_id]
    assert node.disqualified and not node.online


async def test_a_bridge_no_node_checked_in_with(tmp_path: Path) -> None:
    code, _, err = await run("migrate", "--data-dir", str(tmp_path))
    assert code == 0, err
    code, out, err = await run("nodes", "--data-dir", str(tmp_path))
    assert (code, out.strip(), err) == (0, "no nodes have checked in with this bridge", "")
    code, out, err = await run("nodes", "--json", "--data-dir", str(tmp_path))
    assert code == 0 and NodeTable.model_validate_json(out).nodes == []


async def test_nothing_to_read_is_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    code, out, err = await run("nodes", "--data-dir", str(empty))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"error: no bridge database at {empty.resolve() / 'bridge.sqlite3'}: start the bridge "
        "there first, or give its --data-dir, --config or --database"
    ]
    assert not empty.exists()  # no empty database left behind

    blank = tmp_path / "blank"
    blank.mkdir()
    sqlite3.connect(blank / "bridge.sqlite3").close()
    (blank / "bridge.sqlite3").chmod(0o600)  # private, as the bridge makes it: no warning
    code, _, err = await run("nodes", "--data-dir", str(blank))
    assert code == 1
    assert err.splitlines() == [
        "error: the database has no bridge schema: run `metadisk bridge migrate`"
    ]

    code, _, err = await run(
        "nodes", "--database", "postgresql://nobody@/x?host=/nonexistent", "--data-dir", str(blank)
    )
    assert code == 1
    [line] = err.splitlines()
    assert line.startswith("error: cannot read the node table: OperationalError")

    config = tmp_path / "bridge.toml"
    config.write_text('[nodes]\ndifficulty = "high"\n')
    code, _, err = await run("nodes", "--config", str(config))
    assert code == 2
    assert err.splitlines() == ["error: configuration error: [nodes] difficulty must be int"]


async def test_health_before_any_pass_and_with_nothing_to_read(tmp_path: Path) -> None:
    """`metadisk bridge health`: says when no checker pass ran yet, and shares the node table's
    one-line errors (no database, no schema)."""
    code, _, err = await run("migrate", "--data-dir", str(tmp_path))
    assert code == 0, err
    code, out, err = await run("health", "--data-dir", str(tmp_path))
    assert (code, out.strip(), err) == (0, "the repair checker has not finished a pass yet", "")
    empty = tmp_path / "empty"
    code, out, err = await run("health", "--data-dir", str(empty))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"error: no bridge database at {empty.resolve() / 'bridge.sqlite3'}: start the bridge "
        "there first, or give its --data-dir, --config or --database"
    ]
    assert not empty.exists()
