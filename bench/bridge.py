"""Bridge throughput: inline puts, gets and 1,000-object list pages, 1 and 16 clients.

Runs a real bridge process per database engine (SQLite in a temp dir; PostgreSQL when
METADISK_TEST_POSTGRES_URL is set or the server binaries are installed, in which case a throwaway
cluster is started) and drives it over loopback HTTP with aiohttp. Prints a table with the targets
beside the figures; never asserts. Every loop is bounded in time and count.

    python bench/bridge.py            # about 2 minutes
    python bench/bridge.py --quick    # about 20 seconds: a smoke run
    python bench/bridge.py --workers 2 --engine sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp

from metadisk.core.encoding import b64encode
from metadisk.devnet.bridge import BridgeProcess
from metadisk.devnet.postgres import POSTGRES_ENV, local_postgres, postgres_database

TARGETS = {("put", 16): 1000, ("get", 16): 2000}  # ops/s on SQLite, 2 cores
MAX_OPS = 200_000  # a hard bound on any one measurement


class Client:
    def __init__(self, session: aiohttp.ClientSession, url: str, token: str = "") -> None:
        self.session = session
        self.url = url
        self.token = token

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.session.request(
            method, self.url + path, headers=headers, **kwargs
        ) as response:
            body = await response.json() if response.status != 204 else None
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: {response.status} {body}")
            return body


async def _setup(client: Client) -> None:
    """A user, project, API key and buckets; the client keeps the API key."""
    email = f"bench-{time.monotonic_ns()}@example.org"
    creds = {"email": email, "password": "bench password"}
    await client.call("POST", "/v1/accounts", json=creds)
    session = await client.call("POST", "/v1/sessions", json=creds)
    client.token = session["token"]
    project = await client.call("POST", "/v1/projects", json={"name": "bench"})
    key = await client.call(
        "POST", f"/v1/projects/{project['id']}/api-keys", json={"name": "bench"}
    )
    client.token = key["api_key"]
    for name in ("puts", "gets", "list"):
        await client.call("POST", "/v1/buckets", json={"name": name})


async def _measure(
    op: Callable[[int], Awaitable[None]], clients: int, seconds: float
) -> tuple[float, int]:
    """Run `op` from `clients` concurrent loops for about `seconds`; ops/s and errors."""
    deadline = time.perf_counter() + seconds
    done = 0
    errors = 0
    counter = iter(range(MAX_OPS))

    async def loop() -> None:
        nonlocal done, errors
        for n in counter:
            if time.perf_counter() >= deadline:
                return
            try:
                await op(n)
                done += 1
            except Exception:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(clients)))
    return done / (time.perf_counter() - start), errors


async def _bench_engine(url: str, seconds: float, list_seconds: float) -> list[tuple[Any, ...]]:
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = Client(session, url)
        await _setup(client)
        data = b64encode(os.urandom(1024))
        run = os.urandom(4).hex()

        async def put(n: int) -> None:
            await client.call(
                "POST", "/v1/buckets/puts/objects", json={"key": f"{run}/{n:08d}", "data": data}
            )

        gets = [f"Z2V0{n:04d}" for n in range(200)]
        lists = [f"bGlzdA/{n:05d}" for n in range(1000)]
        gate = asyncio.Semaphore(16)

        async def fill(bucket: str, key: str) -> None:
            async with gate:
                await client.call(
                    "POST", f"/v1/buckets/{bucket}/objects", json={"key": key, "data": data}
                )

        await asyncio.gather(*(fill("gets", k) for k in gets), *(fill("list", k) for k in lists))

        async def get(n: int) -> None:
            await client.call("GET", "/v1/buckets/gets/object", params={"key": gets[n % 200]})

        async def list_page(n: int) -> None:
            page = await client.call(
                "GET", "/v1/buckets/list/objects", params={"prefix": "bGlzdA/", "limit": "1000"}
            )
            assert len(page["items"]) == 1000

        rows = []
        for name, op, duration in (
            ("put", put, seconds),
            ("get", get, seconds),
            ("list 1000", list_page, list_seconds),
        ):
            for clients in (1, 16):
                rate, errors = await _measure(op, clients, duration)
                rows.append((name, clients, rate, errors, TARGETS.get((name, clients))))
        return rows


@contextlib.contextmanager
def _postgres() -> Iterator[tuple[str, str] | None]:
    """A PostgreSQL database URL and a note on where it runs, or None if there is none."""
    server = os.environ.get(POSTGRES_ENV)
    if server:
        with postgres_database(server) as url:
            yield url, "METADISK_TEST_POSTGRES_URL"
        return
    try:
        cluster = local_postgres()
        base = cluster.__enter__()
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"(no PostgreSQL row: {exc})", file=sys.stderr)
        yield None
        return
    try:
        with postgres_database(base) as url:
            yield url, "throwaway local cluster, synchronous_commit=off"
    finally:
        cluster.__exit__(None, None, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 20 s in all")
    parser.add_argument(
        "--workers", type=int, default=2, help="bridge processes (default: 2, one per core)"
    )
    parser.add_argument("--engine", choices=["sqlite", "postgres", "all"], default="all")
    args = parser.parse_args()
    seconds, list_seconds = (1.2, 1.2) if args.quick else (5.0, 4.0)

    table: list[tuple[Any, ...]] = []
    with tempfile.TemporaryDirectory(prefix="metadisk-bench-") as tmp:
        engines: list[tuple[str, Any]] = []
        if args.engine in ("sqlite", "all"):
            engines.append(("sqlite", contextlib.nullcontext(("", "WAL, synchronous=NORMAL"))))
        # The quick smoke run keeps to SQLite unless PostgreSQL is asked for by name.
        if args.engine == "postgres" or (args.engine == "all" and not args.quick):
            engines.append(("postgresql", _postgres()))
        for engine, database in engines:
            with database as found:
                if found is None:
                    continue
                url, note = found
                bridge = BridgeProcess(
                    Path(tmp) / engine,
                    database_url=url or None,
                    settings={"server": {"workers": args.workers}},
                )
                bridge.start()
                try:
                    rows = asyncio.run(_bench_engine(bridge.url, seconds, list_seconds))
                finally:
                    bridge.stop()
                table += [(engine, note, *row) for row in rows]
    _print(table, args.workers)


def _print(table: list[tuple[Any, ...]], workers: int) -> None:
    print(f"bridge bench: {os.cpu_count()} cores, {workers} bridge process(es), loopback HTTP")
    header = f"{'engine':<11} {'operation':<10} {'clients':>7} {'ops/s':>9} {'target':>8} errors"
    print(header)
    print("-" * len(header))
    notes = {}
    for engine, note, name, clients, rate, errors, target in table:
        notes[engine] = note
        shown = f">={target}" if target else ""
        print(f"{engine:<11} {name:<10} {clients:>7} {rate:>9.0f} {shown:>8} {errors:>6}")
    for engine, note in notes.items():
        print(f"  {engine}: {note}")


if __name__ == "__main__":
    main()
