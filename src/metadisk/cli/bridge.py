"""`metadisk bridge ...`: run the bridge (the JSON API that keeps the map).

Configuration, lowest precedence first: built-in defaults, a TOML file (``--config``), environment
variables, command-line flags. Every scalar setting has an environment variable named
``METADISK_BRIDGE_<SECTION>_<FIELD>`` (for example ``METADISK_BRIDGE_DATABASE_URL``,
``METADISK_BRIDGE_NODES_DIFFICULTY``, ``METADISK_BRIDGE_NODES_SINGLE_HOST``); top-level ones drop
the section (``METADISK_BRIDGE_DATA_DIR``, ``METADISK_BRIDGE_LOG_LEVEL``). The TOML file has the
same shape as `metadisk.bridge.config.BridgeConfig`; redundancy profiles go in
``[objects.profiles.NAME]`` tables with k, m, o, n.

On start the bridge migrates its database, binds, writes its URL to ``<data-dir>/bridge.url`` and
prints one JSON line ``{"event": "listening", "url": ..., "node_id": ...}`` on stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import errno
import json
import logging
import os
import signal
import socket
import sys
import time
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from platformdirs import user_data_dir

from metadisk.bridge.config import (
    AccountsConfig,
    BridgeConfig,
    ChoresConfig,
    DatabaseConfig,
    Limits,
    NodesConfig,
    ObjectsConfig,
    ServerConfig,
    sqlite_url,
)
from metadisk.core.erasure import RedundancyScheme
from metadisk.core.errors import ErasureError

app = typer.Typer(help="Run a bridge: the metadata and accounts service.", no_args_is_help=True)

ENV_PREFIX = "METADISK_BRIDGE_"
_SECTIONS: dict[str, type] = {
    "database": DatabaseConfig,
    "server": ServerConfig,
    "accounts": AccountsConfig,
    "nodes": NodesConfig,
    "objects": ObjectsConfig,
    "chores": ChoresConfig,
}


class ConfigError(Exception):
    pass


ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML configuration file.")
]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Identity, SQLite database and bridge.url.")
]


@app.command()
def run(
    config_file: ConfigOption = None,
    data_dir: DataDirOption = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port; 0 picks a free one.")] = None,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy database URL.")] = None,
    workers: Annotated[int | None, typer.Option(help="Processes sharing the socket.")] = None,
) -> None:
    """Run the bridge API and its background chores until interrupted."""
    config = _config_or_exit(
        config_file,
        data_dir,
        {"server": {"host": host, "port": port, "workers": workers}, "database": {"url": database}},
    )
    _serve(config)


@app.command()
def migrate(
    config_file: ConfigOption = None,
    data_dir: DataDirOption = None,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy database URL.")] = None,
) -> None:
    """Bring the database schema up to date (also done on every start)."""
    from metadisk.bridge.db.engine import Database
    from metadisk.bridge.db.migrate import current_revision, upgrade

    config = _config_or_exit(config_file, data_dir, {"database": {"url": database}})
    db = Database(config.database)
    try:
        upgrade(db)
        typer.echo(f"database at revision {current_revision(db)}")
    except Exception as exc:
        _fail(f"cannot migrate the database: {_one_line(exc)}")
    finally:
        db.close()


@app.command()
def disqualify(
    node_id: Annotated[str, typer.Argument(help="Hex node id.")],
    config_file: ConfigOption = None,
    data_dir: DataDirOption = None,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy database URL.")] = None,
) -> None:
    """Disqualify a node: it gets no new pieces and is skipped for downloads."""
    from metadisk.bridge.db.engine import Database
    from metadisk.bridge.db.overlay import OverlayStore

    config = _config_or_exit(config_file, data_dir, {"database": {"url": database}})
    try:
        raw = bytes.fromhex(node_id)
    except ValueError:
        _fail("a node id is 64 hex digits")
    db = Database(config.database)
    try:
        changed = OverlayStore(db).disqualify(raw, int(time.time()))
    finally:
        db.close()
    typer.echo("disqualified" if changed else "no such node, or already disqualified")


# -- configuration ---------------------------------------------------------------------------


def load_config(
    config_file: Path | None,
    data_dir: Path | None,
    flags: Mapping[str, Mapping[str, Any]],
    environ: Mapping[str, str],
) -> BridgeConfig:
    """Defaults < TOML file < environment < flags; `ConfigError` with one line on any mistake."""
    raw: dict[str, Any] = {}
    if config_file is not None:
        try:
            raw = tomllib.loads(config_file.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read {config_file}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_file}: {exc}") from exc
    known = {"data_dir", "log_level", *_SECTIONS}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})")

    top_dir = _pick(raw.get("data_dir"), environ.get(ENV_PREFIX + "DATA_DIR"), data_dir)
    resolved_dir = (
        Path(top_dir) if top_dir is not None else Path(user_data_dir("metadisk")) / "bridge"
    )
    log_level = str(_pick(raw.get("log_level", "info"), environ.get(ENV_PREFIX + "LOG_LEVEL")))

    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"[{name}] must be a table")
        sections[name] = _section(name, cls, table, environ, flags.get(name, {}))
    if "url" not in sections["database"]:
        sections["database"]["url"] = sqlite_url(resolved_dir)
    try:
        return BridgeConfig(
            data_dir=resolved_dir,
            log_level=log_level,
            database=DatabaseConfig(**sections["database"]),
            server=ServerConfig(**sections["server"]),
            accounts=AccountsConfig(**sections["accounts"]),
            nodes=NodesConfig(**sections["nodes"]),
            objects=ObjectsConfig(**sections["objects"]),
            chores=ChoresConfig(**sections["chores"]),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc


def _pick(*values: Any) -> Any:
    """The last value that is not None."""
    chosen = None
    for value in values:
        if value is not None:
            chosen = value
    return chosen


def _section(
    name: str,
    cls: type,
    table: Mapping[str, Any],
    environ: Mapping[str, str],
    flags: Mapping[str, Any],
) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - fields)
    if unknown:
        raise ConfigError(f"unknown setting [{name}] {unknown[0]!r}")
    values: dict[str, Any] = {}
    for field in sorted(fields):
        hint = hints[field]
        if field in table:
            values[field] = _from_file(name, field, hint, table[field])
        env_name = f"{ENV_PREFIX}{name.upper()}_{field.upper()}"
        if env_name in environ:
            values[field] = _from_text(env_name, hint, environ[env_name])
        if flags.get(field) is not None:
            values[field] = flags[field]
    return values


def _from_file(section: str, field: str, hint: Any, value: Any) -> Any:
    where = f"[{section}] {field}"
    if hint is Limits:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table")
        allowed = {f.name for f in dataclasses.fields(Limits)}
        if set(value) - allowed or not all(_is_int(v) for v in value.values()):
            raise ConfigError(f"{where} takes integer {', '.join(sorted(allowed))}")
        return Limits(**value)
    if field == "profiles":
        if not isinstance(value, dict) or not value:
            raise ConfigError(f"{where} must be tables of k, m, o, n")
        profiles = {}
        for profile, params in value.items():
            if not isinstance(params, dict) or set(params) != {"k", "m", "o", "n"}:
                raise ConfigError(f"{where}.{profile} needs exactly k, m, o, n")
            if not all(_is_int(v) for v in params.values()):
                raise ConfigError(f"{where}.{profile}: k, m, o, n are integers")
            try:
                profiles[str(profile)] = RedundancyScheme(**params)
            except ErasureError as exc:
                raise ConfigError(f"{where}.{profile}: {exc}") from exc
        return profiles
    expected = {int: _is_int, float: _is_number, bool: _is_bool, str: _is_str}.get(hint)
    if expected is None or not expected(value):
        raise ConfigError(f"{where} must be {getattr(hint, '__name__', hint)}")
    return float(value) if hint is float else value


def _from_text(env_name: str, hint: Any, text: str) -> Any:
    try:
        if hint is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
        if hint is str:
            return text
    except ValueError:
        raise ConfigError(
            f"{env_name}={text!r} is not a valid {getattr(hint, '__name__', hint)}"
        ) from None
    raise ConfigError(f"{env_name} cannot be set from the environment; use the config file")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _config_or_exit(
    config_file: Path | None, data_dir: Path | None, flags: Mapping[str, Mapping[str, Any]]
) -> BridgeConfig:
    try:
        return load_config(config_file, data_dir, flags, os.environ)
    except ConfigError as exc:
        _fail(f"configuration error: {exc}", code=2)


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)  # the same one line as every other command
    raise typer.Exit(code)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


# -- serving ---------------------------------------------------------------------------------


def _serve(config: BridgeConfig) -> None:
    from metadisk.bridge.db.engine import Database
    from metadisk.bridge.db.migrate import upgrade
    from metadisk.bridge.identity import IdentityError, load_or_create

    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per start is noise
    if config.server.workers < 1:
        _fail("configuration error: [server] workers must be at least 1", code=2)
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        identity = load_or_create(config.identity_path)
    except (OSError, IdentityError) as exc:
        _fail(f"cannot use data directory {config.data_dir}: {exc}")
    # Bind first: a port in use fails at once, before the database is touched.
    # Several workers: one SO_REUSEPORT socket each, so that the kernel spreads connections over
    # them (on one shared socket the first worker to wake accepts a whole burst of keep-alive
    # connections, and the others idle).
    reuse_port = config.server.workers > 1 and hasattr(socket, "SO_REUSEPORT")
    sock = _bind(config.server.host, config.server.port, reuse_port)
    # Migrate on a short-lived engine: worker processes must not inherit its connections.
    db = Database(config.database)
    try:
        upgrade(db)
    except Exception as exc:
        sock.close()
        _fail(f"cannot open the database: {_one_line(exc)}")
    finally:
        db.close()
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port}"
    config.url_path.write_text(url + "\n")
    print(
        json.dumps({"event": "listening", "url": url, "node_id": identity.node_id.hex()}),
        flush=True,
    )
    children = [
        _fork_worker(config, sock, (host, port) if reuse_port else None)
        for _ in range(config.server.workers - 1)
    ]
    try:
        _run_worker(config, sock)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every response waits out delayed ACKs (about 10x fewer requests per second).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        _fail(f"cannot listen on {host}:{port}: {reason}")
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _fork_worker(
    config: BridgeConfig, sock: socket.socket, own_address: tuple[str, int] | None
) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        _die_with_parent()
        if own_address is not None:
            sock.close()  # the parent's: this worker accepts on a socket of its own
            sock = _bind(*own_address, reuse_port=True)
        _run_worker(config, sock)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _run_worker(config: BridgeConfig, sock: socket.socket) -> None:
    from metadisk.bridge.identity import load_or_create
    from metadisk.bridge.peer import Bridge

    # uvicorn handles SIGINT/SIGTERM while serving and re-raises the signal once it has shut
    # down; by then there is nothing left to interrupt, so let the process end normally (exit 0,
    # and the first process still stops its workers).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    bridge = Bridge(config, load_or_create(config.identity_path))
    asyncio.run(bridge.run([sock]))


def _die_with_parent() -> None:
    """Linux: a worker gets SIGTERM when the first process dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


if __name__ == "__main__":  # python -m metadisk.cli.bridge: without the other roles' CLIs
    app()
