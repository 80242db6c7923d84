"""End-to-end test harness: a real local network on a background event loop, and CLI runners.

`BackgroundNetwork` runs a `LocalNetwork` (a bridge process and farmer processes on 127.0.0.1)
on an event loop of its own thread, so plain synchronous tests can use it (through the sync
`Project`, or the CLI) and still kill or restart farmers (`call`). Nothing is mocked: every byte
goes through real processes over loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from metadisk.cli import config as cfg
from metadisk.cli.main import main
from metadisk.client import ClientConfig, SegmentSizing
from metadisk.core.grant import AccessGrant
from metadisk.devnet.farmer import FarmerProcess
from metadisk.devnet.network import LocalNetwork, Tenant
from metadisk.wire.api import routes
from metadisk.wire.api.nodes import (
    AuditEvidence,
    EvidenceList,
    NodeStanding,
    NodeStatus,
    NodeTable,
)

T = TypeVar("T")
MiB = 1 << 20
# 256 KiB pieces at 4/6/8/10 make 1 MiB segments (the library's minimum): multi-segment objects
# stay small and tests quick. Threads, not worker processes: each CLI call starts faster.
SMALL_PIECES = 256 * 1024
SMALL = ClientConfig(sizing=SegmentSizing(piece_target=SMALL_PIECES), processes=False)
SEGMENT = 1 * MiB  # what SMALL gives at 4/6/8/10
CLI = [sys.executable, "-m", "metadisk.cli.main"]


class BackgroundNetwork:
    """A `LocalNetwork` whose event loop runs on a daemon thread; `call` runs coroutines there."""

    def __init__(self, root: Path, **options: Any) -> None:
        self.network = LocalNetwork(root, **options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout)

    def start(self) -> None:
        try:
            self.call(self.network.start())
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call(self.network.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    @property
    def root(self) -> Path:
        return self.network.root

    @property
    def farmers(self) -> list[FarmerProcess]:
        return self.network.farmers

    @property
    def bridge_url(self) -> str:
        return self.network.bridge.url

    def tenant(self) -> Tenant:
        return self.call(self.network.create_tenant())

    def kill(self, farmers: list[FarmerProcess]) -> None:
        """SIGKILL `farmers`, as a crash or a pulled plug would stop them."""

        async def kill_all() -> None:
            await asyncio.gather(*(farmer.kill() for farmer in farmers))

        self.call(kill_all())

    def restart(self, farmers: list[FarmerProcess]) -> None:
        """Start `farmers` again (same data dir and port) and wait until they are online."""

        async def start_all() -> None:
            since = int(time.time())
            await asyncio.gather(*(farmer.start() for farmer in farmers))
            await self.network.wait_online(farmers, since=since)

        self.call(start_all())

    def hang(self, farmer: FarmerProcess) -> None:
        """SIGSTOP `farmer`: hung, not dead (its port still accepts connections); `unhang`."""
        os.kill(farmer.pid, signal.SIGSTOP)

    def unhang(self, farmer: FarmerProcess) -> None:
        os.kill(farmer.pid, signal.SIGCONT)

    def node_table(self, admin_token: str) -> dict[str, NodeStanding]:
        """Every node's standing by node id hex (``GET /v1/admin/nodes``: the bridge needs
        ``[server] admin_token`` set to `admin_token`)."""
        request = urllib.request.Request(
            self.bridge_url + routes.ADMIN_NODES,
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            table = NodeTable.model_validate_json(answer.read())
        return {node.node_id.hex(): node for node in table.nodes}

    def node_evidence(self, admin_token: str, node_id: str) -> list[AuditEvidence]:
        """The failed audits the bridge kept for a node (``GET /v1/admin/nodes/{id}/evidence``)."""
        request = urllib.request.Request(
            self.bridge_url + routes.ADMIN_NODE_EVIDENCE.format(node_id=node_id),
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return EvidenceList.model_validate_json(answer.read()).evidence

    def bridge_db(self) -> sqlite3.Connection:
        """A read-only connection to the bridge's SQLite database (the default database)."""
        path = self.network.bridge_dir / "bridge.sqlite3"
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        connection.row_factory = sqlite3.Row
        return connection

    def wait_offline(self, farmers: list[FarmerProcess], window: int) -> None:
        """Wait until the bridge counts `farmers` as offline (no ping-back for `window` s)."""
        deadline = time.monotonic() + window + 30

        async def statuses() -> list[NodeStatus | None]:
            return [await self.network.node(farmer) for farmer in farmers]

        while True:
            records = self.call(statuses())
            if all(r is not None and not r.online for r in records):
                return
            assert time.monotonic() < deadline, "the bridge still counts killed farmers online"
            time.sleep(0.2)


def wait_for(
    probe: Callable[[], T | None], what: str, within: float = 60.0, every: float = 0.2
) -> T:
    """Poll `probe` until it returns something truthy, and return that; fail with `what` if it
    has not by `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {within:.0f} s: {what}"
        time.sleep(every)


@contextlib.contextmanager
def background_network(root: Path, **options: Any) -> Iterator[BackgroundNetwork]:
    running = BackgroundNetwork(root, **options)
    running.start()
    try:
        yield running
    finally:
        running.close()


def write_config(directory: Path, tenant: Tenant, *, piece_target: int = SMALL_PIECES) -> Path:
    """A CLI config dir holding `tenant`'s grant and account, tuned for quick tests."""
    grant = AccessGrant.parse(tenant.grant)
    config = cfg.CliConfig(
        grant=tenant.grant,
        account=cfg.Account(grant.bridge_url, tenant.email, tenant.project_id),
        client=cfg.ClientTuning(processes=False, piece_target=piece_target),
        origin="test",
    )
    cfg.save(directory, config)
    return directory


@dataclass(frozen=True)
class Result:
    status: int
    out: str
    err: str

    @property
    def error_line(self) -> str:
        """The one line an error prints; fails unless stderr is exactly one 'error:' line."""
        lines = self.err.splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got: {self.err!r}"
        assert lines[0].startswith("error: "), lines[0]
        assert "Traceback" not in self.err
        return lines[0]


class InProcessCli:
    """Runs `metadisk.cli.main.main` in this process (fast) and captures its output."""

    def __init__(self, capfd: pytest.CaptureFixture[str], config_dir: Path) -> None:
        self.capfd = capfd
        self.config_dir = config_dir

    def __call__(self, *args: str | os.PathLike[str], config_dir: Path | None = None) -> Result:
        where = config_dir or self.config_dir
        self.capfd.readouterr()  # drop anything printed before
        status = main(["--config-dir", str(where), *map(str, args)])
        captured = self.capfd.readouterr()
        return Result(status, captured.out, captured.err)


def run_cli(
    *args: str | os.PathLike[str],
    config_dir: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 120,
) -> Result:
    """Run the `metadisk` command as a separate process (what a user's shell does)."""
    environment = {**os.environ, **(env or {})}
    environment.pop("METADISK_DEBUG", None)
    if config_dir is not None:
        environment[cfg.ENV_CONFIG_DIR] = str(config_dir)
    done = subprocess.run(
        [*CLI, *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def piece_files(root: Path) -> set[Path]:
    """Every stored piece file under a network's farmers."""
    return {p for p in root.glob("farmers/*/pieces/*/*/*") if p.is_file()}


def farmer_piece_files(farmer: FarmerProcess) -> list[Path]:
    """The piece files one farmer holds, in a stable order."""
    return sorted(p for p in farmer.data_dir.glob("pieces/*/*/*") if p.is_file())


def all_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path


def files_under(root: Path) -> dict[str, bytes]:
    """Every file below `root`, by its path relative to it, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in all_files(root)}
