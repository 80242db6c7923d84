"""Start real bridge processes for tests, benchmarks and local networks.

The bridge binds port 0 (or the port asked) and prints one JSON line on stdout once it listens; the
launcher reads that line, so there is no race for a port and no polling. Logs go to
``<data dir>/bridge.log``. Example::

    with bridge_process(tmp_path / "bridge", settings={"nodes": {"difficulty": 0}}) as bridge:
        ...  # bridge.url, bridge.node_id, bridge.public_key
        bridge.kill()  # SIGKILL, as a crash would
        bridge.start()  # again: same data dir, database and port

`TEST_SETTINGS` makes password hashing cheap and turns on single-host mode and private addresses
(every farmer of a test network is on 127.0.0.1). For PostgreSQL, `postgres_database` makes a
throwaway database on the server named by ``METADISK_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

COMMAND = ("-m", "metadisk.cli.bridge", "run")
LOG_FILE = "bridge.log"
CONFIG_FILE = "bridge.toml"
POSTGRES_ENV = "METADISK_TEST_POSTGRES_URL"

TEST_SETTINGS: dict[str, Any] = {
    "log_level": "warning",
    "accounts": {"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1},
    "nodes": {"single_host": True, "private_addresses": True},
}


class BridgeStartError(RuntimeError):
    """The bridge process exited or stayed silent instead of listening."""


class BridgeProcess:
    """One bridge process on a data dir; `start()` again after `stop()` or `kill()`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        database_url: str | None = None,
        settings: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.settings = merge(TEST_SETTINGS, settings or {})
        if database_url is not None:
            self.settings = merge(self.settings, {"database": {"url": database_url}})
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.port = int(self.settings.get("server", {}).get("port", 0))
        self.node_id = ""
        self._drain: threading.Thread | None = None

    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_FILE

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def start(self, *, timeout: float = 60.0) -> None:
        """Run the bridge (on the port it had before, if any) and wait until it listens."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        settings = merge(self.settings, {"data_dir": str(self.data_dir)})
        if self.port:
            settings = merge(settings, {"server": {"port": self.port}})
        self.config_path.write_text(to_toml(settings))
        args = [sys.executable, *COMMAND, "--config", str(self.config_path)]
        env = {**os.environ, **self.env}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=env
            )
        assert self.process.stdout is not None
        line = _read_line(self.process.stdout, timeout)
        if not line:
            self.kill()
            raise BridgeStartError(f"bridge did not start; log tail:\n{self.log_tail()}")
        info = json.loads(line)
        self.url = info["url"]
        self.node_id = info["node_id"]
        self.port = int(self.url.rsplit(":", 1)[1])
        # Keep reading stdout so that the bridge never blocks on a full pipe.
        self._drain = threading.Thread(
            target=_drain, args=(self.process.stdout,), daemon=True, name="bridge-stdout"
        )
        self._drain.start()

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait (SIGKILL if it takes longer than `timeout`); the exit code."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL, as a crash or power cut of the process would."""
        return self._end(signal.SIGKILL, 15.0)

    def _end(self, signum: int, timeout: float) -> int | None:
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signum)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._drain is not None:
            self._drain.join(5)
            self._drain = None
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def public_key(self) -> bytes:
        """The bridge's Ed25519 public key (from its identity seed)."""
        from metadisk.core.identity import Identity

        return Identity((self.data_dir / "identity.seed").read_bytes()).public_key


@contextlib.contextmanager
def bridge_process(
    data_dir: Path,
    *,
    database_url: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Iterator[BridgeProcess]:
    """A started bridge, stopped on exit."""
    bridge = BridgeProcess(data_dir, database_url=database_url, settings=settings)
    bridge.start()
    try:
        yield bridge
    finally:
        bridge.stop()


@contextlib.contextmanager
def postgres_database(server_url: str | None = None) -> Iterator[str]:
    """A fresh, empty database on the server at `server_url` (default: the test server's URL).

    Yields its URL and drops it afterwards, so tests and runs never share state.
    """
    import psycopg
    from psycopg import sql

    base = server_url or os.environ.get(POSTGRES_ENV)
    if not base:
        raise RuntimeError(f"{POSTGRES_ENV} is not set")
    name = "metadisk_" + secrets.token_hex(6)
    with psycopg.connect(_psycopg_url(base), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(base, name)
    finally:
        with psycopg.connect(_psycopg_url(base), autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def local_postgres(*, fsync: bool = True) -> Iterator[str]:
    """A throwaway PostgreSQL cluster (initdb in a temp dir, Unix socket only); yields its URL.

    Needs the server binaries (Debian: /usr/lib/postgresql/*/bin); `FileNotFoundError` if absent.
    As root it runs the server as the ``postgres`` user, since PostgreSQL refuses root.
    """
    bin_dir = postgres_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="metadisk-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        import pwd

        account = pwd.getpwnam("postgres")
        os.chown(root, account.pw_uid, account.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    options = f"-k {root} -c listen_addresses='' -c synchronous_commit=off -c max_connections=200"
    if not fsync:
        options += " -c fsync=off -c full_page_writes=off"
    data = root / "data"
    try:
        subprocess.run(
            [*prefix, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
             "-E", "UTF8", "--no-sync"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
        )  # fmt: skip
        subprocess.run(
            [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options,
             "-l", str(root / "log"), "-w", "start"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start a PostgreSQL cluster: {exc}") from exc
    try:
        yield f"postgresql://postgres@/postgres?host={root}"
    finally:
        subprocess.run(
            [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def postgres_bin_dir() -> Path:
    """The newest installed PostgreSQL server's bin directory (Debian layout, then PATH)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise FileNotFoundError("no PostgreSQL server binaries (initdb) installed")


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` (keeps host, user and query such as a socket dir)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _psycopg_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two settings trees; `extra` wins."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def to_toml(settings: Mapping[str, Any]) -> str:
    """Settings (nested dicts of str, int, float, bool) as TOML."""
    lines: list[str] = []
    _toml_table(settings, [], lines)
    return "\n".join(lines) + "\n"


def _toml_table(table: Mapping[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    if path and scalars:
        lines.append("[" + ".".join(json.dumps(part) for part in path) + "]")
    for key, value in scalars.items():
        lines.append(f"{json.dumps(key)} = {_toml_value(value)}")
    for key, value in tables.items():
        _toml_table(value, [*path, key], lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic strings
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _read_line(stream: IO[bytes], timeout: float) -> bytes:
    """The first line of `stream`, or b"" on EOF or after `timeout` seconds."""
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0] if result else b""


def _drain(stream: IO[bytes]) -> None:
    with contextlib.suppress(OSError, ValueError):
        while stream.read(65536):
            pass


__all__ = [
    "POSTGRES_ENV",
    "TEST_SETTINGS",
    "BridgeProcess",
    "BridgeStartError",
    "bridge_process",
    "local_postgres",
    "merge",
    "postgres_database",
    "to_toml",
]
