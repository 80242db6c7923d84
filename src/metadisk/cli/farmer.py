"""`metadisk farmer ...`: set up and run a storage node.

Every failure prints one line, ``error: ...``, on stderr and exits non-zero, without a traceback.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn
from urllib.error import URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

import click
import typer
from pydantic import ValidationError

from metadisk.allocator import tune_for_streaming
from metadisk.cli.humanize import ago, utc
from metadisk.core.encoding import b64decode
from metadisk.core.errors import DecodeError
from metadisk.core.identity import Identity, NodeId
from metadisk.farmer.config import (
    CONFIG_FILE,
    DISK_RESERVE,
    LISTEN_FILE,
    DashboardConfig,
    FarmerConfig,
    TrustedBridge,
    check_url,
    format_size,
    parse_size,
)
from metadisk.farmer.errors import FarmerError
from metadisk.farmer.setup import (
    read_config,
    read_identity,
    write_config,
    write_identity,
)
from metadisk.runtime import logs
from metadisk.runtime.tls import InsecureURL, bridge_context, check_transport
from metadisk.wire.api.nodes import BridgeInfo
from metadisk.wire.api.routes import BRIDGE_INFO
from metadisk.wire.dataplane.contract import (
    EXIT,
    STATUS,
    BridgeExit,
    ExitReport,
    ExitStart,
    NodeReport,
)
from metadisk.wire.errors import parse_error

if TYPE_CHECKING:
    from metadisk.farmer.standing import BridgeStanding

app = typer.Typer(help="Run a farmer: a storage node that rents out disk.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    """Add `metadisk farmer` to the root app."""
    root.add_typer(app, name="farmer")


LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one line and exit."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


DataDir = Annotated[
    Path | None, typer.Option("--data-dir", "-d", help="Directory for pieces, identity, config.")
]


@app.command()
def setup(
    data_dir: DataDir = None,
    allocate: Annotated[
        str | None, typer.Option(help="Disk space to rent out, e.g. 500GB or 2TiB.")
    ] = None,
    bridge: Annotated[
        list[str] | None,
        typer.Option(help="Trusted bridge URL, or NODEIDHEX@URL to pin its id. Repeatable."),
    ] = None,
    bridge_key: Annotated[
        list[str] | None,
        typer.Option(help="A pinned bridge's public key (base64url), if it is offline now."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on; 0 picks a free one.")] = 0,
    public_address: Annotated[
        str | None, typer.Option(help="URL bridges and clients reach this node at.")
    ] = None,
    difficulty: Annotated[
        int | None, typer.Option(help="Minimum proof-of-work bits for the node id.")
    ] = None,
    dashboard: Annotated[
        bool, typer.Option(help="Serve the web dashboard on a loopback port.")
    ] = True,
    dashboard_port: Annotated[
        int, typer.Option(help="The dashboard's port on 127.0.0.1; 0 picks a free one.")
    ] = 0,
    force: Annotated[bool, typer.Option(help="Rewrite an existing config.")] = False,
) -> None:
    """Create the node's identity and config in the data dir."""
    if data_dir is None:
        fail("missing --data-dir")
    if allocate is None:
        fail("missing --allocate (e.g. --allocate 500GB)")
    if not bridge:
        fail("missing --bridge (the URL of a bridge to trust)")
    try:
        allocated = parse_size(allocate)
    except ValueError as exc:
        fail(f"--allocate: {exc}")
    if allocated <= 0:
        fail("--allocate must be more than 0 bytes")
    if not 0 <= port <= 65535:
        fail(f"--port {port} is out of range")
    if not 0 <= dashboard_port <= 65535:
        fail(f"--dashboard-port {dashboard_port} is out of range")
    if difficulty is not None and not 0 <= difficulty <= 32:
        fail("--difficulty must be between 0 and 32")
    try:
        if public_address is not None:
            public_address = check_url(public_address)
    except ValueError as exc:
        fail(f"--public-address: {exc}")

    # everything local first, so a typo fails before any network round trip
    data_dir = data_dir.expanduser().absolute()
    config_path = data_dir / CONFIG_FILE
    if config_path.exists() and not force:
        fail(f"{config_path} exists; add --force to rewrite it")
    existing = next(p for p in (data_dir, *data_dir.parents) if p.exists())
    if not existing.is_dir():
        fail(f"data dir {data_dir}: {existing} is not a directory")
    stat = os.statvfs(existing)
    free = stat.f_bavail * stat.f_frsize
    if allocated > free - DISK_RESERVE:
        fail(f"--allocate {format_size(allocated)} is more than the {format_size(free)} free")
    keys = _parse_keys(bridge_key or [])
    parsed = [_parse_bridge(spec) for spec in bridge]

    bridges: list[TrustedBridge] = []
    needed = difficulty or 0
    for pinned in parsed:
        trusted, bridge_difficulty = _resolve_bridge(pinned, keys)
        bridges.append(trusted)
        needed = max(needed, bridge_difficulty)

    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create data dir {data_dir}: {exc.strerror}")
    if not os.access(data_dir, os.R_OK | os.W_OK | os.X_OK):
        fail(f"data dir {data_dir} is not readable and writable")

    try:
        config = FarmerConfig(
            data_dir=data_dir,
            allocated=allocated,
            bridges=tuple(bridges),
            host=host,
            port=port,
            public_address=public_address,
            dashboard=DashboardConfig(enabled=dashboard, port=dashboard_port),
        )
        identity_path = config.identity_path
        if identity_path.exists():
            identity = read_identity(data_dir)
            if identity.node_id.difficulty() < needed:
                fail(f"existing identity has difficulty {identity.node_id.difficulty()} < {needed}")
        else:
            if needed >= 16:
                typer.echo(f"generating an identity with difficulty {needed}...", err=True)
            identity = Identity.generate(needed)
            write_identity(data_dir, identity)
        write_config(config)
    except FarmerError as exc:
        fail(exc.message)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    typer.echo(f"node id    {identity.node_id.hex()}")
    typer.echo(f"config     {config_path}")
    typer.echo(f"allocated  {format_size(allocated)} for {len(bridges)} bridge(s)")


@app.command()
def run(
    data_dir: DataDir = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
    log_format: Annotated[str, typer.Option(help="text or json (one object a line).")] = "text",
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (at level info).")
    ] = False,
) -> None:
    """Run the node until interrupted (SIGINT or SIGTERM)."""
    if data_dir is None:
        fail("missing --data-dir")
    if log_level.lower() not in LOG_LEVELS:
        fail(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
    if log_format not in LOG_FORMATS:
        fail(f"--log-format must be one of {', '.join(LOG_FORMATS)}")
    level = log_level.lower()
    if access_log and level not in ("debug", "info"):
        level = "info"  # the access log is written at info: asking for it asks for that
    logs.configure(level, fmt="json" if log_format == "json" else "text")
    tune_for_streaming()
    data_dir = data_dir.expanduser().absolute()
    try:
        config = read_config(data_dir)
        identity = read_identity(data_dir)
        for bridge in config.bridges:
            check_transport(bridge.url)
        from metadisk.farmer.peer import serve  # aiohttp: only the commands that serve pay

        asyncio.run(serve(config, identity, access_log=access_log))
    except FarmerError as exc:
        fail(exc.message)
    except InsecureURL as exc:
        fail(f"bridge: {exc}")
    except KeyboardInterrupt:
        pass


@app.command()
def status(
    data_dir: DataDir = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each bridge.")] = 10.0,
) -> None:
    """Show the node's status (asked of it on the loopback interface) and its standing at each
    trusted bridge (asked of the bridge with a query signed by the node's key).

    Exits 1 if the node is not running, after showing its standing all the same: a node that is
    down is the one whose owner most needs to see its online score and suspension.
    """
    if data_dir is None:
        fail("missing --data-dir")
    if not timeout > 0:
        fail("--timeout must be more than 0 seconds")
    data_dir = data_dir.expanduser().absolute()
    try:
        config = read_config(data_dir)
        identity = read_identity(data_dir)
    except FarmerError as exc:
        fail(exc.message)
    not_running = ""
    try:
        listen = json.loads((data_dir / LISTEN_FILE).read_text())
        status, raw = _node_call(listen["local_url"] + STATUS, identity.node_id, timeout=5)
        if status != 200:
            raise ValueError(f"the node answered HTTP {status}")
        info = NodeReport.model_validate_json(raw)
    except (OSError, ValueError, KeyError) as exc:
        not_running = _first_line(exc)
        typer.echo(f"node      {identity.node_id.hex()}  (not running)")
    else:
        _show_report(info, time.time())
        if listen.get("dashboard_url"):
            typer.echo(f"dashboard {listen['dashboard_url']}  (this machine only)")

    from metadisk.farmer.standing import standings  # aiohttp: only the commands that go online pay

    now = time.time()
    for answer in asyncio.run(standings(identity, config.bridges, per_bridge=timeout)):
        _show_standing(answer, now)
    if not_running:
        fail(f"no running node found in {data_dir}: {not_running}")


def _show_report(info: NodeReport, now: float) -> None:
    typer.echo(f"node      {info.node_id}  ({info.address}, up {info.uptime:.0f} s)")
    typer.echo(
        f"space     {format_size(info.used)} used of {format_size(info.allocated)}, "
        f"{format_size(info.trash)} in the trash, {format_size(info.free)} free, "
        f"{info.pieces} pieces"
    )
    for bridge_id, usage in info.bridges.items():
        typer.echo(
            f"bridge    {bridge_id[:16]}  stored {format_size(usage.stored)}  "
            f"trash {format_size(usage.trash)}  "
            f"in {format_size(usage.bandwidth_in)}  out {format_size(usage.bandwidth_out)}"
        )
        if usage.last_collection_at is not None:
            typer.echo(
                f"  collected   {ago(usage.last_collection_at, now)} "
                f"({utc(usage.last_collection_at)}): {usage.last_collected or 0} of "
                f"{usage.last_checked or 0} pieces moved to the trash"
            )


def _show_standing(answer: BridgeStanding, now: float) -> None:
    head = f"standing  {answer.bridge.node_id.hex()[:16]}  {answer.bridge.url}"
    standing = answer.standing
    if standing is None:
        typer.echo(f"{head}  {_refusal(answer)}")
        return
    typer.echo(head)
    audits = f"{standing.audits} audits decided, {standing.audits_passed} passed"
    uptime = (
        "no checks yet"
        if standing.uptime is None
        else f"{standing.uptime:.1%} of the time the bridge watched it in the last 30 days"
    )
    last_seen = "never"
    if standing.last_seen is not None:
        last_seen = f"{ago(standing.last_seen, now)} ({utc(standing.last_seen)})"
    rows = [
        ("online", _yes(standing.online)),
        ("vetted", f"{_yes(standing.vetted)} ({audits})"),
        (
            "scores",
            f"audit {standing.audit_score:.3f}  unknown {standing.unknown_score:.3f}  "
            f"online {standing.online_score:.3f}",
        ),
        ("suspended", _yes(standing.suspended)),
        ("disqualified", _yes(standing.disqualified)),
        ("contained", _yes(standing.contained)),
        ("pieces", str(standing.pieces)),
        ("uptime", uptime),
        ("last seen", last_seen),
    ]
    for label, value in rows:
        typer.echo(f"  {label:<13} {value}")


def _refusal(answer: BridgeStanding) -> str:
    """Why a bridge showed no standing, for the farmer reading it, ending in the code."""
    code = answer.code or "error"
    if code == "node-not-found":
        said = "does not know this node: it never checked in there"
    elif code == "timeout":
        said = "did not answer in time"
    elif code in ("unreachable", "bad-answer", "clock-skew"):
        said = f"{code.replace('-', ' ')}: {answer.message}"
    else:
        said = f"refused the query: {answer.message}"
    return f"{said} [{code}]"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


@app.command(name="exit")
def exit_network(
    data_dir: DataDir = None,
    bridge: Annotated[
        str | None,
        typer.Option(help="Leave only this bridge (its node id, hex); default: every one."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask to confirm.")] = False,
) -> None:
    """Leave gracefully: the running node moves every piece it holds for the bridge(s) to
    other nodes, then deletes them here and stops checking in there. Irreversible.

    Shows the pieces moved until every bridge says exited (exit 0) or failed (exit 1). Stopping
    this command does not stop the exit: the node goes on, and resumes it after a restart.
    """
    if data_dir is None:
        fail("missing --data-dir")
    data_dir = data_dir.expanduser().absolute()
    try:
        config = read_config(data_dir)
    except FarmerError as exc:
        fail(exc.message)
    trusted = [b.node_id.hex() for b in config.bridges]
    if bridge is not None and bridge.lower() not in trusted:
        fail(f"--bridge {bridge}: not a trusted bridge of this node ({', '.join(trusted)})")
    leaving = [bridge.lower()] if bridge is not None else trusted
    try:
        listen = json.loads((data_dir / LISTEN_FILE).read_text())
        url, node_id = listen["local_url"] + EXIT, NodeId.from_hex(listen["node_id"])
    except (OSError, ValueError, KeyError, TypeError, DecodeError) as exc:
        fail(f"no running node found in {data_dir}: {_first_line(exc)}")
    if not yes:
        if not sys.stdin.isatty():  # nobody to ask: a script must say --yes
            fail("not confirmed: nothing was done (no terminal to ask on; add --yes)")
        which = "bridge " + leaving[0] if len(leaving) == 1 else f"all {len(leaving)} bridges"
        typer.echo(
            f"This node moves its pieces off {which}, deletes them and never serves them "
            "there again.",
            err=True,
        )
        try:
            confirmed = typer.confirm("Exit for good?", default=False, err=True)
        except (typer.Abort, click.exceptions.Abort):  # no answer (end of input), or ^C
            confirmed = False
        if not confirmed:
            fail("not confirmed: nothing was done (add --yes to skip the question)")
    start = ExitStart(bridge=NodeId.from_hex(leaving[0]) if bridge is not None else None)
    _exit_call(url, node_id, start.model_dump_json(exclude_none=True).encode())
    report = _watch_exit(url, node_id, leaving)
    failed = {b: report.bridges[b] for b in leaving if report.bridges[b].state != "exited"}
    for bridge_id in leaving:
        state = report.bridges[bridge_id]
        if state.state == "exited":
            typer.echo(f"exited    {bridge_id[:16]}  {state.transferred} pieces moved")
    if failed:
        bridge_id, state = next(iter(failed.items()))
        fail(f"the exit from {bridge_id[:16]} failed: {state.error or 'no reason given'}")


def _node_call(
    url: str, node_id: NodeId, *, body: bytes | None = None, timeout: float = 10.0
) -> tuple[int, bytes]:
    """GET, or POST `body`, to this machine's node; its status and body (at most 1 MiB).

    A TLS node must prove it is `node_id`: whatever else answers on its port gets nothing.
    """
    from metadisk.wire.dataplane.tls import pinned_connection  # loads aiohttp: only when used

    parts = urlsplit(url)
    connection = pinned_connection(url, node_id, timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request("POST" if body is not None else "GET", parts.path, body, headers)
        response = connection.getresponse()
        return response.status, response.read(1 << 20)
    finally:
        connection.close()


def _exit_call(url: str, node_id: NodeId, body: bytes | None = None) -> ExitReport:
    """POST (with `body`) or GET the node's exit route; one line and exit 1 if it fails."""
    try:
        status, raw = _node_call(url, node_id, body=body)
        if not 200 <= status < 300:
            detail = parse_error(raw)
            reason = f"{detail.message} [{detail.code}]" if detail else f"HTTP {status}"
            fail(f"the node refused: {reason}")
        return ExitReport.model_validate_json(raw)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        fail(f"the node stopped answering: {_first_line(exc)}")


def _watch_exit(url: str, node_id: NodeId, leaving: list[str]) -> ExitReport:
    """Poll the node until every bridge of `leaving` exited or failed, with a bar each."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as bars:
        tasks = {b: bars.add_task(f"exit {b[:16]}", total=None) for b in leaving}
        while True:
            report = _exit_call(url, node_id)
            states = [report.bridges.get(b) for b in leaving]
            for bridge_id, state in zip(leaving, states, strict=True):
                if state is not None:
                    completed, total = _exit_bar(state)
                    bars.update(tasks[bridge_id], completed=completed, total=total)
            if all(s is not None and s.state != "exiting" for s in states):
                return report
            time.sleep(0.5)


def _exit_bar(state: BridgeExit) -> tuple[int, int | None]:
    """Pieces dealt with (moved or lost) and of how many (None until the bridge answered)."""
    moved = state.transferred + state.failed
    if state.state == "exited":
        return moved, moved
    return moved, None if state.remaining is None else moved + state.remaining


@dataclass(frozen=True, slots=True)
class _Pinned:
    node_id: NodeId | None
    url: str


def _parse_bridge(spec: str) -> _Pinned:
    node_hex, at, url = spec.partition("@")
    if not at:
        node_hex, url = "", spec
    try:
        url = check_url(url)
        node_id = NodeId.from_hex(node_hex) if node_hex else None
        check_transport(url)
    except (ValueError, DecodeError) as exc:  # InsecureURL is a ValueError
        fail(f"--bridge {spec!r}: {exc}")
    return _Pinned(node_id, url)


def _parse_keys(specs: list[str]) -> dict[NodeId, bytes]:
    keys = {}
    for spec in specs:
        try:
            key = b64decode(spec)
            keys[NodeId.from_public_key(key)] = key
        except DecodeError as exc:
            fail(f"--bridge-key {spec!r}: {exc}")
    return keys


def _resolve_bridge(pinned: _Pinned, keys: dict[NodeId, bytes]) -> tuple[TrustedBridge, int]:
    """The bridge's identity and PoW difficulty, asked from the bridge or taken from the flags."""
    try:
        raw = _fetch(pinned.url + BRIDGE_INFO)
    except (OSError, URLError) as exc:
        if pinned.node_id is None or pinned.node_id not in keys:
            fail(
                f"bridge {pinned.url} is unreachable ({_reason(exc)}); "
                "give it as NODEIDHEX@URL with --bridge-key KEY to set up offline"
            )
        return TrustedBridge(pinned.node_id, keys[pinned.node_id], pinned.url), 0
    try:
        info = BridgeInfo.model_validate_json(raw)
        node_id, difficulty = info.node_id, info.difficulty
        trusted = TrustedBridge(node_id, info.public_key, pinned.url)
    except (ValidationError, ValueError, DecodeError) as exc:
        fail(f"bridge {pinned.url} sent a bad {BRIDGE_INFO} answer: {_first_line(exc)}")
    if pinned.node_id is not None and pinned.node_id != node_id:
        fail(f"bridge {pinned.url} is {node_id.hex()}, not the pinned {pinned.node_id.hex()}")
    if not 0 <= difficulty <= 32:
        fail(f"bridge {pinned.url} asks for an impossible difficulty {difficulty}")
    return trusted, difficulty


def _fetch(url: str) -> bytes:
    request = Request(url, headers={"Accept": "application/json"})  # noqa: S310 - http(s) checked
    tls = bridge_context() if url.startswith("https://") else None
    with urlopen(request, timeout=10, context=tls) as response:  # noqa: S310
        return bytes(response.read(1 << 20))


def _first_line(exc: BaseException) -> str:
    # Not cli.errors.one_line: that module loads the client library, which a farmer never needs.
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _reason(exc: BaseException) -> str:
    if isinstance(exc, URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


if __name__ == "__main__":
    app()
