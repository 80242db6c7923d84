"""Start real farmer processes for tests, benchmarks and local networks.

The farmer binds port 0 (or the port asked) and prints one JSON line on stdout once it listens;
the launcher reads that line, so there is no race for a port and no polling. Logs go to
``<data dir>/farmer.log``. Async code uses `start`/`stop`/`kill`, code without an event loop
`start_sync`/`stop_sync`/`kill_sync`. Example::

    async with farmer_process(tmp_path / "f1", bridges=[bridge]) as farmer:
        ...  # farmer.url, farmer.node_id, farmer.identity
        await farmer.kill()  # SIGKILL, as a crash would
        await farmer.start()  # again: same data dir, same port

    with farmer_process_sync(tmp_path / "f2", bridges=[bridge]) as farmer:
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from metadisk.core.identity import Identity
from metadisk.farmer.config import FarmerConfig, TrustedBridge
from metadisk.farmer.setup import write_config, write_identity

# The `metadisk farmer` Typer app itself, without loading the other roles' CLIs.
COMMAND = ("-m", "metadisk.cli.farmer", "run")
LOG_FILE = "farmer.log"


class FarmerStartError(RuntimeError):
    """The farmer process exited or stayed silent instead of listening."""


class FarmerProcess:
    """One farmer process on a data dir; start it again after `stop` or `kill`.

    `start` runs it as an asyncio subprocess (its `returncode` updates on its own), `start_sync`
    as a `subprocess.Popen`; stop it with the matching form.
    """

    def __init__(
        self, config: FarmerConfig, identity: Identity, *, log_level: str = "warning"
    ) -> None:
        self.config = config
        self.identity = identity
        self.log_level = log_level
        self.process: asyncio.subprocess.Process | subprocess.Popen[bytes] | None = None
        self.url = ""
        self.port = config.port
        self.info: dict[str, Any] = {}

    @property
    def node_id(self) -> str:
        return self.identity.node_id.hex()

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def running(self) -> bool:
        if isinstance(self.process, subprocess.Popen):
            return self.process.poll() is None
        return self.process is not None and self.process.returncode is None

    def _args(self) -> list[str]:
        if self.running:
            raise RuntimeError("already running")
        if self.port and self.port != self.config.port:
            # keep the address the bridge knows across restarts
            self.config = replace(self.config, port=self.port)
            write_config(self.config)
        args = [sys.executable, *COMMAND, "--data-dir", str(self.data_dir)]
        return [*args, "--log-level", self.log_level]

    def _listening(self, info: dict[str, Any]) -> None:
        self.info = info
        self.url = str(info["url"])
        self.port = int(info["port"])

    # -- async

    async def start(self, *, within: float = 30.0) -> None:
        """Run the farmer (on the port it had before, if any) and wait until it listens."""
        args = self._args()
        with open(self.data_dir / LOG_FILE, "ab") as log:  # noqa: ASYNC230 - instant, local
            process = self.process = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        try:
            async with asyncio.timeout(within):
                assert process.stdout is not None
                while line := await process.stdout.readline():
                    if (info := _listening_line(line)) is not None:
                        return self._listening(info)
                await process.wait()
            raise FarmerStartError(
                f"farmer exited with {process.returncode}: {self.log_tail().strip()}"
            )
        except TimeoutError as exc:
            await self.kill()
            raise FarmerStartError(f"farmer did not listen in time: {self.log_tail()}") from exc
        except BaseException:
            await self.kill()
            raise

    async def stop(self, *, within: float = 15.0) -> int:
        """SIGTERM and wait (SIGKILL after `within` seconds); returns the exit code."""
        return await self._end(signal.SIGTERM, within)

    async def kill(self) -> int:
        """SIGKILL, as a crash or power cut would stop it; returns the exit code."""
        return await self._end(signal.SIGKILL, 15.0)

    async def _end(self, sig: signal.Signals, within: float) -> int:
        process = self.process
        if isinstance(process, subprocess.Popen):
            return await asyncio.to_thread(self._end_sync, sig, within)
        if process is None:
            return 0
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            try:
                async with asyncio.timeout(within):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        if process.stdout is not None:
            with contextlib.suppress(Exception):
                await process.stdout.read()
        return process.returncode or 0

    # -- blocking

    def start_sync(self, *, within: float = 30.0) -> None:
        """`start` for code without an event loop."""
        args = self._args()
        with open(self.data_dir / LOG_FILE, "ab") as log:
            process = self.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        try:
            self._listening(self._read_listening(process, time.monotonic() + within))
        except BaseException:
            self.kill_sync()
            raise

    def _read_listening(self, process: subprocess.Popen[bytes], deadline: float) -> dict[str, Any]:
        assert process.stdout is not None
        fd = process.stdout.fileno()
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise FarmerStartError(f"farmer did not listen in time: {self.log_tail()}")
                if not selector.select(remaining):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    process.wait()
                    raise FarmerStartError(
                        f"farmer exited with {process.returncode}: {self.log_tail().strip()}"
                    )
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if (info := _listening_line(line)) is not None:
                        return info

    def stop_sync(self, *, within: float = 15.0) -> int:
        return self._end_sync(signal.SIGTERM, within)

    def kill_sync(self) -> int:
        return self._end_sync(signal.SIGKILL, 15.0)

    def _end_sync(self, sig: signal.Signals, within: float) -> int:
        process = self.process
        if process is None:
            return 0
        if not isinstance(process, subprocess.Popen):
            raise RuntimeError("started with start(): stop it with stop() or kill()")
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            try:
                process.wait(within)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode or 0

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.data_dir / LOG_FILE).read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _listening_line(line: bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("event") == "listening":
        return message
    return None


def prepare_farmer(
    data_dir: Path,
    bridges: Sequence[TrustedBridge],
    *,
    allocated: int = 1 << 30,
    identity: Identity | None = None,
    difficulty: int = 0,
    **settings: Any,
) -> tuple[FarmerConfig, Identity]:
    """Write a data dir as `metadisk farmer setup` would; `settings` are `FarmerConfig` fields."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = FarmerConfig(
        data_dir=data_dir, allocated=allocated, bridges=tuple(bridges), **settings
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
