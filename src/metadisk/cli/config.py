"""The CLI's configuration: one frozen dataclass, one private TOML file per config dir.

Only the CLI reads files and environment variables; the library gets a `ClientConfig` and a grant.
The config dir is, in order: ``--config-dir``, ``$METADISK_CONFIG_DIR``, the platform's user
config dir (``~/.config/metadisk`` on Linux). It holds::

    config.toml     the access grant (a bearer credential with encryption keys) and the account
                    used to manage API keys; mode 0600, in a 0700 directory
    session.json    a cached login token for the account API (0600), until it expires
    uploads/        resume state of interrupted uploads (no keys; see AsyncProject.upload)

``config.toml`` looks like this (``[client]`` is optional tuning of the library)::

    grant = "mdg1..."
    origin = "metadisk setup"

    [account]
    bridge_url = "http://127.0.0.1:7777"
    email = "ada@example.com"
    project_id = "4f6c..."

    [client]
    processes = false        # threads instead of worker processes for encryption and coding
    workers = 2
    piece_target = 262144    # bytes per piece: smaller segments (tests, slow links)
    download_hedge = 2       # pieces fetched beyond k per segment, the slowest cancelled
                             # (the default; 0 turns hedging off)
    stall_timeout = 5.0      # seconds a piece transfer may move no byte before it is given up
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from platformdirs import user_config_dir

from metadisk.cli.errors import UsageError
from metadisk.core.errors import DecodeError
from metadisk.core.grant import AccessGrant
from metadisk.runtime import files
from metadisk.runtime.files import private_dir

if TYPE_CHECKING:
    from metadisk.client import ClientConfig

ENV_CONFIG_DIR = "METADISK_CONFIG_DIR"
CONFIG_FILE = "config.toml"
SESSION_FILE = "session.json"
UPLOADS_DIR = "uploads"
# The [client] settings, in the order they are written.
TUNING = ("processes", "workers", "piece_target", "download_hedge", "stall_timeout")
MAX_HEDGE = 16
MAX_STALL = 3600.0  # seconds


@dataclass(frozen=True, slots=True)
class Account:
    """Where and as whom API keys are managed: the bridge, the login email and the project."""

    bridge_url: str
    email: str
    project_id: str


@dataclass(frozen=True, slots=True)
class ClientTuning:
    """Optional tuning of the client library; None keeps the library's default."""

    processes: bool | None = None
    workers: int | None = None
    piece_target: int | None = None
    download_hedge: int | None = None
    stall_timeout: float | None = None

    def client_config(self) -> ClientConfig:
        # Imported here, not above: the commands that never open a project (help, setup's
        # prompts, farmer, bridge) then never load the client's transfer pipelines.
        from metadisk.client import ClientConfig, DownloadConfig, SegmentSizing, TransportConfig

        sizing = SegmentSizing()
        if self.piece_target is not None:
            sizing = SegmentSizing(piece_target=self.piece_target)
        download = DownloadConfig()
        if self.download_hedge is not None:
            download = DownloadConfig(extra_pieces=self.download_hedge)
        transport = TransportConfig()
        if self.stall_timeout is not None:
            transport = TransportConfig(stall_timeout=self.stall_timeout)
        return ClientConfig(
            sizing=sizing,
            download=download,
            transport=transport,
            processes=self.processes,
            workers=self.workers,
        )


@dataclass(frozen=True, slots=True)
class CliConfig:
    """Everything the CLI keeps between runs."""

    grant: str | None = None
    account: Account | None = None
    client: ClientTuning = field(default_factory=ClientTuning)
    origin: str = ""  # what wrote it ("metadisk setup", "metadisk up ..."): shown in messages

    def access_grant(self, config_dir: Path) -> AccessGrant:
        """The parsed grant, or a usage error that says how to get one."""
        if self.grant is None:
            raise UsageError(
                f"no access grant in {config_dir / CONFIG_FILE}; "
                "run 'metadisk setup' (or 'metadisk setup --grant GRANT')"
            )
        try:
            return AccessGrant.parse(self.grant)
        except DecodeError as exc:
            path = config_dir / CONFIG_FILE
            raise UsageError(f"the grant in {path} is malformed: {exc}") from exc


def config_dir(flag: Path | None, environ: Mapping[str, str]) -> Path:
    """The config dir: the flag, then ``$METADISK_CONFIG_DIR``, then the platform default."""
    if flag is not None:
        return flag.expanduser()
    from_env = environ.get(ENV_CONFIG_DIR)
    if from_env:
        return Path(from_env).expanduser()
    return Path(user_config_dir("metadisk"))


def load(directory: Path) -> CliConfig:
    """The config in `directory`; an empty one if there is no file yet."""
    path = directory / CONFIG_FILE
    # What an older version, or a hand, left open to other users is closed before it is read.
    for private in (directory, path, directory / SESSION_FILE):
        files.tighten(private)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return CliConfig()
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: {exc}") from exc
    try:
        return _from_toml(raw)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{path}: {exc}") from exc


def save(directory: Path, config: CliConfig) -> Path:
    """Write the config privately (0600 file in a 0700 dir), atomically; returns its path."""
    return write_private(directory / CONFIG_FILE, _to_toml(config))


def write_private(path: Path, text: str) -> Path:
    """Write `text` to `path` with mode 0600 through a temporary file and a rename.

    The file is created 0600 before any byte is written, so a secret is never readable by
    others, not even for a moment; the rename means a crash leaves the old file or the new one.
    """
    private_dir(path.parent)
    return files.write_private(path, text)


def _from_toml(raw: Mapping[str, Any]) -> CliConfig:
    known = {"grant", "origin", "account", "client"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown setting {unknown[0]!r}")
    grant = _optional(raw, "grant", str)
    origin = _optional(raw, "origin", str) or ""
    account = None
    if "account" in raw:
        table = _table(raw, "account")
        account = Account(
            bridge_url=_required(table, "account", "bridge_url", str),
            email=_required(table, "account", "email", str),
            project_id=_required(table, "account", "project_id", str),
        )
    client = ClientTuning()
    if "client" in raw:
        table = _table(raw, "client")
        extra = sorted(set(table) - set(TUNING))
        if extra:
            raise ValueError(f"unknown setting [client] {extra[0]!r}")
        workers = _optional(table, "workers", int)
        piece_target = _optional(table, "piece_target", int)
        hedge = _optional(table, "download_hedge", int)
        stall = _optional(table, "stall_timeout", float)
        if workers is not None and workers < 1:
            raise ValueError("[client] workers must be at least 1")
        if piece_target is not None and piece_target < 1:
            raise ValueError("[client] piece_target must be at least 1")
        if hedge is not None and not 0 <= hedge <= MAX_HEDGE:
            raise ValueError(f"[client] download_hedge must be 0 to {MAX_HEDGE}")
        if stall is not None and not 0 < stall <= MAX_STALL:
            raise ValueError(f"[client] stall_timeout must be above 0 and at most {MAX_STALL}")
        processes = _optional(table, "processes", bool)
        client = ClientTuning(processes, workers, piece_target, hedge, stall)
    return CliConfig(grant=grant, account=account, client=client, origin=origin)


def _table(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    table = raw[name]
    if not isinstance(table, dict):
        raise ValueError(f"[{name}] must be a table")
    return table


def _optional(table: Mapping[str, Any], key: str, kind: type) -> Any:
    value = table.get(key)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # "stall_timeout = 5" means 5.0
    # bool is an int in Python; a "workers = true" typo must not pass as 1
    if value is not None and (not isinstance(value, kind) or (kind is int and value is True)):
        raise ValueError(f"{key} must be {kind.__name__}")
    return value


def _required(table: Mapping[str, Any], section: str, key: str, kind: type) -> Any:
    if key not in table:
        raise ValueError(f"[{section}] needs {key}")
    return _optional(table, key, kind)


def _to_toml(config: CliConfig) -> str:
    # json.dumps gives a valid TOML basic string for any text (same escapes).
    lines = [
        "# metadisk CLI configuration. Keep it private: the grant holds encryption keys.",
    ]
    if config.grant is not None:
        lines.append(f"grant = {json.dumps(config.grant)}")
    if config.origin:
        lines.append(f"origin = {json.dumps(config.origin)}")
    if config.account is not None:
        lines += [
            "",
            "[account]",
            f"bridge_url = {json.dumps(config.account.bridge_url)}",
            f"email = {json.dumps(config.account.email)}",
            f"project_id = {json.dumps(config.account.project_id)}",
        ]
    tuning = config.client
    values = {key: getattr(tuning, key) for key in TUNING}
    if any(v is not None for v in values.values()):
        lines += ["", "[client]"]
        for key, value in values.items():
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif value is not None:
                lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"
