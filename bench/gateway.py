"""S3 gateway throughput: boto3 through a real gateway process beside the library direct.

Starts a bridge and 10 farmers on loopback (as bench/e2e.py) and one gateway process
(`metadisk.devnet.gateway.GatewayProcess`, the library's defaults), then measures, each client
in a fresh process of its own:

- 256 MiB and 1 GiB up and down through boto3 (``upload_file``/``download_file`` with the default
  TransferConfig: multipart, 8 MiB parts, 10 threads) and the same file with the library direct
  (`AsyncProject.upload`/`download`, bench/e2e.py's client), MiB/s of each and the
  gateway/library ratio;
- 4 KiB puts and gets from 16 clients (16 threads each with its own boto3 client, and/or 16
  processes: ``--clients``), objects/s, with the CPU the bench client and the gateway burn;
- a large upload through a fresh gateway (boto3 ``upload_fileobj`` from a stream made on the fly,
  so the bench holds only what boto3 buffers) with the gateway's peak RSS (VmHWM) and its worker
  processes'. 1 GiB by default, 5 GiB with ``--big``.

Prints a table with the targets beside the figures; never asserts. Every transfer is checked
byte for byte after it is timed. Each row says where the machine's CPU went in that phase (the
gateway, the bench client, the bridge, the farmers and other processes): on a shared machine a
neighbour's load shows there, and ``--repeat N`` alternates library and gateway transfers N
times and keeps the best of each. ``--phases``, ``--part-mib`` and ``--threads`` are for
experiments (boto3's defaults otherwise). ``--py-spy DIR`` records a py-spy profile of the
gateway (and its workers) per phase into DIR, as collapsed stacks.

    python bench/gateway.py            # about 5 minutes on an idle machine (1 GiB RSS run)
    python bench/gateway.py --big      # the RSS run with 5 GiB (about 8 minutes)
    python bench/gateway.py --quick    # about a minute: small sizes, a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

# Shared with the library bench (the script's directory is on sys.path when run as a script).
from e2e import Row, descendants, digest, make_source, peak_rss_mib, run_client
from metadisk.devnet.gateway import GatewayProcess
from metadisk.devnet.network import LocalNetwork
from metadisk.gateway.config import Credential, new_credential

MiB = 1 << 20
TARGETS = {
    "ratio": "≥70% of library",
    "put": "≥300 objects/s",
    "rss": "<300 MiB",
}
BUCKET = "bench"
Pids = tuple[int, list[int], list[int]]  # the gateway, the bridge's processes, the farmers


# -- the S3 client processes -------------------------------------------------------------------


def s3_client(url: str, access_key: str, secret_key: str) -> Any:
    """A boto3 client of its own session (sessions are not shared between threads)."""
    import boto3
    from botocore.config import Config

    config = Config(
        s3={"addressing_style": "path"},
        signature_version="s3v4",
        retries={"max_attempts": 1, "mode": "standard"},
        max_pool_connections=16,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=config,
    )


def ensure_bucket(client: Any, bucket: str) -> None:
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)


def process_cpu(pid: int) -> float:
    """User plus system CPU seconds of `pid`, 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds the whole machine spent not idle (every process: bridge, farmers, ...)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    return process_cpu(pid) + sum(process_cpu(child) for child in descendants(pid))


class Phases:
    """Wall time, and the CPU of the bench client (this process and its workers), the gateway
    (its process and workers), the bridge, the farmers and the whole machine, of each phase."""

    def __init__(self, gateway_pid: int, bridge: list[int], farmers: list[int]) -> None:
        self.gateway_pid, self.bridge, self.farmers = gateway_pid, bridge, farmers
        self.last = self._now()
        self.phases: dict[str, dict[str, float]] = {}

    def _now(self) -> tuple[float, ...]:
        return (
            time.perf_counter(),
            tree_cpu(os.getpid()),
            tree_cpu(self.gateway_pid),
            machine_busy(),
            sum(tree_cpu(pid) for pid in self.bridge),
            sum(tree_cpu(pid) for pid in self.farmers),
        )

    def mark(self, name: str) -> float:
        now = self._now()
        wall = now[0] - self.last[0]
        self.phases[name] = {
            "s": wall,
            "client_cores": (now[1] - self.last[1]) / wall,
            "gateway_cores": (now[2] - self.last[2]) / wall,
            "machine_cores": (now[3] - self.last[3]) / wall,
            "bridge_cores": (now[4] - self.last[4]) / wall,
            "farmer_cores": (now[5] - self.last[5]) / wall,
        }
        self.last = now
        return wall


def transfer_config() -> Any:
    """boto3's default TransferConfig (8 MiB parts, 10 threads) unless the bench was told
    otherwise (``--part-mib``, ``--threads``: experiments)."""
    from boto3.s3.transfer import TransferConfig

    options: dict[str, int] = {}
    if part := int(os.environ.get("BENCH_PART_MIB", "0")):
        options["multipart_chunksize"] = part * MiB
    if threads := int(os.environ.get("BENCH_THREADS", "0")):
        options["max_concurrency"] = threads
    return TransferConfig(**options)


def s3_transfer(client: Any, pids: Pids, source: Path, target: Path) -> dict[str, Any]:
    """Upload `source` and download it to `target` with the default TransferConfig."""

    ensure_bucket(client, BUCKET)
    config = transfer_config()
    clock = Phases(*pids)
    client.upload_file(str(source), BUCKET, source.name, Config=config)
    clock.mark("upload")
    client.download_file(BUCKET, source.name, str(target), Config=config)
    clock.mark("download")
    client.delete_object(Bucket=BUCKET, Key=source.name)
    return {
        **clock.phases,
        "part_mib": config.multipart_chunksize / MiB,
        "threads": config.max_concurrency,
        "same": digest(source) == digest(target),
    }


class Stream:
    """A readable, non-seekable stream of `size` random-looking bytes made as it is read (one
    random block repeated, as e2e's `make_source`), hashing what it hands out."""

    def __init__(self, size: int, block: bytes) -> None:
        self.left, self.block, self.offset = size, block, 0
        self.hasher = hashlib.blake2b()

    def read(self, amount: int = -1) -> bytes:
        amount = self.left if amount is None or amount < 0 else min(amount, self.left)
        out = bytearray()
        while len(out) < amount:
            start = (self.offset + len(out)) % len(self.block)
            out += self.block[start : start + amount - len(out)]
        self.offset += amount
        self.left -= amount
        self.hasher.update(out)
        return bytes(out)


def s3_stream_upload(client: Any, pids: Pids, size: int) -> dict[str, Any]:
    """Upload `size` bytes from a stream (nothing on disk), then read them back and compare."""

    ensure_bucket(client, BUCKET)
    stream = Stream(size, os.urandom(16 * MiB))
    config = transfer_config()
    clock = Phases(*pids)
    client.upload_fileobj(stream, BUCKET, "stream", Config=config)
    clock.mark("upload")
    print(json.dumps(clock.phases), flush=True)  # the bench reads the gateway's RSS now
    hasher = hashlib.blake2b()
    body = client.get_object(Bucket=BUCKET, Key="stream")["Body"]
    while chunk := body.read(8 * MiB):
        hasher.update(chunk)
    client.delete_object(Bucket=BUCKET, Key="stream")
    return {
        **clock.phases,
        "part_mib": config.multipart_chunksize / MiB,
        "threads": config.max_concurrency,
        "bench_rss": peak_rss_mib(os.getpid()),
        "same": hasher.hexdigest() == stream.hasher.hexdigest(),
    }


def payload(number: int, size: int) -> bytes:
    """Object `number`'s bytes, the same in every process."""
    return hashlib.shake_256(number.to_bytes(8, "big")).digest(size)


_local = threading.local()
_keys: tuple[str, str, str] = ("", "", "")


def _client() -> Any:
    """This thread's (or process's) own client, made on first use."""
    if getattr(_local, "client", None) is None:
        _local.client = s3_client(*_keys)
    return _local.client


def _set_keys(keys: tuple[str, str, str]) -> None:
    global _keys
    _keys = keys
    _local.client = None  # a forked worker makes its own, not the parent's connections


def _warm(_: int) -> None:
    _client().head_bucket(Bucket=BUCKET)


def _put_range(start: int, stop: int, size: int) -> None:
    client = _client()
    for number in range(start, stop):
        client.put_object(Bucket=BUCKET, Key=f"small/{number:06d}", Body=payload(number, size))


def _get_range(start: int, stop: int, size: int) -> bool:
    client = _client()
    same = True
    for number in range(start, stop):
        body = client.get_object(Bucket=BUCKET, Key=f"small/{number:06d}")["Body"].read()
        same = same and body == payload(number, size)
    return same


def s3_small(
    keys: tuple[str, str, str], pids: Pids, count: int, size: int, clients: int, kind: str
) -> dict[str, Any]:
    """`count` puts then gets of `size` bytes from `clients` threads or processes, each with its
    own boto3 client doing an equal share one after another."""
    _set_keys(keys)
    ensure_bucket(_client(), BUCKET)
    pool: Executor
    if kind == "thread":
        pool = ThreadPoolExecutor(clients)
    else:
        pool = ProcessPoolExecutor(clients, initializer=_set_keys, initargs=(keys,))
    shares = [(count * i // clients, count * (i + 1) // clients) for i in range(clients)]
    with pool:
        # Every worker makes its client (and connection) before the clock starts.
        list(pool.map(_warm, range(clients * 4)))
        clock = Phases(*pids)
        list(pool.map(_put_range, *zip(*shares, strict=True), [size] * clients))
        clock.mark("put")
        got = list(pool.map(_get_range, *zip(*shares, strict=True), [size] * clients))
        clock.mark("get")
    return {**clock.phases, "same": all(got)}


def client_main(args: argparse.Namespace) -> None:
    keys = json.loads(Path(args.keys_file).read_text())
    pid = (keys["pid"], keys["bridge"], keys["farmers"])
    keys = (keys["url"], keys["access_key"], keys["secret_key"])
    if args.client == "transfer":
        result = s3_transfer(s3_client(*keys), pid, Path(args.source), Path(args.target))
    elif args.client == "stream":
        result = s3_stream_upload(s3_client(*keys), pid, args.size)
    else:
        result = s3_small(keys, pid, args.objects, args.size, args.concurrency, args.client)
    print(json.dumps(result), flush=True)


# -- measuring the gateway ---------------------------------------------------------------------


class Watch:
    """The peak RSS of the gateway's workers, sampled while they live, and optionally a py-spy
    profile of the gateway over a phase."""

    def __init__(self, pid: int, profile: Path | None = None, name: str = "") -> None:
        self.pid, self.profile, self.name = pid, profile, name
        self.workers: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._spy: subprocess.Popen[bytes] | None = None

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            for child in descendants(self.pid):
                self.workers[child] = max(self.workers.get(child, 0.0), peak_rss_mib(child))

    def __enter__(self) -> Watch:
        self._thread.start()
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if self.profile is not None and Path(spy).exists():
            self.profile.mkdir(parents=True, exist_ok=True)
            out = self.profile / f"{self.name}.txt"  # collapsed stacks (flamegraph.pl makes an svg)
            self._spy = subprocess.Popen(
                [spy, "record", "--pid", str(self.pid), "--subprocesses", "--rate", "100",
                 "--nonblocking", "--format", "raw", "-o", str(out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._spy is not None:
            self._spy.send_signal(2)  # py-spy writes its profile on SIGINT
            self._spy.wait(60)

    @property
    def worker_peak(self) -> float:
        return max(self.workers.values(), default=0.0)


# -- the bench ---------------------------------------------------------------------------------


async def run_s3(args: argparse.Namespace, keys_file: Path, *extra: str) -> dict[str, Any]:
    return await run_client("--keys-file", str(keys_file), *extra, script=__file__)


def label_of(size_mib: int) -> str:
    return f"{size_mib} MiB" if size_mib < 1024 else f"{size_mib // 1024} GiB"


async def start_gateway(root: Path, credential: Credential) -> GatewayProcess:
    gateway = GatewayProcess(root, [credential])  # the library's defaults: no config dir
    await gateway.start()
    return gateway


def write_keys(
    path: Path, network: LocalNetwork, gateway: GatewayProcess, credential: Credential
) -> None:
    bridge = [p.pid for p in (network.bridge, network.worker) if p is not None]
    path.write_text(
        json.dumps(
            {"url": gateway.url, "pid": gateway.pid, "bridge": bridge,
             "farmers": [farmer.pid for farmer in network.farmers],
             "access_key": credential.access_key, "secret_key": credential.secret_key}
        )
    )  # fmt: skip
    path.chmod(0o600)


async def bench(args: argparse.Namespace, root: Path) -> list[Row]:
    rows: list[Row] = []
    network = LocalNetwork(root / "network", farmers=args.farmers)
    gateway: GatewayProcess | None = None
    try:
        await network.start()
        tenant = await network.create_tenant()
        grant_file, keys_file = root / "grant", root / "keys"
        grant_file.write_text(tenant.grant)
        grant_file.chmod(0o600)
        credential = new_credential(tenant.grant)
        gateway = await start_gateway(root / "gateway", credential)
        write_keys(keys_file, network, gateway, credential)
        scheme = network.redundancy
        print(
            f"network: bridge + {len(network.farmers)} farmers, "
            f"{scheme.k}/{scheme.m}/{scheme.o}/{scheme.n}; gateway pid {gateway.pid}",
            file=sys.stderr,
        )
        for size_mib in args.sizes if "transfer" in args.phases else []:
            rows += await transfer_rows(args, root, grant_file, keys_file, gateway, size_mib)
        for kind in args.clients if "small" in args.phases else []:
            rows += await small_rows(args, keys_file, gateway, kind)
        await gateway.stop()
        if "rss" not in args.phases:
            return rows
        # A fresh gateway for the large upload, so its VmHWM is that upload's alone.
        gateway = await start_gateway(root / "gateway-rss", credential)
        write_keys(keys_file, network, gateway, credential)
        rows += await rss_rows(args, keys_file, gateway)
    finally:
        try:
            if gateway is not None and gateway.running:
                await gateway.stop()
        finally:
            await network.stop()
    return rows


async def transfer_rows(
    args: argparse.Namespace,
    root: Path,
    grant_file: Path,
    keys_file: Path,
    gateway: GatewayProcess,
    size_mib: int,
) -> list[Row]:
    source, target = root / f"source-{size_mib}", root / f"target-{size_mib}"
    await asyncio.to_thread(make_source, source, size_mib * MiB)
    label = label_of(size_mib)
    libraries, gateways = [], []
    for run in range(args.repeat):  # alternated, so a neighbour's load falls on both
        print(
            f"transferring {label} ({run + 1}/{args.repeat}): library direct ...", file=sys.stderr
        )
        libraries.append(await run_client(
            "--client", "transfer", "--grant-file", str(grant_file),
            "--source", str(source), "--target", str(target), "--offload", "auto",
        ))  # fmt: skip
        target.unlink()
        print(f"transferring {label} ({run + 1}/{args.repeat}): boto3 through the gateway ...",
              file=sys.stderr)  # fmt: skip
        with Watch(gateway.pid, args.py_spy, f"transfer-{size_mib}-{run}") as watch:
            gateways.append(await run_s3(
                args, keys_file, "--client", "transfer", "--source", str(source),
                "--target", str(target),
            ))  # fmt: skip
        target.unlink()
    source.unlink()
    # The best of the runs: noise on a shared machine only ever slows a run down.
    library = {
        "same": all(r["same"] for r in libraries),
        **{f"{w}_s": min(r[f"{w}_s"] for r in libraries) for w in ("upload", "download")},
    }
    s3 = {
        **min(gateways, key=lambda r: r["upload"]["s"]),
        "download": min((r["download"] for r in gateways), key=lambda p: p["s"]),
        "same": all(r["same"] for r in gateways),
    }
    rows = []
    for way in ("upload", "download"):
        lib, phase = size_mib / library[f"{way}_s"], s3[way]
        gw = size_mib / phase["s"]
        rows.append(Row(f"library {way} {label}", lib, "MiB/s", "-",
                        "" if library["same"] else "MISMATCH"))  # fmt: skip
        rows.append(Row(f"gateway {way} {label}", gw, "MiB/s", "-",
                        ("" if s3["same"] else "MISMATCH ") + cores(phase) +
                        f"; boto3 {s3['part_mib']:.0f} MiB parts x{s3['threads']}"))  # fmt: skip
        rows.append(Row(f"gateway/library {way} {label}", 100 * gw / lib, "%", TARGETS["ratio"]))
    rows.append(
        Row(f"gateway peak RSS after {label}", peak_rss_mib(gateway.pid), "MiB", "-",
            f"workers: {len(watch.workers)}, largest {watch.worker_peak:.0f} MiB")
    )  # fmt: skip
    return rows


def cores(phase: dict[str, float]) -> str:
    ours = sum(phase[f"{who}_cores"] for who in ("gateway", "client", "bridge", "farmer"))
    return (
        f"CPU cores: gateway {phase['gateway_cores']:.2f}, bench client "
        f"{phase['client_cores']:.2f}, bridge {phase['bridge_cores']:.2f}, farmers "
        f"{phase['farmer_cores']:.2f}, other processes {phase['machine_cores'] - ours:.2f}, "
        f"machine {phase['machine_cores']:.2f}/{os.cpu_count()}"
    )


def per_object(phase: dict[str, float], objects: int) -> str:
    return f"{1000 * phase['gateway_cores'] * phase['s'] / objects:.2f} ms/object"


async def small_rows(
    args: argparse.Namespace, keys_file: Path, gateway: GatewayProcess, kind: str
) -> list[Row]:
    label = f"4 KiB x{args.concurrency} {kind}" + ("es" if kind == "process" else "s")
    print(f"{args.objects} objects of {label} ...", file=sys.stderr)
    with Watch(gateway.pid, args.py_spy, f"small-{kind}"):
        result = await run_s3(
            args, keys_file, "--client", kind, "--objects", str(args.objects),
            "--size", "4096", "--concurrency", str(args.concurrency),
        )  # fmt: skip
    check = "" if result["same"] else "MISMATCH "
    return [
        Row(f"{way} {label}", args.objects / result[way]["s"], "objects/s", target,
            check + cores(result[way]) + "; gateway CPU " + per_object(result[way], args.objects))
        for way, target in (("put", TARGETS["put"]), ("get", "-"))
    ]  # fmt: skip


async def rss_rows(args: argparse.Namespace, keys_file: Path, gateway: GatewayProcess) -> list[Row]:
    size_mib = args.rss_size
    label = label_of(size_mib)
    print(f"streaming {label} through a fresh gateway for its RSS ...", file=sys.stderr)
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--keys-file", str(keys_file), "--client", "stream",
        "--size", str(size_mib * MiB),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    with Watch(gateway.pid, args.py_spy, f"stream-{size_mib}") as watch:
        first = await process.stdout.readline()  # the upload is done
        rss, workers = peak_rss_mib(gateway.pid), dict(watch.workers)
    out, err = await process.communicate()
    if process.returncode != 0 or not first:
        raise RuntimeError(f"stream client failed:\n{err.decode()[-2000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    check = "" if result["same"] else "MISMATCH "
    largest = max(workers.values(), default=0.0)
    upload = result["upload"]
    return [
        Row(f"gateway upload {label} (stream)", size_mib / upload["s"], "MiB/s", "-",
            check + cores(upload) + f"; boto3 {result['part_mib']:.0f} MiB parts "
            f"x{result['threads']}; bench client peak RSS {result['bench_rss']:.0f} MiB"),
        Row(f"gateway peak RSS, {label} upload", rss, "MiB", TARGETS["rss"],
            f"main process (fresh); workers: {len(workers)}, largest {largest:.0f} MiB, "
            f"all {rss + sum(workers.values()):.0f} MiB"),
    ]  # fmt: skip


def print_table(rows: list[Row]) -> None:
    print(f"{'measure':<40}{'value':>10}  {'unit':<10}{'target':<18}note")
    for row in rows:
        print(f"{row.name:<40}{row.value:>10.1f}  {row.unit:<10}{row.target:<18}{row.note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a ~1 minute smoke run")
    parser.add_argument("--big", action="store_true", help="the RSS run with 5 GiB (not 1 GiB)")
    parser.add_argument("--farmers", type=int, default=10)
    parser.add_argument("--sizes", type=lambda t: [int(s) for s in t.split(",")],
                        help="file sizes in MiB, comma-separated (default 256,1024)")  # fmt: skip
    parser.add_argument("--rss-size", type=int, help="MiB streamed for the RSS figure")
    parser.add_argument(
        "--repeat", type=int, default=1, help="transfers per size, alternated; the best counts"
    )
    parser.add_argument("--objects", type=int, help="small objects (default 2000)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--clients",
        type=lambda t: t.split(","),
        default=["thread", "process"],
        help="the small-object clients: thread, process or thread,process (default both)",
    )
    parser.add_argument(
        "--phases",
        type=lambda t: t.split(","),
        default=["transfer", "small", "rss"],
        help="which to run, comma-separated: transfer, small, rss (default all)",
    )
    parser.add_argument("--part-mib", type=int, help="boto3 part size (default boto3's, 8)")
    parser.add_argument("--threads", type=int, help="boto3 transfer threads (default boto3's, 10)")
    parser.add_argument("--py-spy", type=Path, help="record a py-spy profile per phase here")
    parser.add_argument("--dir", type=Path, help="work here instead of a temporary dir")
    # The client side, run by the bench itself in a process of its own:
    parser.add_argument(
        "--client", choices=("transfer", "stream", "thread", "process"), help=argparse.SUPPRESS
    )
    parser.add_argument("--keys-file", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args)
        return
    # The S3 client processes read these (boto3's defaults when unset).
    os.environ["BENCH_PART_MIB"] = str(args.part_mib or 0)
    os.environ["BENCH_THREADS"] = str(args.threads or 0)
    args.sizes = args.sizes or ([4, 16] if args.quick else [256, 1024])
    args.objects = args.objects or (64 if args.quick else 2000)
    args.rss_size = args.rss_size or (32 if args.quick else 5120 if args.big else 1024)
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        rows = asyncio.run(bench(args, args.dir))
    else:
        with tempfile.TemporaryDirectory(prefix="metadisk-bench-gw-") as temp:
            rows = asyncio.run(bench(args, Path(temp)))
    print_table(rows)


if __name__ == "__main__":
    main()
