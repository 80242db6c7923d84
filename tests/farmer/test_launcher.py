"""The launcher's blocking form, for code without an event loop (e.g. `metadisk up`)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.request import urlopen

import pytest

from metadisk.devnet.farmer import FarmerProcess, FarmerStartError, farmer_process_sync
from tests.farmer.helpers import Bridge


def test_sync_launcher(tmp_path: Path) -> None:
    with farmer_process_sync(tmp_path / "data", [Bridge.new().trusted]) as farmer:
        with urlopen(farmer.url + "/v1/node", timeout=10) as response:
            assert json.loads(response.read())["node_id"] == farmer.node_id
        assert farmer.running
        assert farmer.kill_sync() != 0  # killed, not a clean exit
        farmer.start_sync()  # restarts on the same port
        with urlopen(farmer.url + "/v1/node", timeout=10) as response:
            assert response.status == 200
    assert not farmer.running
    assert farmer.returncode == 0


def test_start_failure_names_the_cause(tmp_path: Path) -> None:
    with farmer_process_sync(tmp_path / "data", [Bridge.new().trusted]) as farmer:
        clash = FarmerProcess(farmer.config, farmer.identity)
        clash.port = farmer.port  # a second node on the first one's port
        with pytest.raises(FarmerStartError, match="in use"):
            clash.start_sync()
