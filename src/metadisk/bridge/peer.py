"""Running the bridge's processes: the API (`ApiPeer`), the worker (`WorkerPeer`), or both in one
process (`Bridge`, what `metadisk bridge run` runs on one machine).

`serve(config, role)` is a whole process: it binds first (a port in use fails before the
database is touched), migrates the database, announces one line on stdout for launchers, forks
extra API processes if asked (``[server] workers``), and runs until SIGINT or SIGTERM::

    {"event": "listening", "role": "api", "url": ..., "node_id": ..., "metrics_url": ...}
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import os
import signal
import socket
import ssl
import sys
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from metadisk.bridge.api import ApiPeer
from metadisk.bridge.common import wall_clock
from metadisk.bridge.config import BridgeConfig, Role
from metadisk.bridge.db.engine import Database
from metadisk.bridge.db.migrate import upgrade
from metadisk.bridge.identity import IdentityError, load_or_create
from metadisk.bridge.metrics import pool_gauges
from metadisk.bridge.worker import WorkerPeer
from metadisk.core.identity import Identity
from metadisk.runtime.net import BindError, announce_listening, bind, url_of


class ServeError(Exception):
    """A bridge process that cannot start: one line for the operator."""


class Bridge:
    """The API and the worker in one process, on one database and one metrics registry."""

    def __init__(
        self, config: BridgeConfig, identity: Identity, clock: Callable[[], int] = wall_clock
    ) -> None:
        self.config = config
        self.identity = identity
        self.db = Database(config.database)
        self.registry = CollectorRegistry(auto_describe=True)
        pool_gauges(self.registry, self.db.pool_use)
        self.api = ApiPeer(config, identity, db=self.db, registry=self.registry, clock=clock)
        self.worker = WorkerPeer(
            config,
            identity,
            db=self.db,
            registry=self.registry,
            clock=clock,
            serve_metrics=False,  # the API's /metrics shows the chores too
        )

    def migrate(self) -> None:
        upgrade(self.db)

    async def run(self, sockets: list[socket.socket], stop: asyncio.Event) -> None:
        """Serve HTTP on `sockets` and run the chores until `stop` is set."""
        await self.worker.start()
        async with asyncio.TaskGroup() as group:
            chores = group.create_task(self.worker.run())
            serving = group.create_task(self.api.serve(sockets, stop))
            serving.add_done_callback(lambda _: chores.cancel())

    async def aclose(self) -> None:
        await self.worker.aclose()
        await self.api.aclose()
        await asyncio.to_thread(self.db.close)


def serve(config: BridgeConfig, role: Role) -> None:
    """Run one bridge process of `role` until SIGINT or SIGTERM; `ServeError` if it cannot."""

    if config.server.workers < 1:
        raise ServeError("configuration error: [server] workers must be at least 1")
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        identity = load_or_create(config.identity_path)
    except (OSError, IdentityError) as exc:
        raise ServeError(f"cannot use data directory {config.data_dir}: {exc}") from exc
    if role == "worker":
        _migrate(config, None)
        asyncio.run(_run_worker(config, identity))
        return
    # Several API processes: one SO_REUSEPORT socket each, so that the kernel spreads
    # connections over them (on one shared socket the first process to wake accepts a whole
    # burst of keep-alive connections, and the others idle).
    if config.server.tls:
        _check_tls(config.server.tls_cert, config.server.tls_key)
    reuse_port = config.server.workers > 1 and hasattr(socket, "SO_REUSEPORT")
    sock = _bind(config.server.host, config.server.port, reuse_port)
    _migrate(config, sock)
    _hold_signals()  # from here a SIGTERM stops the process cleanly, however early it comes
    url = url_of(sock, "https" if config.server.tls else "http")
    config.url_path.write_text(url + "\n")
    announce_listening(role=role, url=url, node_id=identity.node_id.hex())
    address = sock.getsockname()[:2]
    children = [
        _fork_api(config, identity, sock, address if reuse_port else None)
        for _ in range(config.server.workers - 1)
    ]
    try:
        _run_api(config, identity, sock, with_chores=role == "both")
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _check_tls(cert: str, key: str) -> None:
    """Load the certificate and key once before serving, so a mistake is one line, not a
    traceback from inside the HTTP server."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except OSError as exc:  # ssl.SSLError is an OSError too
        reason = exc.strerror or str(exc)
        message = f"cannot use [server] tls_cert {cert} and tls_key {key}: {reason}"
        raise ServeError(message) from exc


def _bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    try:
        # Inheritable: forked API processes serve on it.
        return bind(host, port, reuse_port=reuse_port, inheritable=True)
    except BindError as exc:
        reason = "address already in use" if exc.code == "port-in-use" else exc.message
        raise ServeError(f"cannot listen on {host}:{port}: {reason}") from exc


def _migrate(config: BridgeConfig, sock: socket.socket | None) -> None:
    """Bring the schema up to date on a short-lived engine: forked processes must not inherit
    its connections. Concurrent starts on PostgreSQL take turns (an advisory lock)."""
    db = Database(config.database)
    try:
        upgrade(db)
    except Exception as exc:
        if sock is not None:
            sock.close()
        lines = str(exc).strip().splitlines()
        first = lines[0] if lines else ""
        raise ServeError(f"cannot open the database: {type(exc).__name__}: {first}") from exc
    finally:
        db.close()


def _run_api(
    config: BridgeConfig, identity: Identity, sock: socket.socket, *, with_chores: bool
) -> None:
    async def main() -> None:
        stop = _stop_on_signals()
        if with_chores:
            bridge = Bridge(config, identity)
            _freeze_heap()
            try:
                await bridge.run([sock], stop)
            finally:
                await bridge.aclose()
        else:
            api = ApiPeer(config, identity)
            _freeze_heap()
            try:
                await api.serve([sock], stop)
            finally:
                await api.aclose()

    asyncio.run(main())


_held: list[int] = []


def _hold_signals() -> None:
    """Note SIGINT and SIGTERM until the event loop takes them over (`_stop_on_signals`)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, _: _held.append(received))


def _stop_on_signals() -> asyncio.Event:
    """An event SIGINT and SIGTERM set, from now on: the process then ends normally (exit 0).
    A signal noted before (`_hold_signals`) sets it at once."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if _held:
        stop.set()
    return stop


async def _run_worker(config: BridgeConfig, identity: Identity) -> None:
    stop = _stop_on_signals()
    worker = WorkerPeer(config, identity)
    _freeze_heap()
    try:
        try:
            await worker.start()
        except BindError as exc:
            raise ServeError(f"cannot serve metrics: {exc.message}") from exc
        announce_listening(
            role="worker",
            url=worker.metrics_url,
            metrics_url=worker.metrics_url,
            node_id=identity.node_id.hex(),
        )
        running = asyncio.create_task(worker.run())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (running, stopping):
            task.cancel()
        await asyncio.gather(running, stopping, return_exceptions=True)
        failed = running.exception() if not running.cancelled() else None
        if failed is not None:
            raise failed
    finally:
        await worker.aclose()


def _freeze_heap() -> None:
    """Leave what startup built (modules, the app, the peers) out of every later collection.

    A full collection walks every tracked object: with FastAPI, pydantic and SQLAlchemy loaded
    that took ~72 ms in the bridge, stalling every request in flight (a 500-request batch of
    inline puts fell from ~2,200 to ~1,600/s whenever one ran); frozen, one took 3.6 ms.
    """
    gc.collect()
    gc.freeze()


def _fork_api(
    config: BridgeConfig,
    identity: Identity,
    sock: socket.socket,
    own_address: tuple[str, int] | None,
) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        _die_with_parent()
        if own_address is not None:
            sock.close()  # the parent's: this process accepts on a socket of its own
            sock = _bind(*own_address, reuse_port=True)
        _run_api(config, identity, sock, with_chores=False)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _die_with_parent() -> None:
    """Linux: a forked API process gets SIGTERM when the first process dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
