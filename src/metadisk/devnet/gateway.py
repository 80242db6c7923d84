"""Start a real S3 gateway process (``metadisk gateway run``) for tests, benchmarks and `up`.

The gateway's config file holds its credential pairs; the launcher writes it, starts the process
with port 0 (or the port asked) and reads the listening line for its URL. Example::

    gateway = GatewayProcess(root / "gateway", [new_credential(grant)])
    await gateway.start()
    ...  # S3 clients use gateway.url with gateway.credentials
    await gateway.stop()
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from metadisk.gateway.config import CONFIG_FILE, Credential, GatewayConfig, load, save
from metadisk.runtime.files import private_dir
from metadisk.runtime.process import ChildProcess

LOG_FILE = "gateway.log"
CLI_DIR = "cli"


def saved_config(root: Path) -> GatewayConfig | None:
    """The config a gateway under `root` ran with before, if any."""
    path = root / CONFIG_FILE
    return load(path, {}) if path.exists() else None


class GatewayProcess:
    """One gateway process serving `credentials`, its files under `root`.

    `config_dir` is the CLI config dir it runs with, whose ``[client]`` table tunes the
    gateway's library (tests use small pieces and threads); None: an empty one under `root`.
    `env` is added to its environment. The first start saves the port it got, so a later
    process on the same `root` listens on the same one.
    """

    def __init__(
        self,
        root: Path,
        credentials: Sequence[Credential],
        *,
        port: int = 0,
        region: str = "us-east-1",
        config_dir: Path | None = None,
        log_level: str = "warning",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root
        self.credentials = tuple(credentials)
        self.config = GatewayConfig(self.credentials, port=port, region=region)
        self.url = ""
        self.port = port
        self.files_url: str | None = None  # the file manager's URL with the run's token
        private_dir(root)
        save(root / CONFIG_FILE, self.config)
        cli_dir = config_dir if config_dir is not None else private_dir(root / CLI_DIR)
        args = [
            sys.executable, "-m", "metadisk.cli.entry", "--config-dir", str(cli_dir),
            "--log-level", log_level, "gateway", "run", "--config", str(root / CONFIG_FILE),
            "--port", str(port),
        ]  # fmt: skip
        self._child = ChildProcess("gateway", args, log_path=root / LOG_FILE, env=env)

    @property
    def pid(self) -> int:
        return self._child.pid

    @property
    def running(self) -> bool:
        return self._child.running

    async def start(self, *, within: float = 60.0) -> None:
        self._listening(await self._child.start(within=within))

    def _listening(self, info: Mapping[str, object]) -> None:
        self.url, self.port = str(info["url"]), int(str(info["port"]))
        files = info.get("files")
        self.files_url = str(files) if files else None
        if self.config.port != self.port:
            # Kept, so a restart (and the next run) serves clients on the same port.
            self.config = replace(self.config, port=self.port)
            save(self.root / CONFIG_FILE, self.config)
            self._child.args[-1] = str(self.port)

    async def stop(self, *, within: float = 15.0) -> int | None:
        return await self._child.stop(within=within)

    async def kill(self) -> int | None:
        return await self._child.kill()

    def start_sync(self, *, within: float = 60.0) -> None:
        self._listening(self._child.start_sync(within=within))

    def stop_sync(self, *, within: float = 15.0) -> int | None:
        return self._child.stop_sync(within=within)

    def log_tail(self, lines: int = 40) -> str:
        return self._child.log_tail(lines)
