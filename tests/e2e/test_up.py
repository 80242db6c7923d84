"""`metadisk up` as a user runs it: a real process tree, the CLI against it, signals, a rerun."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metadisk.cli import config as cfg
from tests.e2e.harness import CLI, run_cli

FARMERS = 6


class Up:
    """One `metadisk up` process; `ready()` waits for its announcement."""

    def __init__(self, data_dir: Path, config_dir: Path, *options: str) -> None:
        environment = {**os.environ, cfg.ENV_CONFIG_DIR: str(config_dir)}
        self.process = subprocess.Popen(
            [*CLI, "up", "--data-dir", str(data_dir), "--farmers", str(FARMERS), *options],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line)

    def ready(self, within: float = 120) -> None:
        deadline = time.monotonic() + within
        while True:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.process.poll() is None, self.stop_output()
                assert time.monotonic() < deadline, "metadisk up did not get ready"
                continue
            self.output.append(line)
            if line.startswith("metadisk up: ready"):
                return

    def said(self, pattern: str, within: float = 60) -> re.Match[str]:
        """Wait for an output line matching `pattern` (a regular expression); the match."""
        deadline = time.monotonic() + within
        while True:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.process.poll() is None, self.stop_output()
                assert time.monotonic() < deadline, f"no line like {pattern!r}: {self.output}"
                continue
            self.output.append(line)
            if found := re.search(pattern, line):
                return found

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        return self.process.wait(60)

    def stop_output(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def gone(pid: int, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def running(data_dir: Path) -> Iterator[int]:
    info = json.loads((data_dir / "running.json").read_text())
    yield info["bridge"]["pid"]
    yield info["gateway"]["pid"]
    for farmer in info["farmers"]:
        yield farmer["pid"]


def s3_read(endpoint: str, keys: tuple[str, ...], bucket: str, key: str) -> bytes:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=keys[0],
        aws_secret_access_key=keys[1],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def test_up_serves_the_cli_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    data_dir, config_dir = tmp_path / "net", tmp_path / "user-config"
    note = tmp_path / "note.txt"
    note.write_text("kept across runs")

    first = Up(data_dir, config_dir)
    try:
        first.ready()
        info = json.loads((data_dir / "running.json").read_text())
        assert len(info["farmers"]) == FARMERS
        pids = list(running(data_dir))
        # The grant is where the CLI looks: the user's (empty) config dir and the data dir's.
        for directory in (config_dir, data_dir / "cli"):
            assert (directory / cfg.CONFIG_FILE).stat().st_mode & 0o777 == 0o600
        assert (data_dir / "network.json").stat().st_mode & 0o777 == 0o600
        assert run_cli("mb", "md://demo", config_dir=config_dir).status == 0
        assert run_cli("cp", note, "md://demo/", config_dir=config_dir).status == 0
        assert run_cli("ls", "md://demo", config_dir=config_dir).out.split()[-1] == "note.txt"
        assert run_cli("cat", "md://demo/note.txt", config_dir=config_dir).out == (
            "kept across runs"
        )
        # Each farmer's dashboard answers on loopback; the bridge serves its console.
        for farmer in info["farmers"]:
            with urllib.request.urlopen(farmer["dashboard"], timeout=30) as page:
                assert farmer["node_id"] in page.read().decode()
        with urllib.request.urlopen(info["bridge"]["url"] + "/console/login", timeout=30) as page:
            assert page.status == 200
        gateway = first.said(r"^s3 gateway\s+(\S+)").group(1)
        keys = first.said(r"^s3 keys\s+access key (\S+)\s+secret key (\S+)").groups()
        assert s3_read(gateway, keys, "demo", "note.txt") == b"kept across runs"
        assert first.stop(signal.SIGTERM) == 0
    finally:
        first.kill()
    assert all(gone(pid) for pid in pids), "a process outlived metadisk up"
    assert not (data_dir / "running.json").exists()

    second = Up(data_dir, config_dir)
    try:
        second.ready()
        again = json.loads((data_dir / "running.json").read_text())
        assert again["bridge"]["url"] == info["bridge"]["url"]  # same port: same grant works
        assert [f["node_id"] for f in again["farmers"]] == [f["node_id"] for f in info["farmers"]]
        # Via the data dir's own config this time.
        own = data_dir / "cli"
        assert run_cli("cat", "md://demo/note.txt", config_dir=own).out == "kept across runs"
        # The S3 gateway too: same address, same keys.
        assert again["gateway"]["url"] == gateway
        assert s3_read(gateway, keys, "demo", "note.txt") == b"kept across runs"
        pids = list(running(data_dir))
        assert second.stop(signal.SIGINT) == 0
    finally:
        second.kill()
    assert all(gone(pid) for pid in pids), "a process outlived metadisk up"


def test_a_second_up_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "net"
    data_dir.mkdir()
    holder = subprocess.Popen(
        [
            "python3",
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
            "fcntl.flock(f, fcntl.LOCK_EX); f.write('4242'); f.flush(); "
            "print('locked', flush=True); time.sleep(60)",
            str(data_dir / "up.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        refused = run_cli("up", "--data-dir", data_dir, config_dir=tmp_path / "config")
        assert refused.status == 1
        assert "another 'metadisk up'" in refused.error_line
        assert "4242" in refused.error_line
    finally:
        holder.kill()
        holder.wait()


def farmers_running(data_dir: Path) -> dict[str, dict[str, Any]]:
    info = json.loads((data_dir / "running.json").read_text())
    return {farmer["name"]: farmer for farmer in info["farmers"]}


def test_up_outlives_its_farmers_and_takes_more(tmp_path: Path) -> None:
    """kill -9 a farmer: `up` says so, keeps serving, starts it again; uploads and downloads
    go on throughout. `--add-farmers` hands the running network two more."""
    data_dir, config_dir = tmp_path / "net", tmp_path / "user-config"
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(300_000))
    up = Up(data_dir, config_dir, "--chore-interval", "0.5")
    try:
        up.ready()
        # Every chore runs on the short interval: farmers check in every half second.
        farmer_toml = (data_dir / "farmers" / "farmer-01" / "farmer.toml").read_text()
        assert "checkin_interval = 0.5" in farmer_toml
        assert '"delete_interval" = 0.5' in (data_dir / "bridge" / "bridge.toml").read_text()
        assert run_cli("mb", "md://demo", config_dir=config_dir).status == 0
        assert run_cli("cp", payload, "md://demo/before", config_dir=config_dir).status == 0

        victim = farmers_running(data_dir)["farmer-02"]
        os.kill(victim["pid"], signal.SIGKILL)
        up.said(r"farmer-02 exited \(status -9\); restarting in \d+ s")
        # The network keeps serving while the farmer is down.
        assert run_cli("cp", payload, "md://demo/during", config_dir=config_dir).status == 0
        during = tmp_path / "during.out"
        assert run_cli("cp", "md://demo/before", during, config_dir=config_dir).status == 0
        assert during.read_bytes() == payload.read_bytes()
        back = up.said(r"farmer-02 is back at (\S+) \(pid (\d+)\)")
        assert back.group(1) == victim["url"]  # the same address: the bridge knows it
        assert int(back.group(2)) != victim["pid"]
        deadline = time.monotonic() + 10
        while farmers_running(data_dir)["farmer-02"]["pid"] == victim["pid"]:
            assert time.monotonic() < deadline, "running.json still names the killed farmer"
            time.sleep(0.1)
        for name in ("before", "during"):
            copy = tmp_path / f"{name}.out"
            assert run_cli("cp", f"md://demo/{name}", copy, config_dir=config_dir).status == 0
            assert copy.read_bytes() == payload.read_bytes()
        assert run_cli("cp", payload, "md://demo/after", config_dir=config_dir).status == 0

        added = run_cli("up", "--data-dir", data_dir, "--add-farmers", "2", config_dir=config_dir)
        assert added.status == 0, added.err
        assert re.findall(r"farmer-0(\d) online at", added.out) == [
            str(FARMERS + 1),
            str(FARMERS + 2),
        ]
        up.said(rf"farmer-{FARMERS + 2:02d} joined at")
        assert len(farmers_running(data_dir)) == FARMERS + 2
        pids = list(running(data_dir))
        assert up.stop(signal.SIGTERM) == 0
    finally:
        up.kill()
    assert all(gone(pid) for pid in pids), "a process outlived metadisk up"


def test_no_restart_leaves_a_dead_farmer_down_and_serves_on(tmp_path: Path) -> None:
    data_dir, config_dir = tmp_path / "net", tmp_path / "user-config"
    up = Up(data_dir, config_dir, "--no-restart")
    try:
        up.ready()
        victim = farmers_running(data_dir)["farmer-03"]
        os.kill(victim["pid"], signal.SIGKILL)
        up.said(r"farmer-03 exited \(status -9\); not restarting \(--no-restart\)")
        assert run_cli("mb", "md://demo", config_dir=config_dir).status == 0
        payload = tmp_path / "payload.bin"  # past the inline size: its pieces go to farmers
        payload.write_bytes(os.urandom(200_000))
        assert run_cli("cp", payload, "md://demo/p", config_dir=config_dir).status == 0
        copy = tmp_path / "copy.bin"
        assert run_cli("cp", "md://demo/p", copy, config_dir=config_dir).status == 0
        assert copy.read_bytes() == payload.read_bytes()
        assert up.process.poll() is None
        assert up.stop(signal.SIGINT) == 0
    finally:
        up.kill()
