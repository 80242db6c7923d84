"""The bridge serving HTTPS from its config's certificate, and what a mistake in it looks like."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from metadisk.bridge.config import ServerConfig
from metadisk.devnet.bridge import BridgeProcess
from metadisk.devnet.tls import network_tls
from metadisk.wire.api import routes

BRIDGE = [sys.executable, "-m", "metadisk.cli.bridge"]


def test_cert_and_key_go_together() -> None:
    with pytest.raises(ValueError, match="set both or neither"):
        ServerConfig(tls_cert="/x.pem")


def test_the_bridge_serves_https_and_says_so(tmp_path: Path) -> None:
    files = network_tls(tmp_path)
    server = {"tls_cert": str(files.bridge_cert), "tls_key": str(files.bridge_key)}
    bridge = BridgeProcess(tmp_path / "bridge", settings={"server": server})
    bridge.start()
    try:
        assert bridge.url.startswith("https://127.0.0.1:")
        assert (tmp_path / "bridge" / "bridge.url").read_text().strip() == bridge.url
        context = ssl.create_default_context(cafile=str(files.ca_file))
        with urllib.request.urlopen(bridge.url + routes.BRIDGE_INFO, context=context) as answer:
            assert json.loads(answer.read())["node_id"] == bridge.node_id
    finally:
        bridge.stop()


def test_a_bad_certificate_is_one_line(tmp_path: Path) -> None:
    files = network_tls(tmp_path)
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "b"}"\n[server]\n'
        f'tls_cert = "{files.ca_file}"\ntls_key = "{files.bridge_key}"\n'
    )
    result = subprocess.run(
        [*BRIDGE, "run", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot use [server] tls_cert {files.ca_file}")
