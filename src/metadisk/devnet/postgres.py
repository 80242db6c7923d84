"""Throwaway PostgreSQL for tests and benchmarks: a database on a server, or a whole cluster.

`postgres_database` makes a fresh database on the server named by ``METADISK_TEST_POSTGRES_URL``
(``scripts/test`` starts a throwaway cluster and sets it) and drops it afterwards;
`local_postgres` runs a cluster of its own (initdb in a temp dir, Unix socket only).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

POSTGRES_ENV = "METADISK_TEST_POSTGRES_URL"


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
    with psycopg.connect(psycopg_url(base), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(base, name)
    finally:
        with psycopg.connect(psycopg_url(base), autocommit=True) as admin:
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


def psycopg_url(url: str) -> str:
    """`url` (a SQLAlchemy URL) as psycopg takes it."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
