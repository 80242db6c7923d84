"""Start real farmer processes (``metadisk farmer run``) for tests, benchmarks and local networks.

The farmer binds port 0 (or the port asked) and prints one JSON line on stdout once it listens;
the launcher reads that line, so there is no race for a port and no polling. Logs go to
``<data dir>/farmer.log``. Async code uses `start`/`stop`/`kill`, code without an event loop
`start_sync`/`stop_sync`/`kill_sync`. Example::

    async with farmer_process(tmp_path / "f1", bridges=[bridge]) as farmer:
        ...  # farmer.url, farmer.node_id, farmer.identity, farmer.dashboard_url
        await farmer.kill()  # SIGKILL, as a crash would
        await farmer.start()  # again: same data dir, same port

    with farmer_process_sync(tmp_path / "f2", bridges=[bridge]) as farmer:
        ...
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from metadisk.core.identity import Identity
from metadisk.farmer.config import FarmerConfig, TrustedBridge
from metadisk.farmer.setup import write_config, write_identity
from metadisk.runtime.process import ChildProcess, ChildStartError

LOG_FILE = "farmer.log"


class FarmerStartError(ChildStartError):
    """The farmer process exited or stayed silent instead of listening."""


class FarmerProcess:
    """One farmer process on a data dir; start it again after `stop` or `kill`.

    `start` runs it as an asyncio subprocess, `start_sync` without an event loop; stop it with
    the matching form. `options` are extra command-line flags of ``metadisk farmer run`` (such
    as ``--access-log``).
    """

    def __init__(
        self,
        config: FarmerConfig,
        identity: Identity,
        *,
        log_level: str = "warning",
        options: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.log_level = log_level
        self.options = tuple(options)
        self.url = ""
        self.port = config.port
        self.info: dict[str, Any] = {}
        self._child = ChildProcess(
            f"farmer {config.data_dir.name}", [], log_path=config.data_dir / LOG_FILE, env=env
        )

    @property
    def node_id(self) -> str:
        return self.identity.node_id.hex()

    @property
    def dashboard_url(self) -> str | None:
        """The running farmer's dashboard (loopback only), from its listening line; None when
        it serves none (``[dashboard] enabled = false``) or before it first listened."""
        url = self.info.get("dashboard_url")
        return str(url) if url else None

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    @property
    def pid(self) -> int:
        return self._child.pid

    @property
    def running(self) -> bool:
        return self._child.running

    @property
    def returncode(self) -> int | None:
        """The last process's exit code; None while it runs or before it first started."""
        return self._child.returncode

    def _prepare(self) -> None:
        if self.port and self.port != self.config.port:
            # keep the address the bridge knows across restarts
            self.config = replace(self.config, port=self.port)
            write_config(self.config)
        self._child.args = [
            sys.executable, "-m", "metadisk.cli.farmer", "run",
            "--data-dir", str(self.data_dir), "--log-level", self.log_level, *self.options,
        ]  # fmt: skip

    def _listening(self, info: dict[str, Any]) -> None:
        self.info = info
        self.url = str(info["url"])
        self.port = int(info["port"])

    # -- async

    async def start(self, *, within: float = 30.0) -> None:
        """Run the farmer (on the port it had before, if any) and wait until it listens."""
        self._prepare()
        try:
            self._listening(await self._child.start(within=within))
        except ChildStartError as exc:
            raise FarmerStartError(str(exc)) from exc

    async def stop(self, *, within: float = 15.0) -> int:
        """SIGTERM and wait (SIGKILL after `within` seconds); returns the exit code."""
        return await self._child.stop(within=within) or 0

    async def kill(self) -> int:
        """SIGKILL, as a crash or power cut would stop it; returns the exit code."""
        return await self._child.kill() or 0

    async def wait(self) -> int:
        """Until the process exits on its own; its exit code."""
        return await self._child.wait()

    # -- blocking

    def start_sync(self, *, within: float = 30.0) -> None:
        """`start` for code without an event loop."""
        self._prepare()
        try:
            self._listening(self._child.start_sync(within=within))
        except ChildStartError as exc:
            raise FarmerStartError(str(exc)) from exc

    def stop_sync(self, *, within: float = 15.0) -> int:
        return self._child.stop_sync(within=within) or 0

    def kill_sync(self) -> int:
        return self._child.kill_sync() or 0

    def log_tail(self, lines: int = 20) -> str:
        return self._child.log_tail(lines)


def prepare_farmer(
    data_dir: Path,
    bridges: Sequence[TrustedBridge],
    *,
    allocated: int = 1 << 30,
    identity: Identity | None = None,
    difficulty: int = 0,
    tls: bool = False,
    **settings: Any,
) -> tuple[FarmerConfig, Identity]:
    """Write a data dir as `metadisk farmer setup` would; `settings` are `FarmerConfig` fields.

    Plain HTTP unless `tls`: these farmers serve a network on this machine's loopback.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = FarmerConfig(
        data_dir=data_dir, allocated=allocated, bridges=tuple(bridges), tls=tls, **settings
    )
    identity = identity or Identity.generate(difficulty)
    write_identity(data_dir, identity)
    write_config(config)
    return config, identity


@contextlib.asynccontextmanager
async def farmer_process(
    data_dir: Path,
    bridges: Sequence[TrustedBridge],
    *,
    log_level: str = "warning",
    **setup: Any,
) -> AsyncIterator[FarmerProcess]:
    """A running farmer process on a fresh data dir, stopped on exit; `setup` as in
    `prepare_farmer`."""
    config, identity = prepare_farmer(data_dir, bridges, **setup)
    farmer = FarmerProcess(config, identity, log_level=log_level)
    await farmer.start()
    try:
        yield farmer
    finally:
        await farmer.stop()


@contextlib.contextmanager
def farmer_process_sync(
    data_dir: Path,
    bridges: Sequence[TrustedBridge],
    *,
    log_level: str = "warning",
    **setup: Any,
) -> Iterator[FarmerProcess]:
    """`farmer_process` for code without an event loop."""
    config, identity = prepare_farmer(data_dir, bridges, **setup)
    farmer = FarmerProcess(config, identity, log_level=log_level)
    farmer.start_sync()
    try:
        yield farmer
    finally:
        farmer.stop_sync()


__all__ = [
    "FarmerProcess",
    "FarmerStartError",
    "farmer_process",
    "farmer_process_sync",
    "prepare_farmer",
]
