"""Start real bridge processes (``metadisk bridge run``, ``api`` or ``worker``) for tests,
benchmarks and local networks.

The bridge binds port 0 (or the port asked) and prints one JSON line on stdout once it listens;
the launcher reads that line, so there is no race for a port and no polling. Logs go to
``<data dir>/bridge.log`` (``worker.log`` for a worker). Example::

    with bridge_process(tmp_path / "bridge", settings={"nodes": {"difficulty": 0}}) as bridge:
        ...  # bridge.url, bridge.node_id, bridge.public_key
        bridge.kill()  # SIGKILL, as a crash would
        bridge.start()  # again: same data dir, database and port

`TEST_SETTINGS` makes password hashing cheap, turns on single-host mode and private addresses
(every farmer of a test network is on 127.0.0.1), and asks no proof of work nor vetting.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from metadisk.core.identity import Identity
from metadisk.devnet.settings import merge, to_toml
from metadisk.runtime.process import ChildProcess, ChildStartError

Role = Literal["run", "api", "worker"]

# Tests and local networks make accounts, logins, check-ins and uploads from one address far
# faster than any one person would: the bridge's rate limits (bridge/edge.py) are set loose here
# (not off, so the limiter still runs), not in its defaults.
RATE_LIMITED = ("login", "login_failure", "account", "checkin", "checkin_address", "begin")
LOOSE_RATES: dict[str, Any] = {
    **{f"{what}_rate": 10_000.0 for what in RATE_LIMITED},
    **{f"{what}_burst": 100_000 for what in RATE_LIMITED},
}

TEST_SETTINGS: dict[str, Any] = {
    "log_level": "warning",
    "accounts": {"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1},
    # Identities of test farmers are made by the hundred: no proof of work; and their nodes are
    # rarely audited into vetting, so no limit on what unvetted nodes hold.
    "nodes": {
        "single_host": True,
        "private_addresses": True,
        "difficulty": 0,
        "unvetted_pieces": 0,
    },
    "server": LOOSE_RATES,
}


class BridgeStartError(ChildStartError):
    """The bridge process exited or stayed silent instead of listening."""


class BridgeProcess:
    """One bridge process (`role`: ``run`` for API and chores, ``api``, ``worker``) on a data
    dir; `start()` again after `stop()` or `kill()`. Blocking: call it from a thread in async
    code.

    Several processes may share one data dir (the identity) and one database: give each its own
    `name` (its config and log file names).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        role: Role = "run",
        name: str | None = None,
        database_url: str | None = None,
        settings: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.role = role
        self.name = name or ("worker" if role == "worker" else "bridge")
        self.settings = merge(TEST_SETTINGS, settings or {})
        if database_url is not None:
            self.settings = merge(self.settings, {"database": {"url": database_url}})
        self.url = ""
        section = "worker" if role == "worker" else "server"
        self.port = int(self.settings.get(section, {}).get("port", 0))
        self.node_id = ""
        self._child = ChildProcess(
            self.name, [], log_path=self.data_dir / f"{self.name}.log", env=env
        )

    @property
    def config_path(self) -> Path:
        return self.data_dir / f"{self.name}.toml"

    @property
    def log_path(self) -> Path:
        return self._child.log_path

    @property
    def pid(self) -> int:
        return self._child.pid

    @property
    def running(self) -> bool:
        return self._child.running

    @property
    def returncode(self) -> int | None:
        return self._child.returncode

    def start(self, *, timeout: float = 60.0) -> None:
        """Run the bridge (on the port it had before, if any) and wait until it listens."""
        # Made private if missing; one found open is the bridge's to tighten (and say so).
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        settings = merge(self.settings, {"data_dir": str(self.data_dir)})
        if self.port:
            section = "worker" if self.role == "worker" else "server"
            settings = merge(settings, {section: {"port": self.port}})
        self.config_path.write_text(to_toml(settings))
        self._child.args = [
            sys.executable, "-m", "metadisk.cli.bridge", self.role,
            "--config", str(self.config_path),
        ]  # fmt: skip
        try:
            info = self._child.start_sync(within=timeout)
        except ChildStartError as exc:
            raise BridgeStartError(f"bridge did not start: {exc}") from exc
        self.url = str(info["url"])
        self.node_id = str(info["node_id"])
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait (SIGKILL if it takes longer than `timeout`); the exit code."""
        return self._child.stop_sync(within=timeout)

    def kill(self) -> int | None:
        """SIGKILL, as a crash or power cut of the process would."""
        return self._child.kill_sync()

    def log_tail(self, lines: int = 40) -> str:
        return self._child.log_tail(lines) or "(no log)"

    @property
    def public_key(self) -> bytes:
        """The bridge's Ed25519 public key (from its identity seed)."""
        return Identity((self.data_dir / "identity.seed").read_bytes()).public_key


@contextlib.contextmanager
def bridge_process(
    data_dir: Path,
    *,
    role: Role = "run",
    database_url: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Iterator[BridgeProcess]:
    """A started bridge, stopped on exit."""
    bridge = BridgeProcess(data_dir, role=role, database_url=database_url, settings=settings)
    bridge.start()
    try:
        yield bridge
    finally:
        bridge.stop()


__all__ = ["TEST_SETTINGS", "BridgeProcess", "BridgeStartError", "bridge_process"]
