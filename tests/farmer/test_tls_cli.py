"""`metadisk farmer status` and `exit` reach a TLS node on this machine only if it proves its
node id: whatever else listens at the address in ``listen.json`` gets nothing."""

from __future__ import annotations

import json
from pathlib import Path

from metadisk.devnet.farmer import farmer_process
from tests.farmer.helpers import Bridge
from tests.farmer.test_standing import cli


async def test_status_of_a_tls_node(tmp_path: Path) -> None:
    bridge = Bridge.new().trusted  # nobody listens there: the standing says unreachable
    async with (
        farmer_process(tmp_path / "a", [bridge], allocated=64 << 20, tls=True) as node,
        farmer_process(tmp_path / "b", [bridge], allocated=64 << 20, tls=True) as impostor,
    ):
        code, out, err = await cli("status", "--data-dir", str(node.data_dir), "--timeout", "1")
        assert code == 0, err
        assert out.startswith(f"node      {node.node_id}  ({node.url}, up ")
        assert node.url.startswith("https://")

        # listen.json now leads to another node (a stale file, or someone on the port)
        listen = node.data_dir / "listen.json"
        info = json.loads(listen.read_text())
        listen.write_text(json.dumps({**info, "local_url": impostor.url}))
        code, out, err = await cli("status", "--data-dir", str(node.data_dir), "--timeout", "1")
        assert code == 1, (out, err)
        assert out.startswith(f"node      {node.node_id}  (not running)"), (out, err)
        assert f"is not node {node.node_id[:16]}" in err and len(err.splitlines()) == 1

        code, _, err = await cli("exit", "--data-dir", str(node.data_dir), "--yes")
        assert code == 1
        assert err.startswith("error: the node stopped answering: ")
        assert f"is not node {node.node_id[:16]}" in err
