"""`metadisk bridge ...`: configuration layering, clear one-line errors, identity, migrations."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from metadisk.bridge.db.migrate import head_revision
from metadisk.cli.bridge import ConfigError, load_config
from metadisk.core.erasure import LOCAL, RedundancyScheme
from metadisk.devnet.bridge import BridgeProcess
from metadisk.devnet.settings import to_toml

BRIDGE = [sys.executable, "-m", "metadisk.cli.bridge"]


def _write(tmp_path: Path, settings: dict[str, object]) -> Path:
    path = tmp_path / "bridge.toml"
    path.write_text(to_toml(settings))
    return path


def test_defaults(tmp_path: Path) -> None:
    config = load_config(None, tmp_path, {}, {})
    assert config.data_dir == tmp_path
    assert config.database.url == f"sqlite:///{(tmp_path / 'bridge.sqlite3').resolve()}"
    assert (config.server.host, config.server.port) == ("127.0.0.1", 0)
    assert config.nodes.difficulty == 18 and config.nodes.single_host is False
    assert config.nodes.private_addresses is False  # a public bridge unless told otherwise
    assert config.objects.profiles["local"] == LOCAL


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "data_dir": str(tmp_path / "from-file"),
            "server": {"port": 7000, "host": "127.0.0.1"},
            "nodes": {"difficulty": 5, "single_host": True, "private_addresses": True},
            "accounts": {"default_limits": {"buckets": 3}},
            "objects": {
                "default_profile": "tiny",
                "profiles": {"tiny": {"k": 1, "m": 2, "o": 3, "n": 4}},
            },
        },
    )
    env = {
        "METADISK_BRIDGE_NODES_DIFFICULTY": "9",
        "METADISK_BRIDGE_SERVER_PORT": "7001",
        "METADISK_BRIDGE_CHORES_RECLAIM_INTERVAL": "2.5",
    }
    config = load_config(path, None, {"server": {"port": 7002}}, env)
    assert config.data_dir == tmp_path / "from-file"
    assert config.nodes.difficulty == 9  # environment over file
    assert config.nodes.single_host is True
    assert config.nodes.private_addresses is True
    from_env = {"METADISK_BRIDGE_NODES_PRIVATE_ADDRESSES": "false"}
    assert load_config(path, None, {}, from_env).nodes.private_addresses is False
    assert config.server.port == 7002  # flag over environment
    assert config.chores.reclaim_interval == 2.5
    assert config.accounts.default_limits.buckets == 3
    assert config.objects.profiles == {"tiny": RedundancyScheme(1, 2, 3, 4)}
    assert config.objects.default_profile == "tiny"
    # The data directory itself can come from the environment.
    env_dir = load_config(None, None, {}, {"METADISK_BRIDGE_DATA_DIR": str(tmp_path / "e")})
    assert env_dir.data_dir == tmp_path / "e"


@pytest.mark.parametrize(
    ("settings", "env", "message"),
    [
        ({"nodes": {"difficulty": "high"}}, {}, "[nodes] difficulty must be int"),
        ({"nodes": {"dificulty": 3}}, {}, "unknown setting [nodes] 'dificulty'"),
        ({"serverr": {"x": 1}}, {}, "unknown setting 'serverr'"),
        ({}, {"METADISK_BRIDGE_NODES_SINGLE_HOST": "maybe"}, "METADISK_BRIDGE_NODES_SINGLE_HOST"),
        ({"nodes": {"private_addresses": "yes"}}, {}, "[nodes] private_addresses must be bool"),
        ({"objects": {"profiles": {"x": {"k": 5, "m": 4, "o": 3, "n": 2}}}}, {}, "1 <= k <= m"),
        ({"objects": {"default_profile": "nope"}}, {}, "default profile 'nope'"),
        ({"repair": {"check_interval": 0}}, {}, "[repair] check_interval must be above 0"),
        ({"repair": {"concurrency": 0}}, {}, "[repair] concurrency must be at least 1"),
        ({"repair": {"bandwidth": -1}}, {}, "[repair] bandwidth, spares and gc_clock_skew"),
        ({"repair": {"gc_false_positive_rate": 1}}, {}, "gc_false_positive_rate must be between"),
        ({"repair": {"exit_batchh": 3}}, {}, "unknown setting [repair] 'exit_batchh'"),
    ],
)
def test_config_mistakes(
    tmp_path: Path, settings: dict[str, object], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(_write(tmp_path, settings), tmp_path, {}, env)


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BRIDGE, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_bad_config_is_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, {"nodes": {"difficulty": "high"}})
    result = _run("run", "--config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: configuration error: [nodes] difficulty must be int"]


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run("run", "--data-dir", str(tmp_path), "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: address already in use"
    ]


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    result = _run(
        "run", "--data-dir", str(tmp_path), "--database", "postgresql://nobody@/x?host=/nonexistent"
    )
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot open the database: OperationalError")


def test_migrate_command(tmp_path: Path) -> None:
    result = _run("migrate", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"database at revision {head_revision()}"
    assert (tmp_path / "bridge.sqlite3").exists()
    again = _run("migrate", "--data-dir", str(tmp_path))
    assert again.stdout == result.stdout


def test_identity_is_made_once_and_private(tmp_path: Path) -> None:
    bridge = BridgeProcess(tmp_path / "b")
    bridge.start()
    first = bridge.node_id
    bridge.stop()
    seed = tmp_path / "b" / "identity.seed"
    assert stat.S_IMODE(seed.stat().st_mode) == 0o600
    bridge.start()
    try:
        assert bridge.node_id == first
        assert (tmp_path / "b" / "bridge.url").read_text().strip() == bridge.url
        info = json.loads(urllib.request.urlopen(bridge.url + "/v1/bridge", timeout=10).read())
        assert info["node_id"] == first
    finally:
        bridge.stop()
    seed.chmod(0o644)
    with pytest.raises(RuntimeError, match="did not start"):
        bridge.start()
    assert "chmod 600" in bridge.log_tail()


def test_several_workers_share_the_port(tmp_path: Path) -> None:
    bridge = BridgeProcess(tmp_path, settings={"server": {"workers": 2}})
    bridge.start()
    try:
        for _ in range(20):
            body = urllib.request.urlopen(bridge.url + "/v1/bridge", timeout=10).read()
            assert json.loads(body)["node_id"] == bridge.node_id
    finally:
        assert bridge.stop() == 0
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", bridge.port), timeout=2):
        pass


def test_a_worker_whose_metrics_port_is_taken_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run("worker", "--data-dir", str(tmp_path), "--metrics-port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot serve metrics: port {port} on 127.0.0.1 is in use"
    ]


def test_api_and_worker_split_the_work(tmp_path: Path) -> None:
    """`api` runs no chore; `worker` runs them and serves only /metrics; both stop cleanly."""
    api = BridgeProcess(tmp_path, role="api")
    worker = BridgeProcess(tmp_path, role="worker", settings={"chores": {"reclaim_interval": 0.1}})
    api.start()
    worker.start()
    try:
        assert worker.node_id == api.node_id  # one bridge: one identity seed in the data dir
        served = urllib.request.urlopen(api.url + "/metrics", timeout=10).read().decode()
        assert "metadisk_http_requests_total" in served
        assert "metadisk_chore_runs_total{" not in served
        scraped = urllib.request.urlopen(worker.url + "/metrics", timeout=10).read().decode()
        assert 'metadisk_chore_runs_total{chore="reclaim",outcome="ok"}' in scraped
        with pytest.raises(urllib.error.HTTPError) as no_api:
            urllib.request.urlopen(worker.url + "/v1/bridge", timeout=10)
        assert no_api.value.code == 404
    finally:
        assert worker.stop() == 0
        assert api.stop() == 0
