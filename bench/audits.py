"""What auditing costs: audits per second, the bridge's CPU per audit, and uploads with the
auditor at a high rate against the auditor effectively off.

Starts a bridge and 10 farmers on loopback (`metadisk.devnet.network`, as `metadisk up` runs
them: one ``metadisk bridge run`` process for the API and the chores, or with
``--separate-worker`` the API and a ``metadisk bridge worker`` apart, as a deployment would),
stores some objects so every farmer holds pieces, then alternates two auditor settings,
restarting the process that runs the chores for each (and making every node due an audit, as
each node's next audit is in the database, scheduled under the last setting):

- ``high``: ``[health] audit_interval = 0.1``, ``node_audit_interval = 0.01``. The auditor
  schedules a node's next audit in whole seconds, at least one ahead, so this is its ceiling:
  one audit per node per second;
- ``off``: ``node_audit_interval = 1e9``; the chore still wakes every 30 s and finds nothing due.

In each block it first measures a quiet window (no transfers): audits done (the bridge's
``metadisk_bridge_audits_total``) and the CPU time (``/proc/<pid>/stat``) of the process that
runs the auditor and of the farmers. CPU per audit is given gross (the whole window's CPU over
its audits) and marginal (less the same window's CPU with the auditor off). Then it uploads a
64 MiB file several times from a client process of its own (after one untimed upload) and
times each upload. Blocks alternate (off, high, high, off, ...) so that drift in the machine's
load falls on both.

Prints a table with the issue's target beside the figures (uploads no more than 10% slower with
the auditor at a high rate); never asserts.

    python bench/audits.py                     # about 2-3 minutes
    python bench/audits.py --separate-worker   # the auditor in its own worker process
    python bench/audits.py --quick             # about 30 seconds: a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metadisk.allocator import tune_for_streaming
from metadisk.client import AsyncProject, ClientConfig
from metadisk.devnet.bridge import BridgeProcess
from metadisk.devnet.network import LocalNetwork
from metadisk.devnet.settings import merge

MiB = 1 << 20
MODES: dict[str, dict[str, float]] = {
    "high": {"audit_interval": 0.1, "node_audit_interval": 0.01},
    "off": {"audit_interval": 30.0, "node_audit_interval": 1e9},
}
TARGET = "≤10% slower"
_TICK = os.sysconf("SC_CLK_TCK")
_AUDITS = re.compile(r'^metadisk_bridge_audits_total\{outcome="([a-z]+)"\} ([0-9.e+]+)$', re.M)


# -- the client process ------------------------------------------------------------------------


async def client_uploads(grant: str, source: Path, repeat: int) -> dict[str, Any]:
    """Upload `source` `repeat` times after one untimed upload; each upload's seconds."""
    async with await AsyncProject.open(grant, config=ClientConfig()) as project:
        with contextlib.suppress(Exception):
            await project.create_bucket("bench")
        # The first upload of a process measured ~25% slower in both modes (pools, connections
        # and the source's pages warming up): not what is compared here.
        await project.upload("bench", "warm-up", str(source))
        seconds = []
        for number in range(repeat):
            started = time.perf_counter()
            await project.upload("bench", f"{source.name}-{number}", str(source))
            seconds.append(time.perf_counter() - started)
        # Deleted, so disks do not fill over a long run; the deletes reach the farmers during
        # the next block, whichever its mode.
        for number in range(repeat):
            await project.delete("bench", f"{source.name}-{number}")
    return {"seconds": seconds}


def client_main(args: argparse.Namespace) -> None:
    tune_for_streaming()  # as the `metadisk` CLI does in its own process
    grant = Path(args.grant_file).read_text().strip()
    print(json.dumps(asyncio.run(client_uploads(grant, Path(args.source), args.repeat))))


async def run_client(*args: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"client failed:\n{err.decode()[-2000:]}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


# -- measuring ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15)


def audits_done(metrics_url: str) -> dict[str, float]:
    """The auditor's counters by outcome, from its process's ``/metrics`` (loopback: no token)."""
    with urllib.request.urlopen(metrics_url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {outcome: float(value) for outcome, value in _AUDITS.findall(text)}


@dataclass
class Samples:
    """What the blocks of one mode measured."""

    windows: float = 0.0  # seconds of quiet windows
    audits: float = 0.0  # audits decided in them (every outcome)
    outcomes: dict[str, float] = field(default_factory=dict)
    auditor_cpu: float = 0.0  # CPU seconds of the process running the auditor, in them
    farmer_cpu: float = 0.0  # CPU seconds of all farmers, in them
    upload_mibs: list[float] = field(default_factory=list)
    upload_audits: float = 0.0  # audits decided while uploads ran
    upload_outcomes: dict[str, float] = field(default_factory=dict)
    upload_seconds: float = 0.0


class Bench:
    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        self.network = LocalNetwork(
            root / "network",
            farmers=args.farmers,
            separate_worker=args.separate_worker,
            bridge_settings={"health": MODES["off"]},
        )
        self.samples = {mode: Samples() for mode in MODES}
        self.load = os.getloadavg()

    @property
    def auditor(self) -> BridgeProcess:
        """The process that runs the chores: the worker if apart, else the one bridge."""
        return self.network.worker or self.network.bridge

    def restart_auditor(self, mode: str) -> None:
        process = self.auditor
        process.settings = merge(process.settings, {"health": MODES[mode]})
        process.stop()
        # Each node's next audit is in the database, scheduled under the last mode: "off" put
        # it 1e9 s ahead. Every node is due at once instead, and the new mode schedules on.
        db = sqlite3.connect(self.network.bridge_dir / "bridge.sqlite3", timeout=30)
        try:
            with db:  # one transaction, committed
                db.execute("UPDATE nodes SET next_audit_at = 0")
        finally:
            db.close()
        process.start()

    def snapshot(self) -> tuple[dict[str, float], float, float]:
        """The auditor's counters, its process's CPU seconds and all farmers' CPU seconds."""
        farmers = sum(cpu_seconds(farmer.pid) for farmer in self.network.farmers)
        return audits_done(self.auditor.url), cpu_seconds(self.auditor.pid), farmers

    async def block(self, mode: str, grant_file: Path, source: Path) -> None:
        samples, args = self.samples[mode], self.args
        await asyncio.to_thread(self.restart_auditor, mode)
        # The first cycle audits every node left due by the last block; then the rate settles.
        await asyncio.sleep(args.warm_up)
        audits0, cpu0, farmers0 = await asyncio.to_thread(self.snapshot)
        started = time.monotonic()
        await asyncio.sleep(args.window)
        audits1, cpu1, farmers1 = await asyncio.to_thread(self.snapshot)
        samples.windows += time.monotonic() - started
        samples.audits += sum(audits1.values()) - sum(audits0.values())
        for outcome, count in audits1.items():
            gained = count - audits0.get(outcome, 0.0)
            samples.outcomes[outcome] = samples.outcomes.get(outcome, 0.0) + gained
        samples.auditor_cpu += cpu1 - cpu0
        samples.farmer_cpu += farmers1 - farmers0

        started = time.monotonic()
        result = await run_client(
            "--client", "--grant-file", str(grant_file), "--source", str(source),
            "--repeat", str(args.repeat),
        )  # fmt: skip
        samples.upload_seconds += time.monotonic() - started
        after, _, _ = await asyncio.to_thread(self.snapshot)
        samples.upload_audits += sum(after.values()) - sum(audits1.values())
        for outcome, count in after.items():
            gained = count - audits1.get(outcome, 0.0)
            samples.upload_outcomes[outcome] = samples.upload_outcomes.get(outcome, 0.0) + gained
        samples.upload_mibs.extend(args.size / s for s in result["seconds"])
        mibs = ", ".join(f"{args.size / s:.0f}" for s in result["seconds"])
        print(f"  {mode:>4}: uploads {mibs} MiB/s", file=sys.stderr)

    async def run(self) -> None:
        args = self.args
        try:
            await self.network.start()
            tenant = await self.network.create_tenant()
            grant_file = self.root / "grant"
            grant_file.write_text(tenant.grant)
            grant_file.chmod(0o600)
            source = self.root / "upload.bin"
            await asyncio.to_thread(make_source, source, args.size * MiB)
            # Pieces to audit on every farmer: kept for the whole run.
            async with await AsyncProject.open(tenant.grant) as project:
                await project.create_bucket("kept")
                for number in range(4):
                    await project.upload("kept", f"object-{number}", os.urandom(16 * MiB))
            scheme = self.network.redundancy
            bridge = "API and worker apart" if args.separate_worker else "one process"
            print(
                f"network: bridge ({bridge}) + {len(self.network.farmers)} farmers, "
                f"{scheme.k}/{scheme.m}/{scheme.o}/{scheme.n}; {args.rounds} rounds of blocks",
                file=sys.stderr,
            )
            for number in range(args.rounds):
                order = ("off", "high") if number % 2 == 0 else ("high", "off")
                for mode in order:
                    await self.block(mode, grant_file, source)
        finally:
            await self.network.stop()

    def report(self) -> None:
        args, high, off = self.args, self.samples["high"], self.samples["off"]
        who = "worker" if args.separate_worker else "bridge"
        rate = high.audits / high.windows if high.windows else 0.0
        print(f"audit bench: {os.cpu_count()} cores, {args.farmers} farmers, {who} process "
              f"runs the auditor, {args.size} MiB uploads; load average {self.load[0]:.1f} at "
              f"start, {os.getloadavg()[0]:.1f} at end (other work on the machine skews both "
              "modes alike: blocks alternate)")  # fmt: skip
        print(f"{'measure':<44}{'value':>10}  {'unit':<14}{'target':<14}note")

        def row(name: str, value: float, unit: str, target: str = "-", note: str = "") -> None:
            print(f"{name:<44}{value:>10.2f}  {unit:<14}{target:<14}{note}")

        outcomes = ", ".join(f"{k} {v:.0f}" for k, v in sorted(high.outcomes.items()) if v)
        row("audits/s, auditor high, idle network", rate, "audits/s", "-",
            f"about 1/s per node at most (whole-second schedule); {outcomes}")  # fmt: skip
        # A count, not a rate: every node falls due on the same whole seconds, so the few
        # seconds of a client run hold a number of audit bursts that a rate would overstate.
        outcomes = ", ".join(f"{k} {v:.0f}" for k, v in sorted(high.upload_outcomes.items()) if v)
        row("audits while uploading, auditor high", high.upload_audits, "audits", "-",
            f"in {high.upload_seconds:.0f} s of client runs; {outcomes}")  # fmt: skip
        if high.audits:
            row(f"{who} CPU per audit, gross", 1000 * high.auditor_cpu / high.audits, "ms")
            idle = off.auditor_cpu / off.windows * high.windows if off.windows else 0.0
            row(f"{who} CPU per audit, marginal", 1000 * (high.auditor_cpu - idle) / high.audits,
                "ms", "-", "less the same window with the auditor off")  # fmt: skip
            farmers_idle = off.farmer_cpu / off.windows * high.windows if off.windows else 0.0
            row("farmers' CPU per audit, marginal",
                1000 * (high.farmer_cpu - farmers_idle) / high.audits, "ms")  # fmt: skip
        row(f"{who} CPU share, auditor high, idle", high.auditor_cpu / high.windows, "cores")
        row(f"{who} CPU share, auditor off, idle", off.auditor_cpu / off.windows, "cores")
        for mode in ("off", "high"):
            mibs = self.samples[mode].upload_mibs
            spread = f"min {min(mibs):.0f}, max {max(mibs):.0f}, n={len(mibs)}"
            row(f"upload {args.size} MiB, auditor {mode}, median", statistics.median(mibs),
                "MiB/s", "-", spread)  # fmt: skip
        slower = 1 - statistics.median(high.upload_mibs) / statistics.median(off.upload_mibs)
        mean = 1 - statistics.mean(high.upload_mibs) / statistics.mean(off.upload_mibs)
        row("uploads slower with the auditor high", 100 * slower, "% (median)", TARGET,
            f"{100 * mean:.1f}% by the means")  # fmt: skip


def make_source(path: Path, size: int) -> None:
    """`size` bytes of random-looking data, quickly: one random block repeated (encryption
    makes every copy different on the wire, so repetition gives the pipeline no shortcut)."""
    block = os.urandom(16 * MiB)
    with open(path, "wb") as out:
        left = size
        while left:
            out.write(block[: min(left, len(block))])
            left -= min(left, len(block))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run")
    parser.add_argument("--farmers", type=int, default=10)
    parser.add_argument("--separate-worker", action="store_true",
                        help="run the bridge's API and worker as two processes")  # fmt: skip
    parser.add_argument("--size", type=int, default=64, help="MiB per upload (default 64)")
    parser.add_argument("--rounds", type=int, help="off/high block pairs (default 4)")
    parser.add_argument("--repeat", type=int, help="uploads per block (default 4)")
    parser.add_argument("--window", type=float, help="seconds of each quiet window (default 10)")
    parser.add_argument("--warm-up", type=float, default=3.0, help="seconds after a restart")
    parser.add_argument("--dir", type=Path, help="work here instead of a temporary dir")
    # The client side, run by the bench itself in a process of its own:
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--grant-file", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args)
        return
    args.rounds = args.rounds or (1 if args.quick else 4)
    args.repeat = args.repeat or (2 if args.quick else 4)
    args.window = args.window or (4.0 if args.quick else 10.0)
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        bench = Bench(args, args.dir)
        asyncio.run(bench.run())
    else:
        with tempfile.TemporaryDirectory(prefix="metadisk-bench-") as temp:
            bench = Bench(args, Path(temp))
            asyncio.run(bench.run())
    bench.report()


if __name__ == "__main__":
    main()
