"""Benchmark one farmer process on loopback: throughput, piece rates, server CPU per GiB.

    python bench/farmer.py            # full run (about a minute)
    python bench/farmer.py --quick    # smoke run (about 15 s)
    python bench/farmer.py --layout   # piece-store layouts: sharded files vs an append log
    python bench/farmer.py --dir /var/tmp   # where the data dir goes (default: the temp dir)

Figures are printed beside their targets; nothing is asserted. Server CPU comes from
/proc/<pid>/stat of the farmer process (user + system time).

The data dir's place matters on this project's VMs: their ext4 has no journal, and such an ext4
checks every free inode it considers for a new file against the inode table, skipping those
deleted in the last 5 minutes (while their table block is dirty). In a directory whose block group
saw many recent deletes (/tmp, where every test suite cleans up) creating one empty file costs up
to ~700 us of CPU instead of ~20, a third of the farmer's per-piece cost. The "create empty file"
row shows what it costs in the data dir at the time; the bench syncs first (so only the last 5
seconds of deletes count) and deletes nothing of its own until the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from metadisk.core.encoding import b64encode
from metadisk.core.identity import Identity
from metadisk.core.merkle import digest_piece
from metadisk.core.messages import Action, OrderLimit
from metadisk.devnet.farmer import FarmerProcess, prepare_farmer
from metadisk.farmer.config import TrustedBridge

MIB = 1 << 20
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class Row:
    name: str
    value: float
    unit: str
    target: str
    cpu_per_gib: float | None


class Connection(asyncio.BufferedProtocol):
    """A minimal keep-alive HTTP/1.1 client that reads into one reused buffer.

    The bench measures the farmer, so the client must cost as little CPU as possible: aiohttp's
    client copies every chunk, this one counts GET bodies without keeping them.
    """

    def __init__(self) -> None:
        self._buffer = memoryview(bytearray(1 << 20))
        self._head = bytearray()
        self._remaining: int | None = None
        self._keep = False
        self._body = bytearray()
        self._status = 0
        self._received = 0
        self._waiter: asyncio.Future[tuple[int, bytes, int]] | None = None
        self.transport: asyncio.Transport | None = None

    @classmethod
    async def open(cls, url: str) -> Connection:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        _, connection = await asyncio.get_running_loop().create_connection(cls, host, int(port))
        return connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc or ConnectionError("connection closed"))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        data = self._buffer[:nbytes]
        if self._remaining is None:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self._head[:end]).split(b"\r\n")
            self._status = int(lines[0].split()[1])
            length = next(
                int(line.split(b":", 1)[1])
                for line in lines[1:]
                if line.lower().startswith(b"content-length:")
            )
            data = memoryview(bytes(self._head[end + 4 :]))
            self._head = bytearray()
            self._remaining = length
            self._keep = self._keep or self._status >= 300
        take = min(len(data), self._remaining)
        if self._keep:
            self._body += data[:take]
        self._received += take
        self._remaining -= take
        if self._remaining == 0 and self._waiter is not None:
            self._waiter.set_result((self._status, bytes(self._body), self._received))

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes, int]:
        """(status, body if kept, body bytes received); GET bodies are counted, not kept."""
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._remaining, self._received, self._body = None, 0, bytearray()
        self._keep = method != "GET"
        lines = [f"{method} {path} HTTP/1.1", "Host: farmer"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if method != "GET":
            lines.append(f"Content-Length: {len(body)}")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        if body:
            self.transport.write(body)
        return await self._waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Bench:
    def __init__(self, farmer: FarmerProcess, bridge: Identity) -> None:
        self.farmer = farmer
        self.bridge = bridge
        self.stored: dict[int, list[bytes]] = {}  # piece size -> piece ids

    def limit(self, piece_id: bytes, action: Action, size: int) -> str:
        now = int(time.time())
        limit = OrderLimit(
            serial=os.urandom(16),
            bridge_id=self.bridge.node_id,
            node_id=self.farmer.identity.node_id,
            piece_id=piece_id,
            action=action,
            limit=size,
            issued_at=now,
            expires_at=now + 3600,
        ).signed_by(self.bridge)
        return b64encode(limit.encode())

    async def run(
        self, count: int, streams: int, make: Callable[[Connection, int], Awaitable[int]]
    ) -> tuple[float, int, float]:
        """Run `make(connection, i)` for i < count on `streams` connections:
        (seconds, bytes moved, server CPU seconds)."""
        queue = iter(range(count))
        moved = 0
        connections = [await Connection.open(self.farmer.url) for _ in range(streams)]

        async def worker(connection: Connection) -> None:
            nonlocal moved
            for i in queue:
                done = await make(connection, i)  # not `moved += await`: reads `moved` too early
                moved += done

        try:
            cpu = cpu_seconds(self.farmer.pid)
            start = time.perf_counter()
            await asyncio.gather(*(worker(connection) for connection in connections))
            return time.perf_counter() - start, moved, cpu_seconds(self.farmer.pid) - cpu
        finally:
            for connection in connections:
                connection.close()

    async def put(self, size: int, count: int, streams: int) -> tuple[float, int, float]:
        data = os.urandom(size)
        piece_hash = b64encode(digest_piece(data).piece_hash)
        ids = [os.urandom(32) for _ in range(count)]
        limits = [self.limit(pid, Action.PUT, size) for pid in ids]  # signed before the clock

        async def one(connection: Connection, i: int) -> int:
            headers = {"X-Metadisk-Order-Limit": limits[i], "X-Metadisk-Piece-Hash": piece_hash}
            status, body, _ = await connection.request(
                "PUT", f"/v1/pieces/{ids[i].hex()}", headers, data
            )
            if status != 201:
                raise RuntimeError(f"PUT failed: {status} {body[:200]!r}")
            return size

        result = await self.run(count, streams, one)
        self.stored.setdefault(size, []).extend(ids)
        return result

    async def get(self, size: int, count: int, streams: int) -> tuple[float, int, float]:
        ids = self.stored[size]
        picks = [ids[i % len(ids)] for i in range(count)]
        limits = [self.limit(pid, Action.GET, size) for pid in picks]

        async def one(connection: Connection, i: int) -> int:
            headers = {"X-Metadisk-Order-Limit": limits[i]}
            status, body, received = await connection.request(
                "GET", f"/v1/pieces/{picks[i].hex()}", headers
            )
            if status != 200 or received != size:
                raise RuntimeError(f"GET failed: {status} {body[:200]!r}")
            return received

        return await self.run(count, streams, one)


async def serve_bench(quick: bool, parent: str | None) -> list[Row]:
    scale = 0.25 if quick else 1.0
    big = max(8, int(384 * scale))  # 2 MiB pieces per throughput run
    workdir = Path(tempfile.mkdtemp(prefix="metadisk-bench-", dir=parent))
    os.sync()  # clean inode tables: see the module docstring
    bridge = Identity.generate()
    trusted = TrustedBridge(bridge.node_id, bridge.public_key, "http://127.0.0.1:9")
    config, identity = prepare_farmer(
        workdir / "farmer", [trusted], allocated=16 << 30, checkin_interval=3600
    )
    probe = create_cost(workdir / "farmer" / "probe")
    rows = [Row("create empty file (data dir)", probe, "us CPU", "", None)]
    for threads in (1, 8):
        ceiling = await asyncio.to_thread(
            disk_ceiling, workdir / f"disk{threads}", 2 * MIB, max(16, big // 2), threads
        )
        rows.append(Row(f"disk alone, 2 MiB x{threads}", ceiling, "MiB/s", "(reference)", None))
    farmer = FarmerProcess(config, identity)
    await farmer.start()
    try:
        bench = Bench(farmer, bridge)
        await bench.put(2 * MIB, 8, 4)  # warm up connections and the page cache

        for streams in (1, 8):
            seconds, moved, cpu = await bench.put(2 * MIB, big, streams)
            rows.append(throughput(f"PUT 2 MiB x{streams}", seconds, moved, cpu, ">= 500"))
        for streams in (1, 8):
            seconds, moved, cpu = await bench.get(2 * MIB, big * 2, streams)
            rows.append(throughput(f"GET 2 MiB x{streams}", seconds, moved, cpu, ">= 800"))
        for size, label in ((4096, "4 KiB"), (64 << 10, "64 KiB")):
            count = max(200, int(2000 * scale))
            seconds, moved, cpu = await bench.put(size, count, 8)
            rows.append(
                Row(f"PUT {label} x8", count / seconds, "pieces/s", "", cpu_gib(cpu, moved))
            )
            seconds, moved, cpu = await bench.get(size, count, 8)
            rows.append(
                Row(f"GET {label} x8", count / seconds, "pieces/s", "", cpu_gib(cpu, moved))
            )
    finally:
        await farmer.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


def disk_ceiling(directory: Path, size: int, count: int, threads: int) -> float:
    """MiB/s of plain write + fsync + rename of `size`-byte files on `threads` threads: what
    the disk under the data dir allows right now, with no HTTP, hashing or database."""
    data = os.urandom(size)
    directory.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> None:
        temp, final = directory / f"{i}.part", directory / f"{i}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, final)
        _fsync_dir(directory)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    seconds = time.perf_counter() - start
    # the files stay until the end: deleting them now would make the farmer's file creations
    # scan their inodes (see the module docstring)
    os.sync()
    return count * size / MIB / seconds


def create_cost(directory: Path, count: int = 500) -> float:
    """Microseconds of CPU to create one empty file in `directory` (kept until the end)."""
    directory.mkdir(parents=True, exist_ok=True)
    start = time.process_time()
    for i in range(count):
        os.close(os.open(directory / str(i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return (time.process_time() - start) / count * 1e6


def cpu_gib(cpu: float, moved: int) -> float:
    return cpu / (moved / (1 << 30)) if moved else 0.0


def throughput(name: str, seconds: float, moved: int, cpu: float, target: str) -> Row:
    return Row(name, moved / MIB / seconds, "MiB/s", target, cpu_gib(cpu, moved))


def print_rows(rows: list[Row], title: str) -> None:
    print(f"\n{title}")
    print(f"{'scenario':<34}{'value':>12}  {'unit':<10}{'target':<12}{'server CPU-s/GiB':>18}")
    for row in rows:
        cpu = "" if row.cpu_per_gib is None else f"{row.cpu_per_gib:.2f}"
        print(f"{row.name:<34}{row.value:>12.1f}  {row.unit:<10}{row.target:<12}{cpu:>18}")
    sys.stdout.flush()


# -- piece-store layouts


def layout_bench(pieces: int, size: int, durable: int) -> list[Row]:
    """Sharded files (various fan-outs) against an append-only log with a SQLite index.

    Fewer directories at the same piece count reproduce the directory sizes of a bigger node: 100k
    pieces in 16 directories is how full each of 256 directories is at 1.6M pieces.
    """
    rows: list[Row] = []
    rng = random.Random(1)
    ids = [rng.randbytes(32).hex() for _ in range(pieces)]
    data = os.urandom(size)
    layouts: list[tuple[str, Callable[[Path], list[tuple[str, float, str]]]]] = [
        ("files/256 dirs", lambda d: files_layout(d, ids, data, durable, hexes=[2])),
        ("files/65536 dirs", lambda d: files_layout(d, ids, data, durable, hexes=[2, 2])),
        ("files/16 dirs", lambda d: files_layout(d, ids, data, durable, hexes=[1])),
        ("files/1 dir", lambda d: files_layout(d, ids, data, durable, hexes=[])),
        ("log+index", lambda d: log_layout(d, ids, data, durable)),
    ]
    for name, run in layouts:
        workdir = Path(tempfile.mkdtemp(prefix="metadisk-layout-"))
        try:
            results = run(workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        for label, value, unit in results:
            rows.append(Row(f"{name}: {label}", value, unit, "", None))
        print_rows(rows[-len(results) :], name)
    return rows


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)


def files_layout(
    root: Path, ids: list[str], data: bytes, durable: int, hexes: list[int]
) -> list[tuple[str, float, str]]:
    """One file per piece, written to tmp/ then renamed under `hexes` levels of directories."""
    tmp = root / "tmp"
    tmp.mkdir()
    pieces_dir = root / "pieces"

    def path(pid: str) -> Path:
        parts, at = [], 0
        for width in hexes:
            parts.append(pid[at : at + width])
            at += width
        return pieces_dir.joinpath(*parts, pid)

    def write(pid: str, sync: bool) -> None:
        temp = tmp / f"{pid}.part"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        if sync:
            os.fsync(fd)
        os.close(fd)
        final = path(pid)
        if not final.parent.is_dir():
            final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(temp, final)
        if sync:
            _fsync_dir(final.parent)

    start = time.perf_counter()
    for pid in ids[durable:]:
        write(pid, False)
    bulk_rate = (len(ids) - durable) / (time.perf_counter() - start)
    # durable writes last, into directories already as full as the node's
    start = time.perf_counter()
    for pid in ids[:durable]:
        write(pid, True)
    durable_rate = durable / (time.perf_counter() - start)
    os.sync()
    used = disk_usage(root)
    picks = random.Random(2).sample(ids, min(20_000, len(ids)))
    start = time.perf_counter()
    for pid in picks:
        with open(path(pid), "rb") as file:
            file.read()
    read_rate = len(picks) / (time.perf_counter() - start)
    start = time.perf_counter()
    listed = sum(1 for _ in _walk_files(pieces_dir))
    scan_rate = listed / (time.perf_counter() - start)
    start = time.perf_counter()
    for pid in picks[:5000]:
        os.unlink(path(pid))
    delete_rate = min(5000, len(picks)) / (time.perf_counter() - start)
    return [
        ("write+fsync", durable_rate, "pieces/s"),
        ("write", bulk_rate, "pieces/s"),
        ("random read", read_rate, "pieces/s"),
        ("list all", scan_rate, "pieces/s"),
        ("delete", delete_rate, "pieces/s"),
        ("disk per piece", used / len(ids), "bytes"),
    ]


def _walk_files(root: Path) -> Iterator[str]:
    for entry in os.scandir(root):
        if entry.is_dir(follow_symlinks=False):
            yield from _walk_files(Path(entry.path))
        else:
            yield entry.name


def log_layout(
    root: Path, ids: list[str], data: bytes, durable: int
) -> list[tuple[str, float, str]]:
    """One append-only file; an index maps piece id to (offset, length)."""
    db = sqlite3.connect(root / "index.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE idx (id BLOB PRIMARY KEY, offset INTEGER, size INTEGER) WITHOUT ROWID")
    log = os.open(root / "pieces.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    offset = 0

    def write(batch: list[str], sync: bool) -> None:
        nonlocal offset
        rows = []
        for pid in batch:
            os.write(log, data)
            if sync:
                os.fdatasync(log)
            rows.append((bytes.fromhex(pid), offset, len(data)))
            offset += len(data)
            if sync:  # the index entry must be durable before the receipt, too
                db.execute("PRAGMA synchronous=FULL")
                db.execute("INSERT INTO idx VALUES (?, ?, ?)", rows.pop())
        if rows:
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN")
            db.executemany("INSERT INTO idx VALUES (?, ?, ?)", rows)
            db.execute("COMMIT")

    start = time.perf_counter()
    write(ids[durable:], False)
    bulk_rate = (len(ids) - durable) / (time.perf_counter() - start)
    start = time.perf_counter()
    write(ids[:durable], True)
    durable_rate = durable / (time.perf_counter() - start)
    os.close(log)
    os.sync()
    used = disk_usage(root)
    picks = random.Random(2).sample(ids, min(20_000, len(ids)))
    start = time.perf_counter()
    with open(root / "pieces.log", "rb") as file:
        for pid in picks:
            off, size = db.execute(
                "SELECT offset, size FROM idx WHERE id = ?", (bytes.fromhex(pid),)
            ).fetchone()
            os.pread(file.fileno(), size, off)
    read_rate = len(picks) / (time.perf_counter() - start)
    start = time.perf_counter()
    listed = sum(1 for _ in db.execute("SELECT id FROM idx"))
    scan_rate = listed / (time.perf_counter() - start)
    start = time.perf_counter()
    db.execute("BEGIN")
    for pid in picks[:5000]:  # a delete only drops the index entry: space needs compaction
        db.execute("DELETE FROM idx WHERE id = ?", (bytes.fromhex(pid),))
    db.execute("COMMIT")
    delete_rate = min(5000, len(picks)) / (time.perf_counter() - start)
    db.close()
    return [
        ("write+fsync", durable_rate, "pieces/s"),
        ("write", bulk_rate, "pieces/s"),
        ("random read", read_rate, "pieces/s"),
        ("list all", scan_rate, "pieces/s"),
        ("delete, no compaction", delete_rate, "pieces/s"),
        ("disk per piece", used / len(ids), "bytes"),
    ]


def disk_usage(root: Path) -> int:
    total = 0
    for directory, _dirs, files in os.walk(root):
        total += os.stat(directory).st_blocks * 512
        total += sum(os.stat(os.path.join(directory, name)).st_blocks * 512 for name in files)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~15 s smoke run")
    parser.add_argument("--layout", action="store_true", help="compare piece-store layouts")
    parser.add_argument("--pieces", type=int, default=100_000, help="pieces for --layout")
    parser.add_argument("--size", type=int, default=4096, help="piece size for --layout")
    parser.add_argument("--dir", help="where to make the data dir (default: the temp dir)")
    args = parser.parse_args()
    if args.dir is not None:
        Path(args.dir).mkdir(parents=True, exist_ok=True)
    if args.layout:
        durable = min(2000, args.pieces // 10)
        print(f"piece-store layouts: {args.pieces} pieces of {args.size} bytes")
        layout_bench(args.pieces, args.size, durable)
        return
    before = os.getloadavg()[0]
    rows = asyncio.run(serve_bench(args.quick, args.dir))
    title = f"farmer on loopback ({'quick' if args.quick else 'full'} run, MiB = 2^20)"
    print_rows(rows, f"{title}; load average {before:.1f} before, {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
