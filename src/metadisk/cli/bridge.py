"""`metadisk bridge ...`: run the bridge (the JSON API that keeps the map) and its workers.

`run` is a whole bridge in one process; `api` serves the JSON API only and `worker` runs only the
background chores, so that any number of each can share one PostgreSQL database.

Configuration, lowest precedence first: built-in defaults, a TOML file (``--config``), environment
variables, command-line flags. Every scalar setting has an environment variable named
``METADISK_BRIDGE_<SECTION>_<FIELD>`` (for example ``METADISK_BRIDGE_DATABASE_URL``,
``METADISK_BRIDGE_NODES_DIFFICULTY``, ``METADISK_BRIDGE_NODES_SINGLE_HOST``); top-level ones drop
the section (``METADISK_BRIDGE_DATA_DIR``, ``METADISK_BRIDGE_LOG_LEVEL``). The TOML file has the
same shape as `metadisk.bridge.config.BridgeConfig`; redundancy profiles go in
``[objects.profiles.NAME]`` tables with k, m, o, n.

On start a bridge process migrates its database, binds, writes its URL to ``<data-dir>/bridge.url``
(API processes) and prints one JSON line ``{"event": "listening", "url": ..., "node_id": ...}`` on
stdout (a worker's url is its ``/metrics`` listener).
"""

from __future__ import annotations

import dataclasses
import os
import time
import tomllib
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from platformdirs import user_data_dir

from metadisk.bridge.config import (
    AccountsConfig,
    BridgeConfig,
    ChoresConfig,
    DatabaseConfig,
    HealthConfig,
    Limits,
    NodesConfig,
    ObjectsConfig,
    RepairConfig,
    Role,
    ServerConfig,
    WorkerConfig,
    sqlite_url,
)
from metadisk.core.erasure import RedundancyScheme
from metadisk.core.errors import ErasureError
from metadisk.runtime import logs
from metadisk.wire.api.routes import ADMIN_HEALTH, ADMIN_NODES

if TYPE_CHECKING:
    from metadisk.wire.api.nodes import NetworkHealth, NodeStanding

app = typer.Typer(help="Run a bridge: the metadata and accounts service.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    """Add `metadisk bridge` to the root app."""
    root.add_typer(app, name="bridge")


ENV_PREFIX = "METADISK_BRIDGE_"
_SECTIONS: dict[str, type] = {
    "database": DatabaseConfig,
    "server": ServerConfig,
    "accounts": AccountsConfig,
    "nodes": NodesConfig,
    "objects": ObjectsConfig,
    "chores": ChoresConfig,
    "health": HealthConfig,
    "repair": RepairConfig,
    "worker": WorkerConfig,
}


class ConfigError(Exception):
    pass


ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML configuration file.")
]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Identity, SQLite database and bridge.url.")
]


def _api_command(role: Role) -> Callable[..., None]:
    """The command that runs API processes of `role` (`run`: with the chores, `api`: without)."""

    def command(
        config_file: ConfigOption = None,
        data_dir: DataDirOption = None,
        host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
        port: Annotated[int | None, typer.Option(help="Port; 0 picks a free one.")] = None,
        database: Annotated[str | None, typer.Option(help="SQLAlchemy database URL.")] = None,
        workers: Annotated[
            int | None, typer.Option(help="API processes sharing the socket.")
        ] = None,
    ) -> None:
        flags: dict[str, dict[str, Any]] = {
            "server": {"host": host, "port": port, "workers": workers},
            "database": {"url": database},
        }
        _serve(_config_or_exit(config_file, data_dir, flags), role)

    return command


app.command(
    "run", help="Run a whole bridge in one process (the JSON API and the background chores)."
)(_api_command("both"))
app.command(
    "api", help="Run the bridge's JSON API only; `metadisk bridge worker` runs the chores."
)(_api_command("api"))


@app.command()
def worker(
    config_file: ConfigOption = None,
    data_dir: DataDirOption = None,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy database URL.")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Port of its /metrics; 0 picks a free one.")
    ] = None,
) -> None:
    """Run the bridge's background chores (upload reclaim, piece deletes) only; any number of
    workers share the work through the database."""
    flags: dict[str, dict[str, Any]] = {
        "worker": {"port": metrics_port},
        "database": {"url": database},
    }
    _serve(_config_or_exit(config_file, data_dir, flags), "worker")


@app.command()
def migrate(
    config_file: ConfigOption = None,
    data_dir: DataDirOption = None,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy database URL.")] = None,
) -> None:
    """Bring the database schema up to date (also done on every start)."""
    from metadisk.bridge import admin

    config = _config_or_exit(config_file, data_dir, {"database": {"url": database}})
    try:
        revision = admin.migrate(config)
    except Exception as exc:
        _fail(f"cannot migrate the database: {_one_line(exc)}")
    typer.echo(f"database at revision {revision}")


@app.command()
def disqualify(
    node_id: Annotated[str, typer.Argument(help="Hex node id.")],
    config_file: ConfigOption = None,
    data_dir: DataDirOption = None,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy database URL.")] = None,
) -> None:
    """Disqualify a node: it gets no new pieces and is skipped for downloads."""
    from metadisk.bridge import admin

    config = _config_or_exit(config_file, data_dir, {"database": {"url": database}})
    try:
        raw = bytes.fromhex(node_id)
    except ValueError:
        _fail("a node id is 64 hex digits")
    changed = admin.disqualify(config, raw, int(time.time()))
    typer.echo("disqualified" if changed else "no such node, or already disqualified")


@app.command()
def nodes(
    config_file: ConfigOption = None,
    data_dir: DataDirOption = None,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy database URL.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help=f"JSON, as GET {ADMIN_NODES} answers it.")
    ] = False,
) -> None:
    """Every node with its standing: online, vetted, scores, suspension, pieces, last seen.

    Reads the bridge's database directly (the bridge may be running or not); `GET
    /v1/admin/nodes` answers the same over HTTP with the admin token.
    """
    from metadisk.bridge import admin
    from metadisk.core.identity import NodeId
    from metadisk.wire.api.nodes import NodeStanding, NodeTable

    config = _config_or_exit(config_file, data_dir, {"database": {"url": database}})
    now = int(time.time())
    try:
        views = admin.node_table(config, now)
    except admin.NotReady as exc:
        _fail(str(exc))
    except Exception as exc:
        _fail(f"cannot read the node table: {_one_line(exc)}")
    # The admin route's own model: the same field names in both places, one serializer.
    table = NodeTable(
        nodes=[
            NodeStanding.model_validate({**dataclasses.asdict(v), "node_id": NodeId(v.node_id)})
            for v in views
        ]
    )
    if as_json:
        typer.echo(table.model_dump_json(indent=2))
        return
    _print_nodes(table.nodes, now)


@app.command()
def health(
    config_file: ConfigOption = None,
    data_dir: DataDirOption = None,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy database URL.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help=f"JSON, as GET {ADMIN_HEALTH} answers it.")
    ] = False,
) -> None:
    """Stored segments' health: injured (queued for repair), lost (below k), repaired.

    Reads the bridge's database directly; `GET /v1/admin/health` answers the same over HTTP
    with the admin token.
    """
    from metadisk.bridge import admin
    from metadisk.wire.api.nodes import NetworkHealth, QueuedSets

    config = _config_or_exit(config_file, data_dir, {"database": {"url": database}})
    try:
        summary = admin.network_health(config)
    except admin.NotReady as exc:
        _fail(str(exc))
    except Exception as exc:
        _fail(f"cannot read the network's health: {_one_line(exc)}")
    report = NetworkHealth(
        checked_at=summary.checked_at,
        piece_sets=summary.piece_sets,
        injured=summary.injured,
        lost=summary.lost,
        repaired=summary.repaired,
        queue=[QueuedSets(healthy=h, sets=n) for h, n in sorted(summary.queued.items())],
    )
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    _print_health(report, int(time.time()))


def _print_health(report: NetworkHealth, now: int) -> None:
    from metadisk.cli.humanize import ago

    if report.checked_at is None:
        typer.echo("the repair checker has not finished a pass yet")
        return
    typer.echo(f"checked      {ago(report.checked_at, now)}")
    typer.echo(f"piece sets   {report.piece_sets}  (one per stored segment; copies share them)")
    typer.echo(f"injured      {report.injured}  (at or below the repair threshold: repairing)")
    typer.echo(f"lost         {report.lost}  (below k healthy pieces)")
    typer.echo(f"repaired     {report.repaired}  (in total)")
    for queued in report.queue:
        typer.echo(f"  queued with {queued.healthy} healthy pieces: {queued.sets}")


def _print_nodes(standings: list[NodeStanding], now: int) -> None:
    from rich.console import Console
    from rich.table import Table

    from metadisk.cli.humanize import ago

    # Piped (a script, a log), Rich would assume 80 columns and cut rows: give it room.
    piped = not Console().is_terminal
    out = Console(highlight=False, markup=False, soft_wrap=True, width=200 if piped else None)
    if not standings:
        out.print("no nodes have checked in with this bridge")
        return
    table = Table(box=None, pad_edge=False)
    columns = ("node", "address", "online", "vetted", "audit", "online score", "suspended",
               "disqualified", "pieces", "last seen")  # fmt: skip
    for column in columns:
        numeric = column in ("audit", "online score", "pieces")
        table.add_column(column, no_wrap=True, justify="right" if numeric else "left")
    for node in standings:
        table.add_row(
            node.node_id.hex()[:16],
            node.address,
            _yes(node.online),
            _yes(node.vetted),
            f"{node.audit_score:.3f}",
            f"{node.online_score:.3f}",
            _yes(node.suspended),
            _yes(node.disqualified),
            str(node.pieces),
            ago(node.last_seen, now),
        )
    out.print(table)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


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
    known = {"data_dir", "log_level", "log_format", *_SECTIONS}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})")

    top_dir = _pick(raw.get("data_dir"), environ.get(ENV_PREFIX + "DATA_DIR"), data_dir)
    resolved_dir = (
        Path(top_dir) if top_dir is not None else Path(user_data_dir("metadisk")) / "bridge"
    )
    log_level = str(_pick(raw.get("log_level", "info"), environ.get(ENV_PREFIX + "LOG_LEVEL")))
    log_format = str(_pick(raw.get("log_format", "text"), environ.get(ENV_PREFIX + "LOG_FORMAT")))
    if log_format not in ("text", "json"):
        raise ConfigError(f"log_format must be text or json, not {log_format!r}")

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
            log_format=log_format,
            database=DatabaseConfig(**sections["database"]),
            server=ServerConfig(**sections["server"]),
            accounts=AccountsConfig(**sections["accounts"]),
            nodes=NodesConfig(**sections["nodes"]),
            objects=ObjectsConfig(**sections["objects"]),
            chores=ChoresConfig(**sections["chores"]),
            health=HealthConfig(**sections["health"]),
            repair=RepairConfig(**sections["repair"]),
            worker=WorkerConfig(**sections["worker"]),
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


def _serve(config: BridgeConfig, role: Role) -> None:
    from metadisk.bridge.peer import ServeError, serve

    logs.configure(config.log_level, fmt="json" if config.log_format == "json" else "text")
    try:
        serve(config, role)
    except ServeError as exc:
        _fail(str(exc))


if __name__ == "__main__":  # python -m metadisk.cli.bridge: without the other roles' CLIs
    app()
