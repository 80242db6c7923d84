"""`metadisk up`: a whole local network in one command, ready for the CLI.

It runs a bridge (SQLite, single-host mode, no proof of work) and N farmers as real processes on
127.0.0.1 (see `metadisk.devnet.network`), waits until every farmer is online at the bridge, makes
an account, a project, an API key and a random root key on the first run, and writes a ready
access grant where the CLI finds it. Ctrl-C or SIGTERM stops every process it started (SIGTERM,
then SIGKILL after a timeout). Everything lives in one data dir, ``./.metadisk`` by default::

    .metadisk/
      bridge/            the bridge's identity, SQLite database (+ WAL) and log
      farmers/farmer-NN/ each farmer's identity, config, pieces and log
      cli/config.toml    the CLI config for this network: grant, account, project (0600)
      gateway/           the S3 gateway's config (its credentials, 0600), state and log
      network.json       what later runs reuse: account email, project, grant (0600); never
                         the password, shown once on the first run
      running.json       while running: every process's pid and URL (removed on stop)
      up.lock            held while `metadisk up` runs, so two never share a data dir

A second run reuses all of it: the same bridge port, identities, account, grant and objects.
The grant is also written to the CLI's own config dir (``--config-dir``, then
``$METADISK_CONFIG_DIR``, then the user config dir) if that holds no grant yet or one written by
`metadisk up` for the same data dir, so plain ``metadisk ls`` works at once; a config set up for
another network is left alone, and `up` prints the ``--config-dir`` to use instead.

While it runs it keeps the farmers running (`metadisk.devnet.supervisor`): a farmer that exits
is said on stdout and started again after a pause that grows while it keeps failing, unless
``--no-restart``; farmers that ``metadisk up --add-farmers N`` puts in the data dir are started
and join the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from metadisk.cli import config as cfg
from metadisk.cli.context import CliContext, current, run, stderr
from metadisk.cli.errors import CliError, UsageError
from metadisk.client import Conflict
from metadisk.core.encoding import b64decode, b64encode
from metadisk.core.errors import DecodeError
from metadisk.core.grant import AccessGrant
from metadisk.core.identity import NodeId
from metadisk.farmer.config import TrustedBridge, parse_size
from metadisk.runtime.files import private_dir

if TYPE_CHECKING:  # the network brings the bridge's database stack: load it only to run one
    from metadisk.devnet.gateway import GatewayProcess
    from metadisk.devnet.network import LocalNetwork

DEFAULT_DATA_DIR = Path(".metadisk")
DEFAULT_FARMERS = 10
STATE_FILE = "network.json"
RUNNING_FILE = "running.json"
LOCK_FILE = "up.lock"
ADD_WITHIN = 120.0  # seconds `--add-farmers` waits for the running network to start them
CLI_DIR = "cli"
GATEWAY_DIR = "gateway"
OWNER_EMAIL = "owner@local.metadisk"
_STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class UpState:
    """What the first run made and later runs reuse (``network.json``, mode 0600).

    No password: the grant (with its API key) is all the network needs, and a file that held
    the account's password would hand whoever reads it the account itself.
    """

    email: str
    project_id: str
    grant: str


def register(app: typer.Typer) -> None:
    """Add `up` to the root app."""
    app.command()(up)


def up(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", "-d", help="Where the network keeps everything.")
    ] = DEFAULT_DATA_DIR,
    farmers: Annotated[
        int | None,
        typer.Option(
            min=1, max=64, help="Farmers to run: 10 on the first run, then all that exist."
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Bridge port (default: a free one on the first run, then the same)."),
    ] = None,
    allocate: Annotated[str, typer.Option(help="Disk space each farmer rents out.")] = "4GiB",
    restart: Annotated[
        bool,
        typer.Option(
            "--restart/--no-restart",
            help="Start a farmer that exits again (pausing longer each time).",
        ),
    ] = True,
    chore_interval: Annotated[
        float | None,
        typer.Option(
            min=0.05,
            help="Seconds between every bridge and farmer chore's runs (check-ins, deletes, "
            "trash...), to watch them work.",
        ),
    ] = None,
    add_farmers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Add farmers: to the network already running on the data dir (then exit), "
            "or to this run's.",
        ),
    ] = None,
) -> None:
    """Run a local network (a bridge and farmers on 127.0.0.1) until Ctrl-C.

    The first run makes an account and a ready access grant for the CLI; later runs on the same
    data dir continue with the same identities, account and objects. A farmer that exits is
    started again; the network keeps serving meanwhile.
    """
    try:
        allocation = parse_size(allocate)
    except ValueError as exc:
        raise UsageError(f"--allocate: {exc}") from exc
    if port is not None and not 0 <= port <= 65535:
        raise UsageError(f"--port {port} is out of range")
    from metadisk.devnet.network import LocalNetwork, existing_farmers

    context = current()
    root = data_dir.expanduser().absolute()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        with _exclusive(root):
            private_dir(root)  # tightened by the one run that holds it, not by one refused
            # Later runs keep the farmers they have (their pieces are the network's data) and
            # add more only when asked to.
            count = (farmers or existing_farmers(root) or DEFAULT_FARMERS) + (add_farmers or 0)
            network = LocalNetwork(
                root,
                farmers=count,
                port=port,
                allocation=allocation,
                fast_passwords=False,
                chore_interval=chore_interval,
            )
            run(_serve(context, network, restart=restart))
    except _Running as running:
        if add_farmers is None:
            raise CliError(
                f"another 'metadisk up' (pid {running.pid}) is running on {root}"
            ) from None
        run(_add_to_running(root, add_farmers, allocation))


@contextlib.contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """Hold the data dir's lock: two networks on one data dir would corrupt each other."""
    with open(root / LOCK_FILE, "a+") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            raise _Running(lock.read().strip() or "?") from None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield


class _Running(Exception):
    """Another `metadisk up` holds the data dir's lock."""

    def __init__(self, pid: str) -> None:
        super().__init__(pid)
        self.pid = pid


async def _add_to_running(root: Path, count: int, allocation: int) -> None:
    """Hand `count` new farmers to the `metadisk up` running on `root`, and wait until it has
    started them (it takes up new farmer dirs within a second)."""
    from metadisk.devnet.network import prepare_farmers

    try:
        running = json.loads((root / RUNNING_FILE).read_text())
        bridge = running["bridge"]
        trusted = TrustedBridge(
            NodeId.from_hex(bridge["node_id"]), b64decode(bridge["public_key"]), bridge["url"]
        )
    except (OSError, ValueError, KeyError, TypeError, DecodeError) as exc:
        raise CliError(f"the network on {root} is still starting or stopping ({exc})") from exc
    made = {path.name for path in prepare_farmers(root, count, trusted, allocated=allocation)}
    out = stderr()
    out.print(f"added {', '.join(sorted(made))}; waiting for the running network to start them")
    deadline = time.monotonic() + ADD_WITHIN
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        with contextlib.suppress(OSError, ValueError):
            listed = json.loads((root / RUNNING_FILE).read_text())["farmers"]
            started = [f for f in listed if f["name"] in made]
            if len(started) == len(made):
                for farmer in started:
                    print(f"{farmer['name']} online at {farmer['url']} (pid {farmer['pid']})")
                return
    raise CliError(f"the running network did not start {', '.join(sorted(made))} in time")


async def _serve(context: CliContext, network: LocalNetwork, *, restart: bool) -> None:
    """Start, announce, keep the farmers running until a signal or a dead bridge, stop. Stops
    on every way out."""
    from metadisk.devnet.network import NetworkError

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    notes = stderr()
    root = network.root
    fresh_bridge = not (network.bridge_dir / "bridge.sqlite3").exists()
    notes.print(f"starting a bridge and {network.farmer_count} farmers in {root} ...")
    gateway: GatewayProcess | None = None
    try:
        try:
            if not await _unless_stopped(stop, network.start()):
                return
        except NetworkError as exc:
            hint = ""
            if "already in use" in str(exc):
                hint = " (another program has the bridge's port: run with --port 0 for a new one)"
            raise CliError(f"{exc}{hint}") from exc
        state, password = await _tenant(network, root, fresh_bridge)
        config_dir = _write_configs(context, root, state)
        gateway = _gateway(root, state)
        if not await _unless_stopped(stop, gateway.start()):
            return
        _write_running(root, network, gateway)
        _announce(network, root, state, config_dir, password, gateway)
        died = await _supervise(network, gateway, stop, restart=restart)
        if died is not None:
            raise CliError(died)
    finally:
        notes.print("stopping ...")
        with contextlib.suppress(FileNotFoundError):
            (root / RUNNING_FILE).unlink()
        if gateway is not None:
            await gateway.stop()
        await network.stop()
        notes.print("stopped")


async def _unless_stopped(stop: asyncio.Event, work: Awaitable[object]) -> bool:
    """Run `work` unless a stop signal comes first (then cancel it); whether it finished."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()  # raise its error, if any
        return True
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return False


async def _tenant(
    network: LocalNetwork, root: Path, fresh_bridge: bool
) -> tuple[UpState, str | None]:
    """The saved account and grant, or new ones on the first run (or if the bridge was reset)
    with the new account's password, which is shown once and saved nowhere."""
    state = None if fresh_bridge else _load_state(root)
    password = None
    if state is None:
        try:
            tenant = await network.create_tenant(
                email=OWNER_EMAIL, project="local", key_name="metadisk up"
            )
        except Conflict:
            # network.json was removed but the bridge kept its accounts: start a new owner.
            tenant = await network.create_tenant(
                email=f"owner-{os.urandom(3).hex()}@local.metadisk",
                project="local",
                key_name="metadisk up",
            )
        state = UpState(tenant.email, tenant.project_id, tenant.grant)
        password = tenant.password
    grant = AccessGrant.parse(state.grant)
    if grant.bridge_url != network.bridge.url:
        # The bridge got another port: same key and encryption, new address.
        moved = AccessGrant(network.bridge.url, grant.api_key, grant.encryption)
        state = UpState(state.email, state.project_id, moved.serialize())
    # Rewritten every start: a network.json from before this version loses its password here.
    record = {"version": _STATE_VERSION, **asdict(state)}
    cfg.write_private(root / STATE_FILE, json.dumps(record, indent=2) + "\n")
    return state, password


def _load_state(root: Path) -> UpState | None:
    path = root / STATE_FILE
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CliError(
            f"{path} is unreadable ({exc}); move it away to start a new account"
        ) from exc
    try:
        if raw.get("version") != _STATE_VERSION:
            raise ValueError(f"unknown version {raw.get('version')!r}")
        # An older network.json also has "password": ignored, and dropped on rewrite.
        state = UpState(str(raw["email"]), str(raw["project_id"]), str(raw["grant"]))
        AccessGrant.parse(state.grant)
    except (KeyError, ValueError, DecodeError) as exc:
        raise CliError(f"{path} is malformed ({exc}); move it away to start a new account") from exc
    return state


def _write_configs(context: CliContext, root: Path, state: UpState) -> Path:
    """Write the grant for the CLI; returns the config dir the CLI should use."""
    grant = AccessGrant.parse(state.grant)
    account = cfg.Account(grant.bridge_url, state.email, state.project_id)
    origin = f"metadisk up {root}"
    own_dir = root / CLI_DIR
    own = cfg.load(own_dir)
    cfg.save(own_dir, cfg.CliConfig(state.grant, account, own.client, origin))
    user_dir = context.config_dir.expanduser().absolute()
    if user_dir == own_dir:
        return own_dir
    existing = cfg.load(user_dir)
    if existing.grant is not None and existing.origin != origin:
        return own_dir  # set up for another network: not ours to replace
    cfg.save(user_dir, cfg.CliConfig(state.grant, account, existing.client, origin))
    return user_dir


def _gateway(root: Path, state: UpState) -> GatewayProcess:
    """The S3 gateway for the network's grant: the credentials and port of the last run, or
    new ones (the grant changes when the bridge's port does; the pair stays)."""
    from metadisk.devnet.gateway import GatewayProcess, saved_config
    from metadisk.gateway.config import ConfigError, Credential, new_credential

    directory = root / GATEWAY_DIR
    try:
        saved = saved_config(directory)
    except ConfigError as exc:
        raise CliError(f"{directory}: {exc}; move it away for new S3 credentials") from exc
    if saved is not None and saved.credentials:
        old = saved.credentials[0]
        credential = Credential(old.access_key, old.secret_key, state.grant)
        port = saved.port
    else:
        credential, port = new_credential(state.grant), 0
    return GatewayProcess(directory, [credential], port=port, config_dir=root / CLI_DIR)


def _write_running(root: Path, network: LocalNetwork, gateway: GatewayProcess) -> None:
    running = {
        "pid": os.getpid(),
        "gateway": {"url": gateway.url, "pid": gateway.pid, "files": gateway.files_url},
        "bridge": {
            "url": network.bridge.url,
            "pid": network.bridge.pid,
            "node_id": network.bridge.node_id,
            "public_key": b64encode(network.bridge.public_key),
            "data_dir": str(network.bridge_dir),
        },
        "farmers": [
            {
                "name": farmer.data_dir.name,
                "url": farmer.url,
                "pid": farmer.pid,
                "node_id": farmer.node_id,
                "data_dir": str(farmer.data_dir),
                "dashboard": farmer.dashboard_url,
            }
            for farmer in network.farmers
        ],
    }
    cfg.write_private(root / RUNNING_FILE, json.dumps(running, indent=2) + "\n")


def _announce(
    network: LocalNetwork,
    root: Path,
    state: UpState,
    config_dir: Path,
    password: str | None,
    gateway: GatewayProcess,
) -> None:
    # Piped (a log, a test), Rich would assume 80 columns and cut the table: give it room.
    probe = Console()
    out = Console(
        highlight=False, markup=False, soft_wrap=True, width=None if probe.is_terminal else 160
    )
    scheme = network.redundancy
    out.print(f"metadisk up: ready, {len(network.farmers)} farmers online")
    table = Table(box=None, pad_edge=False)
    for column in ("role", "node id", "address", "pid", "data"):
        table.add_column(column, no_wrap=True, overflow="fold")
    table.add_row(
        "bridge",
        network.bridge.node_id[:16],
        network.bridge.url,
        str(network.bridge.pid),
        _short(network.bridge_dir),
    )
    for farmer in network.farmers:
        table.add_row(
            "farmer", farmer.node_id[:16], farmer.url, str(farmer.pid), _short(farmer.data_dir)
        )
    out.print(table)
    out.print(
        f"redundancy  {scheme.k}/{scheme.m}/{scheme.o}/{scheme.n}: any {scheme.k} of "
        f"{scheme.n} pieces rebuild a segment"
    )
    out.print(f"account     {state.email}, project {state.project_id[:12]}")
    if password is not None:
        # For `metadisk access` and other account commands; the grant needs none.
        out.print(f"password    {password} (shown once, saved nowhere)")
    out.print(f"grant       {config_dir / cfg.CONFIG_FILE}")
    s3 = gateway.credentials[0]
    out.print(f"s3 gateway  {gateway.url}  (region us-east-1, path-style)")
    out.print(f"s3 keys     access key {s3.access_key}  secret key {s3.secret_key}")
    if gateway.files_url:
        out.print(f"files       {gateway.files_url}", soft_wrap=True)
    if network.farmers and network.farmers[0].dashboard_url:
        first = network.farmers[0]
        out.print(
            f"dashboards  {first.dashboard_url} ({first.data_dir.name}; every farmer's is in "
            f"{_short(root / RUNNING_FILE)})"
        )
    console = network.bridge.url.rstrip("/") + "/console/"
    out.print(f"console     {console} (log in as {state.email})")
    default = cfg.config_dir(None, os.environ).expanduser().absolute()
    cli = "metadisk" if config_dir == default else f"metadisk --config-dir {_short(config_dir)}"
    out.print("\nTry, in another terminal:")
    for command in (
        f"{cli} mb md://demo",
        f"{cli} cp README.md md://demo/",
        f"{cli} ls md://demo",
        f"{cli} cat md://demo/README.md",
    ):
        out.print(f"  {command}")
    out.print("Stop with Ctrl-C; `metadisk up` again continues with the same data.")
    sys.stdout.flush()


def _short(path: Path) -> str:
    """`path` relative to the working directory when it is below it (shorter to read)."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


async def _supervise(
    network: LocalNetwork, gateway: GatewayProcess, stop: asyncio.Event, *, restart: bool
) -> str | None:
    """Keep the farmers running until a stop signal (None) or the bridge or the gateway exits
    (what happened)."""
    from metadisk.devnet.supervisor import Supervisor

    def say(line: str) -> None:
        print(f"metadisk up: {line}", flush=True)

    supervisor = Supervisor(network, say, restart=restart)
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
            return None
        died = supervisor.bridge_exited()
        if died is None and not gateway.running:
            died = f"the S3 gateway exited; its log: {gateway.root / 'gateway.log'}"
        if died is not None:
            # Ctrl-C in a terminal reaches the children too, and one may exit before our own
            # handler has run: give that signal a moment before calling it a failure.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
                return None
            return died
        checked = asyncio.ensure_future(supervisor.check())
        if not await _unless_stopped(stop, checked):
            return None
        if checked.result():
            _write_running(network.root, network, gateway)
