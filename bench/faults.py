"""Transfers with farmers hung (SIGSTOP) or dead (SIGKILL): how long each takes, beside its bound.

Starts a bridge and 10 farmers on loopback (`metadisk.devnet.network`, 4/6/8/10), stores one
object with every farmer up, then measures, each with a fresh client (so nothing it learned about
farmers carries over from one transfer to the next):

- downloads of it with 0, 1, 2 and 4 farmers hung, then killed;
- uploads of the same size with 0, 1, 2 and 3 farmers hung, then killed. Three is n - o + 1:
  with every farmer in every segment (ten farmers, n = 10) no replacement exists, so that upload
  must fail, with `UploadFailed` naming the pieces and their codes.

The target: every faulted transfer, and every upload that must fail, ends within twice its
no-fault time (the median of `--baseline-runs`) plus 3 s; with `--repeat` the slowest run of a
case is the one shown. Prints a table and asserts nothing. Every download is checked byte for
byte after it is timed. Hung farmers get SIGCONT and killed ones are started again (and waited
for) after each case; only processes the bench started are signalled, by pid.

Killed farmers: until the bridge's uptime checks notice them, the bridge keeps handing them out,
so a killed farmer costs what a refused connection costs, once per piece sent to it.

    python bench/faults.py              # about a minute, more while faults still hang transfers
    python bench/faults.py --size 16 --faults hung
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from metadisk.allocator import tune_for_streaming
from metadisk.client import AsyncProject, ClientConfig, ClientError
from metadisk.devnet.farmer import FarmerProcess
from metadisk.devnet.network import LocalNetwork

MiB = 1 << 20
DOWNLOAD_FAULTS = (0, 1, 2, 4)
UPLOAD_FAULTS = (0, 1, 2, 3)


@dataclass(frozen=True)
class Row:
    transfer: str
    fault: str
    farmers: int
    seconds: float
    result: str
    bound: float | None  # None: the no-fault row the bound is made from

    @property
    def verdict(self) -> str:
        if self.bound is None:
            return "baseline"
        return "yes" if self.seconds <= self.bound else "NO"


def make_source(path: Path, size: int) -> None:
    """`size` bytes: one random block repeated (encryption makes every copy differ on the wire)."""
    block = os.urandom(min(size, 16 * MiB))
    with open(path, "wb") as out:
        left = size
        while left:
            out.write(block[: min(left, len(block))])
            left -= min(left, len(block))


def digest(path: Path) -> str:
    hasher = hashlib.blake2b()
    with open(path, "rb") as file:
        while chunk := file.read(8 * MiB):
            hasher.update(chunk)
    return hasher.hexdigest()


def describe(error: BaseException) -> str:
    """One line: the error's class, code and message (cut short)."""
    code = getattr(error, "code", "")
    text = f"{type(error).__name__}[{code}]: {error}" if code else f"{type(error).__name__}"
    return text if len(text) < 160 else text[:157] + "..."


class Faults:
    """Hangs or kills farmers the bench started, and undoes it."""

    def __init__(self, network: LocalNetwork) -> None:
        self.network = network

    @contextlib.asynccontextmanager
    async def applied(self, kind: str, farmers: Sequence[FarmerProcess]) -> AsyncIterator[None]:
        if kind == "hung":
            for farmer in farmers:
                os.kill(farmer.pid, signal.SIGSTOP)
            try:
                yield
            finally:
                for farmer in farmers:
                    os.kill(farmer.pid, signal.SIGCONT)
            return
        for farmer in farmers:
            await farmer.kill()
        try:
            yield
        finally:
            since = int(time.time())
            await asyncio.gather(*(farmer.start() for farmer in farmers))
            await self.network.wait_online(farmers, since=since)


async def timed(work: Callable[[], Awaitable[str]], give_up: float) -> tuple[float, str]:
    """Seconds `work` took and what it says (or the error it raised, or that it hung)."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(give_up):
            result = await work()
    except TimeoutError:
        result = f"still running after {give_up:.0f} s: given up"
    except ClientError as exc:
        result = describe(exc)
    return time.perf_counter() - started, result


async def bench(args: argparse.Namespace, root: Path) -> list[Row]:
    rows: list[Row] = []
    network = LocalNetwork(root / "network", farmers=10)
    source, target = root / "source", root / "target"
    await asyncio.to_thread(make_source, source, args.size * MiB)
    expected = await asyncio.to_thread(digest, source)
    faults = Faults(network)
    try:
        await network.start()
        scheme = network.redundancy
        print(
            f"network: bridge + {len(network.farmers)} farmers, "
            f"{scheme.k}/{scheme.m}/{scheme.o}/{scheme.n}; {args.size} MiB objects",
            file=sys.stderr,
        )
        grant = (await network.create_tenant()).grant
        config = ClientConfig()
        counter = iter(range(1_000_000))

        async def upload() -> str:
            async with await AsyncProject.open(grant, config=config) as project:
                await project.upload("bench", f"up-{next(counter)}", str(source))
            return "stored"

        async def download() -> str:
            async with await AsyncProject.open(grant, config=config) as project:
                await project.download("bench", "object", str(target))
            same = await asyncio.to_thread(digest, target) == expected
            return "ok" if same else "MISMATCH"

        async with await AsyncProject.open(grant, config=config) as project:
            await project.create_bucket("bench")
            await project.upload("bench", "object", str(source))
        for _ in range(2):  # warm up: first connections, page cache, thread pools
            await timed(download, args.give_up)
            await timed(upload, args.give_up)

        plans = {"download": (download, DOWNLOAD_FAULTS), "upload": (upload, UPLOAD_FAULTS)}
        for transfer in args.transfers:
            work, counts = plans[transfer]
            times = []
            for _ in range(args.baseline_runs):
                seconds, result = await timed(work, args.give_up)
                times.append(seconds)
            baseline = statistics.median(times)
            spread = f"{result}; median of {len(times)}: {min(times):.2f}-{max(times):.2f} s"
            rows.append(Row(transfer, "none", 0, baseline, spread, None))
            bound = 2 * baseline + 3
            for kind in args.faults:
                for count in counts:
                    if count == 0:
                        continue
                    print(f"{transfer} with {count} farmers {kind} ...", file=sys.stderr)
                    chosen = network.farmers[:count]
                    runs = []
                    for _ in range(args.repeat):
                        async with faults.applied(kind, chosen):
                            seconds, result = await timed(work, args.give_up)
                        runs.append(seconds)
                        await asyncio.sleep(1)  # let woken farmers finish what queued up
                    if len(runs) > 1:  # the slowest counts: the target is a bound
                        result += f"; runs: {', '.join(f'{t:.2f}' for t in runs)} s"
                    rows.append(Row(transfer, kind, count, max(runs), result, bound))
    finally:
        with contextlib.suppress(Exception):
            await network.stop()
    return rows


def print_table(rows: list[Row]) -> None:
    head = f"{'transfer':<10}{'fault':<8}{'farmers':>8}{'time s':>9}{'bound s':>9}"
    print(f"{head}  {'within':<9}result")
    for row in rows:
        bound = "-" if row.bound is None else f"{row.bound:.1f}"
        print(
            f"{row.transfer:<10}{row.fault:<8}{row.farmers:>8}{row.seconds:>9.2f}{bound:>9}  "
            f"{row.verdict:<9}{row.result}"
        )
    print("bound: 2 x the no-fault time + 3 s; an upload with 3 farmers down must fail within it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="object size in MiB (default 64)")
    parser.add_argument(
        "--faults",
        type=lambda t: t.split(","),
        default=["hung", "killed"],
        help="hung, killed or both, comma-separated (default both)",
    )
    parser.add_argument(
        "--transfers",
        type=lambda t: t.split(","),
        default=["download", "upload"],
        help="download, upload or both, comma-separated (default both)",
    )
    parser.add_argument("--give-up", type=float, default=120.0, help="seconds before a transfer "
                        "counts as hung (default 120)")  # fmt: skip
    parser.add_argument("--baseline-runs", type=int, default=3)
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each faulted case; the slowest is shown"
    )
    parser.add_argument("--dir", type=Path, help="work here instead of a temporary dir")
    args = parser.parse_args()
    tune_for_streaming()  # as the `metadisk` CLI does in its own process
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        rows = asyncio.run(bench(args, args.dir))
    else:
        with tempfile.TemporaryDirectory(prefix="metadisk-faults-") as temp:
            rows = asyncio.run(bench(args, Path(temp)))
    print_table(rows)


if __name__ == "__main__":
    main()
