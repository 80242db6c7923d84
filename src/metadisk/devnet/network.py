"""A whole metadisk network on this machine: one bridge and N farmers, real processes on loopback.

`metadisk up`, the end-to-end tests and ``bench/e2e.py`` all run their networks through this.
Every process is started by its launcher (`metadisk.devnet.bridge`, `metadisk.devnet.farmer`),
which runs ``metadisk bridge run`` or ``metadisk farmer run``; this module only lays out the data
dir, wires farmers to the bridge and waits for them. Layout::

    <root>/bridge/                the bridge's data dir (identity, SQLite database, log)
    <root>/farmers/farmer-01/     one data dir per farmer (identity, farmer.toml, pieces, log)

Starting again on the same root reuses everything: the bridge keeps its identity, database and
port (the port is in ``bridge.toml``), farmers keep their identities and pieces, and a farmer
whose bridge URL changed is pointed at the new one before it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from metadisk.bridge.config import AccountsConfig
from metadisk.client import BridgeAccounts, BridgeNodes, ClientError, NotFound
from metadisk.core.erasure import RedundancyScheme
from metadisk.core.grant import AccessGrant
from metadisk.core.identity import NodeId
from metadisk.core.macaroon import APIKey
from metadisk.core.paths import EncryptionAccess
from metadisk.devnet.bridge import BridgeProcess
from metadisk.devnet.farmer import FarmerProcess, prepare_farmer
from metadisk.devnet.settings import merge
from metadisk.devnet.tls import network_tls, tls_files
from metadisk.farmer.config import CONFIG_FILE, TrustedBridge
from metadisk.farmer.setup import read_config, read_identity, write_config
from metadisk.runtime.files import private_dir
from metadisk.runtime.tls import CA_FILE_ENV
from metadisk.wire.api.nodes import NodeStatus

BRIDGE_DIR = "bridge"
# What `chore_interval` shortens: the bridge's chores (``[chores]``, ``[health]``, ``[repair]``),
# the farmers'.
BRIDGE_CHORES = ("reclaim_interval", "delete_interval")
HEALTH_CHORES = ("audit_interval", "node_audit_interval", "check_interval", "node_check_interval")
REPAIR_CHORES = ("check_interval", "repair_interval", "gc_interval", "node_gc_interval")
FARMER_CHORES = ("checkin_interval", "trash_interval", "expiry_interval", "usage_flush_interval")
FARMERS_DIR = "farmers"
DEFAULT_ALLOCATION = 4 << 30


class NetworkError(RuntimeError):
    """The network did not come up: a process failed to start or farmers never came online."""


def local_profile(farmers: int) -> RedundancyScheme:
    """The redundancy a network of `farmers` farmers can hold: 4/6/8/10 from ten farmers up.

    Below ten, the same proportions scaled down (6 farmers: 2/3/4/6), so that every segment
    can still place one piece per farmer and survive losing some of them.
    """
    n = max(1, min(10, farmers))
    k = max(1, n * 2 // 5)
    m = max(k, n * 3 // 5)
    o = max(m, n * 4 // 5)
    return RedundancyScheme(k, m, o, n)


@dataclass(frozen=True, slots=True)
class Tenant:
    """An account with one project and a root API key, and a full grant for it."""

    email: str
    password: str
    project_id: str
    api_key: str
    grant: str


class LocalNetwork:
    """A bridge and `farmers` farmers under `root`; `start()`, use, then `stop()`.

    Parameters
    ----------
    root:
        The data dir; created if missing, reused if not.
    farmers:
        How many farmers to run at least: missing ones are created, and every farmer already
        in `root` runs too (its pieces are part of the network).
    port:
        The bridge's port; None keeps the one it had on the last start (a free one the first
        time), 0 picks a new free one.
    fast_passwords:
        Cheap Argon2 for account passwords (tests make many accounts); off for `metadisk up`.
    bridge_settings, farmer_settings:
        Extra bridge settings (the ``bridge.toml`` tree) and `FarmerConfig` fields.
    separate_worker:
        Run the bridge as two processes on one data dir and database, the JSON API
        (``metadisk bridge api``) and a worker (``metadisk bridge worker``), as a deployment
        would; by default one ``metadisk bridge run`` does both.
    tls:
        Serve TLS on every hop, as a network across machines must: farmers with certificates
        of their node keys, the bridge with a certificate of the network's own CA (made under
        ``root/tls``; clients trust it through ``METADISK_CA_FILE``, see `ca_file`). Off, it is
        plain HTTP, which only a loopback network may use.
    chore_interval:
        Seconds between every bridge and farmer chore's runs (check-ins, deletes, reclaim,
        trash, expiry, and each node's audits and uptime checks), for demos and tests that want
        to watch them work.
    """

    def __init__(
        self,
        root: Path,
        *,
        farmers: int = 10,
        port: int | None = None,
        allocation: int = DEFAULT_ALLOCATION,
        fast_passwords: bool = True,
        bridge_settings: Mapping[str, Any] | None = None,
        farmer_settings: Mapping[str, Any] | None = None,
        log_level: str = "warning",
        separate_worker: bool = False,
        chore_interval: float | None = None,
        tls: bool = False,
    ) -> None:
        if farmers < 1:
            raise ValueError("a network needs at least one farmer")
        self.root = Path(root).absolute()
        self.farmer_count = max(farmers, existing_farmers(self.root))
        self.allocation = allocation
        self.log_level = log_level
        self.tls = tls
        self.farmer_settings = {"tls": tls, **(farmer_settings or {})}
        # Farmers check in over TLS, so they trust the network's CA like any client does.
        self.farmer_env = {CA_FILE_ENV: str(self.ca_file)} if tls else {}
        if chore_interval is not None:
            if not chore_interval > 0:
                raise ValueError("the chore interval must be positive")
            self.farmer_settings = {
                **{name: chore_interval for name in FARMER_CHORES},
                **self.farmer_settings,
            }
        profile = local_profile(self.farmer_count)
        settings: dict[str, Any] = {
            "log_level": log_level,
            "nodes": {"single_host": True, "difficulty": 0, "unvetted_pieces": 0},
            # One host, one clock: a filter's time needs no margin for farmers' clocks.
            "repair": {"gc_clock_skew": 1},
            "objects": {
                "profiles": {"local": _redundancy(profile)},
                "default_profile": "local",
            },
        }
        if not fast_passwords:
            defaults = AccountsConfig()
            settings["accounts"] = {
                "argon2_time_cost": defaults.argon2_time_cost,
                "argon2_memory_kib": defaults.argon2_memory_kib,
                "argon2_parallelism": defaults.argon2_parallelism,
            }
        if chore_interval is not None:
            settings["chores"] = {name: chore_interval for name in BRIDGE_CHORES}
            settings["health"] = {name: chore_interval for name in HEALTH_CHORES}
            settings["repair"].update({name: chore_interval for name in REPAIR_CHORES})
        if port is not None:
            settings["server"] = {"port": port}
        elif (saved := _saved_port(self.bridge_dir)) is not None:
            settings["server"] = {"port": saved}
        if tls:
            files = tls_files(self.root)
            server = {"tls_cert": str(files.bridge_cert), "tls_key": str(files.bridge_key)}
            settings["server"] = {**settings.get("server", {}), **server}
        settings = merge(settings, bridge_settings or {})
        self.bridge = BridgeProcess(
            self.bridge_dir, role="api" if separate_worker else "run", settings=settings
        )
        self.worker = (
            BridgeProcess(self.bridge_dir, role="worker", settings=settings)
            if separate_worker
            else None
        )
        self.farmers: list[FarmerProcess] = []
        self._bridge_start: asyncio.Future[None] | None = None
        self._trusted: TrustedBridge | None = None

    @property
    def bridge_dir(self) -> Path:
        return self.root / BRIDGE_DIR

    @property
    def ca_file(self) -> Path:
        """The CA certificate that signed the bridge's (with `tls`): what clients must trust."""
        return tls_files(self.root).ca_file

    def farmer_dir(self, number: int) -> Path:
        return farmer_dir(self.root, number)

    @property
    def redundancy(self) -> RedundancyScheme:
        return local_profile(self.farmer_count)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, within: float = 90.0) -> None:
        """Start the bridge, then every farmer, and wait until all are online at the bridge.

        Safe to cancel: whatever was started is stopped by `stop()`.
        """
        private_dir(self.root)
        private_dir(self.root / FARMERS_DIR)
        if self.tls:
            await asyncio.to_thread(network_tls, self.root)
        # In a thread: the bridge launcher blocks while it reads the bridge's first line.
        self._bridge_start = asyncio.ensure_future(asyncio.to_thread(self.bridge.start))
        try:
            await asyncio.shield(self._bridge_start)
            if self.worker is not None:
                await asyncio.to_thread(self.worker.start)
        except Exception as exc:
            raise NetworkError(f"the bridge did not start: {exc}") from exc
        self._trusted = TrustedBridge(
            NodeId.from_hex(self.bridge.node_id), self.bridge.public_key, self.bridge.url
        )
        self.farmers = []
        await self._start_farmers(range(1, self.farmer_count + 1), within=within)

    async def _start_farmers(self, numbers: Iterable[int], *, within: float) -> list[FarmerProcess]:
        """Start the farmers numbered `numbers` (made if missing) and wait until all are online."""
        assert self._trusted is not None, "start() first"
        fresh = [self._farmer(n, self._trusted) for n in numbers]
        self.farmers.extend(fresh)
        self.farmer_count = len(self.farmers)
        started = int(time.time())
        results = await asyncio.gather(
            *(farmer.start() for farmer in fresh), return_exceptions=True
        )
        for farmer, result in zip(fresh, results, strict=True):
            if isinstance(result, BaseException):
                raise NetworkError(f"farmer {farmer.data_dir.name} did not start: {result}")
        await self.wait_online(fresh, since=started, within=within)
        return fresh

    async def add_farmers(self, count: int, *, within: float = 90.0) -> list[FarmerProcess]:
        """Make `count` more farmers (or take up ones another process made in the data dir,
        see `prepare_farmers`) and start them; they are online when this returns."""
        first = len(self.farmers) + 1
        last = max(existing_farmers(self.root), len(self.farmers) + count)
        return await self._start_farmers(range(first, last + 1), within=within)

    async def adopt_farmers(self, *, within: float = 90.0) -> list[FarmerProcess]:
        """Start the farmers made in the data dir since this network started, if any."""
        waiting = existing_farmers(self.root) - len(self.farmers)
        return await self.add_farmers(waiting, within=within) if waiting > 0 else []

    async def restart_farmer(self, farmer: FarmerProcess) -> None:
        """Start a farmer that exited again, on its port; it checks in at once."""
        await farmer.start()

    def _farmer(self, number: int, trusted: TrustedBridge) -> FarmerProcess:
        data_dir = self.farmer_dir(number)
        if (data_dir / CONFIG_FILE).exists():
            config = read_config(data_dir)
            identity = read_identity(data_dir)
            wanted = replace(config, bridges=(trusted,), **self.farmer_settings)
            if wanted != config:  # the bridge moved (another port) or the settings changed
                write_config(wanted)
            config = wanted
        else:
            config, identity = prepare_farmer(
                data_dir, [trusted], allocated=self.allocation, **self.farmer_settings
            )
        return FarmerProcess(config, identity, log_level=self.log_level, env=self.farmer_env)

    async def stop(self) -> None:
        """Stop every farmer, then the bridge: SIGTERM, then SIGKILL if one takes too long.

        The launchers' own default grace (15 s) applies, so a farmer finishing a write gets
        time to fsync and a crash-safe shutdown is not cut short.
        """

        async def stop_farmer(farmer: FarmerProcess) -> None:
            await farmer.stop()

        # Every process gets its stop even if another one's fails; the first failure is raised
        # once all are down.
        results: list[BaseException | None] = list(
            await asyncio.gather(*(stop_farmer(f) for f in self.farmers), return_exceptions=True)
        )
        if self._bridge_start is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._bridge_start)
        for process in (self.worker, self.bridge):
            if process is None:
                continue
            try:
                await asyncio.to_thread(process.stop)
            except Exception as exc:
                results.append(exc)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def __aenter__(self) -> LocalNetwork:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- what the bridge knows ---------------------------------------------------------------

    async def node(
        self, farmer: FarmerProcess, nodes: BridgeNodes | None = None
    ) -> NodeStatus | None:
        """The bridge's status of `farmer` (``GET /v1/nodes/{id}``), None if it never checked in."""
        client = nodes or BridgeNodes(self.bridge.url, timeout=10.0)
        try:
            return await client.status(NodeId.from_hex(farmer.node_id))
        except NotFound:
            return None
        finally:
            if nodes is None:
                await client.aclose()

    async def is_online(
        self, farmer: FarmerProcess, since: int, nodes: BridgeNodes | None = None
    ) -> bool:
        """Whether the bridge counts `farmer` online at its current address, pinged back since
        `since` (unix time)."""
        status = await self.node(farmer, nodes)
        return (
            status is not None
            and status.online
            and status.address == farmer.url
            and status.last_ping_ok is not None
            and status.last_ping_ok >= since
        )

    async def wait_online(
        self, farmers: Sequence[FarmerProcess], *, since: int, within: float = 60.0
    ) -> None:
        """Wait until the bridge has seen each of `farmers` online since `since` (unix time).

        Polls the bridge's public node status route: check-ins are asynchronous.
        """
        deadline = time.monotonic() + within
        waiting = list(farmers)
        nodes = BridgeNodes(self.bridge.url, timeout=10.0)
        try:
            while True:
                online = await asyncio.gather(*(self.is_online(f, since, nodes) for f in waiting))
                waiting = [f for f, up in zip(waiting, online, strict=True) if not up]
                if not waiting:
                    return
                for farmer in waiting:
                    if not farmer.running:
                        raise NetworkError(
                            f"farmer {farmer.data_dir.name} exited: {farmer.log_tail(5).strip()}"
                        )
                if time.monotonic() > deadline:
                    reasons = [await self._why_offline(f, nodes) for f in waiting]
                    raise NetworkError(
                        f"not online at the bridge after {within:.0f} s: " + ", ".join(reasons)
                    )
                await asyncio.sleep(0.1)
        finally:
            await nodes.aclose()

    async def _why_offline(self, farmer: FarmerProcess, nodes: BridgeNodes) -> str:
        try:
            status = await self.node(farmer, nodes)
        except ClientError as exc:
            reason = f"the bridge did not say: {exc}"
        else:
            if status is None:
                reason = "never checked in"
            elif status.address != farmer.url:
                reason = f"last checked in from {status.address}"
            else:
                reason = status.last_ping_error or "no ping-back since it started"
        return f"{farmer.data_dir.name} ({reason}; log {farmer.data_dir / 'farmer.log'})"

    # -- tenants -----------------------------------------------------------------------------

    async def create_tenant(
        self,
        *,
        email: str | None = None,
        password: str | None = None,
        project: str = "default",
        key_name: str = "owner",
        root_key: bytes | None = None,
    ) -> Tenant:
        """Register an account through the bridge's API, with a project, a root API key and a
        full grant (under `root_key`, random by default)."""
        email = email or f"{os.urandom(6).hex()}@example.com"
        password = password or os.urandom(18).hex()
        accounts = BridgeAccounts(self.bridge.url)
        try:
            await accounts.register(email, password)
            await accounts.login(email, password)
            made = await accounts.create_project(project)
            api_key = (await accounts.create_api_key(made.id, key_name)).api_key
        finally:
            await accounts.aclose()
        access = EncryptionAccess(root_key=root_key or os.urandom(32))
        grant = AccessGrant(self.bridge.url, APIKey.parse(api_key), access)
        return Tenant(email, password, made.id, api_key, grant.serialize())


def prepare_farmers(root: Path, count: int, trusted: TrustedBridge, **settings: Any) -> list[Path]:
    """Make `count` new farmer data dirs after the existing ones, trusting `trusted`: how
    ``metadisk up --add-farmers`` hands farmers to the ``metadisk up`` that runs the network
    (which starts them: `LocalNetwork.adopt_farmers`). Each farmer's config is written last,
    atomically, so a watcher never sees half a farmer."""
    first = existing_farmers(root) + 1
    made = []
    for number in range(first, first + count):
        config, _ = prepare_farmer(farmer_dir(root, number), [trusted], **settings)
        made.append(config.data_dir)
    return made


def farmer_dir(root: Path, number: int) -> Path:
    return root / FARMERS_DIR / f"farmer-{number:02d}"


def existing_farmers(root: Path) -> int:
    """How many farmers a network in `root` already has (numbered from 1 without gaps)."""
    count = 0
    while (farmer_dir(root, count + 1) / CONFIG_FILE).exists():
        count += 1
    return count


def _redundancy(scheme: RedundancyScheme) -> dict[str, int]:
    return {"k": scheme.k, "m": scheme.m, "o": scheme.o, "n": scheme.n}


def _saved_port(bridge_dir: Path) -> int | None:
    """The port in the bridge's last URL file, if it has run before."""
    try:
        url = (bridge_dir / "bridge.url").read_text().strip()
        return int(url.rsplit(":", 1)[1])
    except (OSError, ValueError, IndexError):
        return None


__all__ = ["LocalNetwork", "NetworkError", "Tenant", "existing_farmers", "local_profile"]
