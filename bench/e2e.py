"""End-to-end throughput: the client library against a local network of real processes.

Starts a bridge and 10 farmers on loopback (`metadisk.devnet.network`, as `metadisk up` does), then
measures, each in a fresh client process so its memory is its own:

- upload and download MiB/s of large files (256 MiB and 1 GiB), and the client's peak RSS
  (VmHWM of the client process and, separately, of its encoding worker processes);
- 1,000 objects of 4 KiB put and then got with 16 at a time (objects/s); 4 KiB of plaintext is
  4,112 bytes of ciphertext, the bridge's inline limit, so these are stored in its database in
  one call. The same with 4,097-byte objects, the smallest that go to farmers (begin object,
  begin segment, piece uploads, commit segment, commit object), shows the segment path.

Each runs on a plain-HTTP loopback network (as `metadisk up`) and again with TLS on every hop
(`LocalNetwork(tls=True)`: the bridge's HTTPS, farmers' node-key certificates), and the cost of
TLS is printed beside them (``--tls off|on|both``).

Prints a table with the targets beside the figures; never asserts. Every transfer is checked
byte for byte after it is timed.

    python bench/e2e.py            # about 5 minutes (both transports)
    python bench/e2e.py --quick    # about a minute: small sizes, a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metadisk.allocator import tune_for_streaming
from metadisk.client import AsyncProject, ClientConfig
from metadisk.devnet.network import LocalNetwork
from metadisk.runtime.tls import CA_FILE_ENV

MiB = 1 << 20
TARGETS = {
    "upload": "≥150 MiB/s",
    "download": "≥250 MiB/s",
    "rss": "≤300 MiB at 1 GiB",
    "put": "≥300 objects/s",
    "get": "≥600 objects/s",
}
TAHOE = "for scale, Tahoe-LAFS on these machines: ~12 MB/s up, ~18 MB/s down, ~8 small files/s"


@dataclass(frozen=True)
class Row:
    name: str
    value: float
    unit: str
    target: str
    note: str = ""


# -- the client process ------------------------------------------------------------------------


def peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of `pid` in MiB, 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (the worker pool sits under a forkserver)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def digest(path: Path) -> str:
    hasher = hashlib.blake2b()
    with open(path, "rb") as file:
        while chunk := file.read(8 * MiB):
            hasher.update(chunk)
    return hasher.hexdigest()


def client_config(offload: str) -> ClientConfig:
    """The library's default, or worker processes / threads forced (``--offload``)."""
    return ClientConfig(processes={"auto": None, "process": True, "thread": False}[offload])


async def client_transfer(
    grant: str, source: Path, target: Path, offload: str = "auto"
) -> dict[str, Any]:
    """Upload `source`, download it to `target`; times, peak memory and a byte check."""
    async with await AsyncProject.open(grant, config=client_config(offload)) as project:
        with contextlib.suppress(Exception):
            await project.create_bucket("bench")
        started = time.perf_counter()
        await project.upload("bench", source.name, str(source))
        uploaded = time.perf_counter()
        await project.download("bench", source.name, str(target))
        downloaded = time.perf_counter()
        workers = [peak_rss_mib(pid) for pid in descendants(os.getpid())]
        await project.delete("bench", source.name)
    return {
        "upload_s": uploaded - started,
        "download_s": downloaded - uploaded,
        "rss_main": peak_rss_mib(os.getpid()),
        "rss_workers": max(workers, default=0.0),
        "workers": len(workers),
        "same": digest(source) == digest(target),
    }


async def client_small(grant: str, count: int, size: int, concurrency: int) -> dict[str, Any]:
    """Put `count` objects of `size` bytes, then get them, `concurrency` at a time."""
    payloads = [os.urandom(size) for _ in range(count)]
    gate = asyncio.Semaphore(concurrency)
    async with await AsyncProject.open(grant) as project:
        bucket = f"small-{size}"
        await project.create_bucket(bucket)

        async def put(number: int) -> None:
            async with gate:
                await project.upload(bucket, f"obj/{number:05d}", payloads[number])

        async def get(number: int) -> bool:
            async with gate:
                chunks = [c async for c in project.stream(bucket, f"obj/{number:05d}")]
                return b"".join(chunks) == payloads[number]

        started = time.perf_counter()
        await asyncio.gather(*(put(n) for n in range(count)))
        put_done = time.perf_counter()
        checks = await asyncio.gather(*(get(n) for n in range(count)))
        got = time.perf_counter()
        await project.delete_bucket(bucket, force=True)
    return {"put_s": put_done - started, "get_s": got - put_done, "same": all(checks)}


def client_main(args: argparse.Namespace) -> None:
    tune_for_streaming()  # as the `metadisk` CLI does in its own process
    grant = Path(args.grant_file).read_text().strip()
    if args.client == "transfer":
        result = asyncio.run(
            client_transfer(grant, Path(args.source), Path(args.target), args.offload)
        )
    else:
        result = asyncio.run(client_small(grant, args.objects, args.size, args.concurrency))
    print(json.dumps(result), flush=True)


# -- the bench ---------------------------------------------------------------------------------


async def run_client(
    *args: str, env: dict[str, str] | None = None, script: str = __file__
) -> dict[str, Any]:
    """Run `script`'s client side with `args` in a process of its own; its last line, as JSON."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        script,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"client {args[:2]} failed:\n{err.decode()[-2000:]}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def make_source(path: Path, size: int) -> None:
    """`size` bytes of random-looking data, quickly: one random block repeated (encryption
    makes every copy different on the wire, so repetition gives the pipeline no shortcut)."""
    block = os.urandom(16 * MiB)
    with open(path, "wb") as out:
        left = size
        while left:
            out.write(block[: min(left, len(block))])
            left -= min(left, len(block))


async def bench(args: argparse.Namespace, root: Path, tls: bool) -> list[Row]:
    rows: list[Row] = []
    network = LocalNetwork(
        root / ("network-tls" if tls else "network"), farmers=args.farmers, tls=tls
    )
    env = {CA_FILE_ENV: str(network.ca_file)} if tls else {}
    os.environ.update(env)  # this process makes the tenant over the bridge's HTTPS too
    mode = " TLS" if tls else ""
    try:
        await network.start()
        tenant = await network.create_tenant()
        grant_file = root / "grant"
        grant_file.write_text(tenant.grant)
        grant_file.chmod(0o600)
        scheme = network.redundancy
        print(
            f"network{mode}: bridge + {len(network.farmers)} farmers, "
            f"{scheme.k}/{scheme.m}/{scheme.o}/{scheme.n}",
            file=sys.stderr,
        )
        for size_mib in args.sizes:
            source, target = root / f"source-{size_mib}", root / f"target-{size_mib}"
            await asyncio.to_thread(make_source, source, size_mib * MiB)
            print(f"transferring {size_mib} MiB ...", file=sys.stderr)
            result = await run_client(
                "--client", "transfer", "--grant-file", str(grant_file),
                "--source", str(source), "--target", str(target), "--offload", args.offload,
                env=env,
            )  # fmt: skip
            source.unlink()
            target.unlink()
            check = "" if result["same"] else "MISMATCH"
            label = f"{size_mib} MiB" if size_mib < 1024 else f"{size_mib // 1024} GiB"
            label += mode
            rows.append(
                Row(f"upload {label}", size_mib / result["upload_s"], "MiB/s",
                    TARGETS["upload"], check)
            )  # fmt: skip
            rows.append(
                Row(f"download {label}", size_mib / result["download_s"], "MiB/s",
                    TARGETS["download"], check)
            )  # fmt: skip
            rows.append(
                Row(f"client peak RSS {label}", result["rss_main"], "MiB", TARGETS["rss"],
                    f"helpers (forkserver, workers): {result['workers']}, largest "
                    f"{result['rss_workers']:.0f} MiB incl. shared segment buffers")
            )  # fmt: skip
        for size, label in ((4096, "4 KiB inline"), (4097, "4097 B on farmers")):
            label += mode
            print(f"{args.objects} objects of {label} ...", file=sys.stderr)
            result = await run_client(
                "--client", "small", "--grant-file", str(grant_file),
                "--objects", str(args.objects), "--size", str(size),
                "--concurrency", str(args.concurrency),
                env=env,
            )  # fmt: skip
            check = "" if result["same"] else "MISMATCH"
            # the targets are for 4 KiB objects; 4097 B shows the segment path beside them
            inline = size == 4096
            put_target, get_target = (TARGETS["put"], TARGETS["get"]) if inline else ("-", "-")
            rows.append(
                Row(f"put {label} x{args.concurrency}", args.objects / result["put_s"],
                    "objects/s", put_target, check)
            )  # fmt: skip
            rows.append(
                Row(f"get {label} x{args.concurrency}", args.objects / result["get_s"],
                    "objects/s", get_target, check)
            )  # fmt: skip
    finally:
        await network.stop()
        for name in env:
            os.environ.pop(name, None)
    return rows


def print_table(rows: list[Row]) -> None:
    print(f"{'measure':<36}{'value':>10}  {'unit':<10}{'target':<20}note")
    for row in rows:
        print(f"{row.name:<36}{row.value:>10.1f}  {row.unit:<10}{row.target:<20}{row.note}")
    plain = {row.name: row for row in rows if " TLS" not in row.name}
    for row in rows:
        base = plain.get(row.name.replace(" TLS", ""))
        if " TLS" in row.name and base is not None and base.value and row.unit != "MiB":
            change = 100 * (row.value - base.value) / base.value
            print(f"TLS cost, {base.name}: {base.value:.1f} -> {row.value:.1f} {row.unit} "
                  f"({change:+.0f}%)")  # fmt: skip
    print(TAHOE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a ~30 s smoke run")
    parser.add_argument("--farmers", type=int, default=10)
    parser.add_argument("--sizes", type=lambda t: [int(s) for s in t.split(",")],
                        help="file sizes in MiB, comma-separated (default 256,1024)")  # fmt: skip
    parser.add_argument("--objects", type=int, help="small objects (default 1000)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--tls",
        choices=("off", "on", "both"),
        default="both",
        help="plain HTTP (as `metadisk up`), TLS on every hop, or both to show its cost",
    )
    parser.add_argument("--dir", type=Path, help="work here instead of a temporary dir")
    parser.add_argument(
        "--offload",
        choices=("auto", "process", "thread"),
        default="auto",
        help="where the client encodes: the library's choice, or forced",
    )
    # The client side, run by the bench itself in a process of its own:
    parser.add_argument("--client", choices=("transfer", "small"), help=argparse.SUPPRESS)
    parser.add_argument("--grant-file", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args)
        return
    args.sizes = args.sizes or ([4, 16] if args.quick else [256, 1024])
    args.objects = args.objects or (64 if args.quick else 1000)
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.tls]
    rows = []
    for tls in modes:
        if args.dir is not None:
            args.dir.mkdir(parents=True, exist_ok=True)
            rows += asyncio.run(bench(args, args.dir, tls))
        else:
            with tempfile.TemporaryDirectory(prefix="metadisk-bench-") as temp:
                rows += asyncio.run(bench(args, Path(temp), tls))
    print_table(rows)


if __name__ == "__main__":
    main()
