"""What repair costs and how fast it heals: farmers killed for good, every piece set brought
back to o pieces on live farmers by the bridge's repairer.

Each case starts a fresh network on loopback (`metadisk.devnet.network`: one ``metadisk bridge
run`` process for the API and the chores, and 16 farmers) with ``chore_interval=0.5`` (what
``metadisk up --chore-interval 0.5`` runs: uptime checks, the repair checker and the repairer
every half second, and audits and garbage collection as often), at 4/7/8/10 by default: the
local profile's k, o and n with the repair threshold one below o, so that a set that loses any
piece of its o is repaired (``--profile 4/6/8/10`` for the local default, where a set that
loses one piece rightly waits). It stores ``--size`` MiB as objects of 64 MiB with the client's
default configuration (16 MiB segments, 4 MiB pieces at k = 4), waits a quiet window (the
bridge's idle CPU, with the bench polling as it will later), then SIGKILLs the 3 farmers holding
the most pieces and measures:

- time from the kill to every piece set that fell to m or below back at >= o pieces on live
  farmers (read from the bridge's SQLite, read-only, every 0.1 s), split into detection (the
  uptime checker marks all three offline: ``nodes.offline_since``, also seen by the poll),
  queueing (the first set in ``repair_queue``) and repair proper (detection to done);
- what the repairer moved (the bridge's ``/metrics``: ``metadisk_bridge_repair_bytes_total``
  downloaded and uploaded, ``metadisk_bridge_repairs_total`` by outcome) and what the farmers
  served and stored meanwhile (their ``/metrics``), against what was lost: the bytes of the
  pieces on the killed farmers. "Healed" is those lost bytes (the redundancy the kill took);
  the heal rate is lost bytes over repair proper; the ratio is bytes moved over bytes lost;
- the CPU time (``/proc/<pid>/stat``) of the bridge process from the kill to done, gross and
  less its idle rate over the same time, per GiB healed; the farmers' CPU likewise;
- with ``[repair] bandwidth`` set (20 MB/s by default) the repairer's rate (down + up, the one
  token bucket's scope) over its active window and over its busiest 5 s, beside the setting;
- ``[repair] concurrency`` 1, 2 (the default) and 4;
- the whole machine's busy cores (``/proc/stat``), and how much of that was not this network
  nor the bench: other work on the machine slows every figure here.

MB is 10^6 bytes throughout (``bandwidth`` is bytes a second). Prints one table (each case a
column) and asserts nothing; progress goes to stderr.

    python bench/repair.py            # about 2 minutes: 512 MiB, all four cases
    python bench/repair.py --quick    # under a minute: 32 MiB, unlimited and throttled
    python bench/repair.py --cases unlimited,c1 --size 128 --profile 4/6/8/10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sqlite3
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from metadisk.allocator import tune_for_streaming
from metadisk.client import AsyncProject, ClientConfig
from metadisk.devnet.farmer import FarmerProcess
from metadisk.devnet.network import LocalNetwork

MiB = 1 << 20
MB = 1e6
GiB = 1 << 30
OBJECT = 64 * MiB
VICTIMS = 3
CHORE_INTERVAL = 0.5
POLL = 0.1  # seconds between looks at the database
SCRAPE_EVERY = 5  # polls between scrapes of the bridge's /metrics
PEAK_WINDOW = 5.0  # seconds: the busiest window of a throttled repair
_TICK = os.sysconf("SC_CLK_TCK")
_REPAIR_BYTES = re.compile(
    r'^metadisk_bridge_repair_bytes_total\{direction="([a-z]+)"\} ([0-9.e+]+)$', re.M
)
_REPAIRS = re.compile(r'^metadisk_bridge_repairs_total\{outcome="([a-z-]+)"\} ([0-9.e+]+)$', re.M)
_FARMER = re.compile(r"^metadisk_farmer_(served|stored)_bytes_total ([0-9.e+]+)$", re.M)


@dataclass(frozen=True)
class Case:
    name: str
    concurrency: int
    bandwidth: int  # bytes a second, 0: no limit


def cases(bandwidth: int) -> dict[str, Case]:
    return {
        "unlimited": Case("unlimited", 2, 0),
        "throttled": Case("throttled", 2, bandwidth),
        "c1": Case("c1", 1, 0),
        "c4": Case("c4", 4, 0),
    }


@dataclass
class Outcome:
    """What one case measured."""

    case: Case
    sets: int = 0
    pieces: int = 0  # rows in `pieces` before the kill
    lost_pieces: int = 0
    lost_bytes: int = 0
    injured: int = 0  # sets the kill left at or below m
    needed_down: int = 0  # k pieces of each injured set: what a repair must download
    upload_seconds: float = 0.0
    detected: float | None = None  # seconds after the kill, as the poll saw it
    detected_column: float | None = None  # from nodes.offline_since (whole seconds)
    queued: float | None = None  # the first set in repair_queue
    first_byte: float | None = None  # the repairer's first bytes in /metrics (scrape resolution)
    done: float | None = None
    gave_up: bool = False
    moved: dict[str, float] = field(default_factory=dict)  # downloaded, uploaded
    repairs: dict[str, float] = field(default_factory=dict)
    farmers_served: float = 0.0
    farmers_stored: float = 0.0
    bridge_cpu: float = 0.0
    bridge_idle: float = 0.0  # CPU seconds at the quiet window's rate over kill -> done
    farmer_cpu: float = 0.0
    farmer_idle: float = 0.0
    rate: float = 0.0  # bytes/s between the first and the last scrape that saw repair bytes
    peak_rate: float = 0.0  # bytes/s over the busiest PEAK_WINDOW
    after_min: int = 0  # fewest live pieces of a set once done
    after_pieces: int = 0  # pieces on live farmers once done


# -- measuring ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15)


def machine_ticks() -> tuple[int, int]:
    """(busy, all) CPU ticks of the whole machine so far, from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    total = sum(fields[:8])  # user .. steal (guest time is already in user)
    return total - idle, total


def scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
        return str(answer.read().decode())


def repair_counters(bridge_url: str) -> tuple[dict[str, float], dict[str, float]]:
    """The repairer's bytes by direction and repairs by outcome (loopback: no token needed)."""
    text = scrape(bridge_url)
    moved = {d: float(v) for d, v in _REPAIR_BYTES.findall(text)}
    return moved, {o: float(v) for o, v in _REPAIRS.findall(text)}


def farmer_bytes(farmers: Sequence[FarmerProcess]) -> tuple[float, float]:
    """Bytes served and stored by `farmers`, summed."""
    served = stored = 0.0
    for farmer in farmers:
        for kind, value in _FARMER.findall(scrape(farmer.url)):
            if kind == "served":
                served += float(value)
            else:
                stored += float(value)
    return served, stored


class BridgeDb:
    """The bridge's SQLite, read-only, as the end-to-end tests read it."""

    def __init__(self, path: Path) -> None:
        # Used from one worker thread at a time (`asyncio.to_thread`, awaited in turn).
        self.db = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, timeout=10, check_same_thread=False
        )

    def close(self) -> None:
        self.db.close()

    def pieces(self) -> dict[bytes, list[tuple[bytes, int]]]:
        """Each piece set's pieces as (node id, size)."""
        sets: dict[bytes, list[tuple[bytes, int]]] = {}
        for root, node, size in self.db.execute("SELECT root_piece_id, node_id, size FROM pieces"):
            sets.setdefault(root, []).append((node, size))
        return sets

    def shapes(self) -> dict[bytes, tuple[int, int, int, int]]:
        rows = self.db.execute("SELECT root_piece_id, k, m, o, n FROM piece_sets")
        return {root: (k, m, o, n) for root, k, m, o, n in rows}

    def offline_since(self, nodes: Sequence[bytes]) -> list[int | None]:
        marks = ",".join("?" * len(nodes))
        rows = dict(
            self.db.execute(
                f"SELECT node_id, offline_since FROM nodes WHERE node_id IN ({marks})", nodes
            ).fetchall()
        )
        return [rows.get(node) for node in nodes]

    def queued(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM repair_queue").fetchone()[0])


def make_source(path: Path, size: int) -> None:
    """`size` bytes: one random block repeated (encryption makes every copy differ on the wire)."""
    block = os.urandom(16 * MiB)
    with open(path, "wb") as out:
        left = size
        while left:
            out.write(block[: min(left, len(block))])
            left -= min(left, len(block))


# -- one case ----------------------------------------------------------------------------------


def parse_profile(text: str) -> dict[str, int]:
    k, m, o, n = (int(part) for part in text.split("/"))
    return {"k": k, "m": m, "o": o, "n": n}


def object_sizes(total: int) -> list[int]:
    """`total` bytes as objects of 64 MiB, the last one smaller if need be."""
    return [OBJECT] * (total // OBJECT) + ([total % OBJECT] if total % OBJECT else [])


async def run_case(
    args: argparse.Namespace, case: Case, root: Path, sources: dict[int, Path]
) -> Outcome:
    outcome = Outcome(case)
    profile = parse_profile(args.profile)
    network = LocalNetwork(
        root,
        farmers=args.farmers,
        chore_interval=CHORE_INTERVAL,
        bridge_settings={
            "objects": {"profiles": {"local": profile}},
            "repair": {"concurrency": case.concurrency, "bandwidth": case.bandwidth},
        },
    )
    db: BridgeDb | None = None
    try:
        await network.start()
        tenant = await network.create_tenant()
        started = time.perf_counter()
        async with await AsyncProject.open(tenant.grant, config=ClientConfig()) as project:
            await project.create_bucket("bench")
            for number, size in enumerate(object_sizes(args.size * MiB)):
                await project.upload("bench", f"object-{number}", str(sources[size]))
        outcome.upload_seconds = time.perf_counter() - started
        db = BridgeDb(network.bridge_dir / "bridge.sqlite3")
        await measure(args, network, db, outcome)
    finally:
        if db is not None:
            db.close()
        with contextlib.suppress(Exception):
            await network.stop()
    return outcome


async def measure(
    args: argparse.Namespace,
    network: LocalNetwork,
    db: BridgeDb,
    outcome: Outcome,
) -> None:
    bridge = network.bridge
    before = await asyncio.to_thread(db.pieces)
    shapes = await asyncio.to_thread(db.shapes)
    held: Counter[bytes] = Counter(node for pieces in before.values() for node, _ in pieces)
    by_id = {bytes.fromhex(f.node_id): f for f in network.farmers}
    victims = [by_id[node] for node, _ in held.most_common(VICTIMS)]
    dead = {bytes.fromhex(f.node_id) for f in victims}
    live = [f for f in network.farmers if f not in victims]
    outcome.sets = len(before)
    outcome.pieces = sum(len(p) for p in before.values())
    outcome.lost_pieces = sum(1 for p in before.values() for node, _ in p if node in dead)
    outcome.lost_bytes = sum(size for p in before.values() for node, size in p if node in dead)
    # The sets repair must bring back: those the kill leaves at or below m (at 4/7/8/10, every
    # set that had o pieces and lost one). The others keep more than m and rightly wait.
    left = {root: sum(1 for node, _ in p if node not in dead) for root, p in before.items()}
    injured = {root for root, count in left.items() if count <= shapes[root][1]}
    outcome.injured = len(injured)
    outcome.needed_down = sum(shapes[root][0] * before[root][0][1] for root in injured)

    def live_counts() -> dict[bytes, int]:
        now = db.pieces()
        return {root: sum(1 for node, _ in p if node not in dead) for root, p in now.items()}

    # Farmers drop what the upload left in the page cache, the bridge deletes surplus pieces.
    await asyncio.sleep(args.settle)
    # The quiet window: the bridge's and farmers' idle CPU, polled as the repair will be.
    cpu0, farmers0 = cpu_seconds(bridge.pid), sum(cpu_seconds(f.pid) for f in live)
    quiet = time.monotonic()
    for tick in range(int(args.quiet / POLL)):
        await asyncio.to_thread(live_counts)
        if tick % SCRAPE_EVERY == 0:
            await asyncio.to_thread(repair_counters, bridge.url)
        await asyncio.sleep(POLL)
    quiet = time.monotonic() - quiet
    outcome.bridge_idle_share = (cpu_seconds(bridge.pid) - cpu0) / quiet
    outcome.farmer_idle_share = (sum(cpu_seconds(f.pid) for f in live) - farmers0) / quiet

    moved0, repairs0 = await asyncio.to_thread(repair_counters, bridge.url)
    served0, stored0 = await asyncio.to_thread(farmer_bytes, live)
    cpu0, farmers0 = cpu_seconds(bridge.pid), sum(cpu_seconds(f.pid) for f in live)
    ticks0, own0 = machine_ticks(), time.process_time()
    wall = time.time()
    killed = time.monotonic()
    await asyncio.gather(*(farmer.kill() for farmer in victims))
    print(
        f"  {outcome.case.name}: killed {VICTIMS} farmers holding {outcome.lost_pieces} of "
        f"{outcome.pieces} pieces; {outcome.injured} of {outcome.sets} sets at or below m",
        file=sys.stderr,
    )
    samples: list[tuple[float, float]] = [(0.0, 0.0)]  # (seconds after the kill, bytes moved)
    counts: dict[bytes, int] = {}
    tick = 0
    while True:
        now = time.monotonic() - killed
        if outcome.detected is None:
            marks = await asyncio.to_thread(db.offline_since, sorted(dead))
            if all(mark is not None for mark in marks):
                outcome.detected = now
                outcome.detected_column = max(m for m in marks if m is not None) - int(wall)
        if outcome.queued is None and await asyncio.to_thread(db.queued):
            outcome.queued = now
        counts = await asyncio.to_thread(live_counts)
        healed = all(counts.get(root, 0) >= shapes[root][2] for root in injured)
        if tick % SCRAPE_EVERY == 0 or healed:
            moved, _ = await asyncio.to_thread(repair_counters, bridge.url)
            total = sum(moved.values()) - sum(moved0.values())
            samples.append((now, total))
            if outcome.first_byte is None and total > 0:
                outcome.first_byte = now
        if healed and outcome.detected is not None:
            outcome.done = now
            break
        if now > args.give_up:
            outcome.gave_up = True
            break
        tick += 1
        await asyncio.sleep(POLL)
    elapsed = outcome.elapsed = time.monotonic() - killed
    ticks1 = machine_ticks()
    outcome.bench_cpu = time.process_time() - own0
    busy, every = ticks1[0] - ticks0[0], ticks1[1] - ticks0[1]
    outcome.machine_busy = (os.cpu_count() or 1) * busy / every if every else 0.0
    outcome.bridge_cpu = cpu_seconds(bridge.pid) - cpu0
    outcome.farmer_cpu = sum(cpu_seconds(f.pid) for f in live) - farmers0
    moved1, repairs1 = await asyncio.to_thread(repair_counters, bridge.url)
    served1, stored1 = await asyncio.to_thread(farmer_bytes, live)
    outcome.moved = {d: v - moved0.get(d, 0.0) for d, v in moved1.items()}
    outcome.repairs = {o: v - repairs0.get(o, 0.0) for o, v in repairs1.items()}
    outcome.farmers_served, outcome.farmers_stored = served1 - served0, stored1 - stored0
    outcome.after_min = min(counts.values()) if counts else 0
    outcome.after_pieces = sum(counts.values())
    # Idle CPU over the same span, for the net figures.
    outcome.bridge_idle = outcome.bridge_idle_share * elapsed
    outcome.farmer_idle = outcome.farmer_idle_share * elapsed
    # Bytes counted between two scrapes over the time between them: exact at both ends (what
    # moved before the first scrape that saw bytes is left out, and so is its time).
    busy = [(t, b) for (t, b), (_, a) in zip(samples[1:], samples, strict=False) if b > a]
    if len(busy) > 1 and busy[-1][0] > busy[0][0]:
        outcome.rate = (busy[-1][1] - busy[0][1]) / (busy[-1][0] - busy[0][0])
    for start, bytes_at_start in samples:
        ahead = [(t, b) for t, b in samples if t >= start + PEAK_WINDOW]
        if ahead:
            t, b = ahead[0]
            outcome.peak_rate = max(outcome.peak_rate, (b - bytes_at_start) / (t - start))
    state = "gave up" if outcome.gave_up else f"healed in {elapsed:.1f} s"
    print(f"  {outcome.case.name}: {state}", file=sys.stderr)


# -- the report --------------------------------------------------------------------------------


def report(args: argparse.Namespace, outcomes: list[Outcome]) -> None:
    print(
        f"repair bench: {os.cpu_count()} cores, bridge (one `bridge run` process) + "
        f"{args.farmers} farmers, profile {args.profile}, {args.size} MiB stored as "
        f"objects of {', '.join(str(s // MiB) for s in object_sizes(args.size * MiB))} MiB "
        "(the client's defaults: 16 MiB segments, 4 MiB pieces at k = 4); "
        f"chore_interval {CHORE_INTERVAL} s (uptime checks, repair checker, repairer, audits, "
        f"GC); {VICTIMS} farmers holding the most pieces SIGKILLed; MB = 10^6 bytes"
    )
    width = 15
    head = "".join(f"{o.case.name:>{width}}" for o in outcomes)
    print(f"{'measure':<40}{head}  {'target':<16}note")

    def row(name: str, values: list[str], target: str = "-", note: str = "") -> None:
        cells = "".join(f"{v:>{width}}" for v in values)
        print(f"{name:<40}{cells}  {target:<16}{note}")

    def fmt(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    row("[repair] concurrency", [str(o.case.concurrency) for o in outcomes])
    row(
        "[repair] bandwidth MB/s",
        [fmt(o.case.bandwidth / MB) if o.case.bandwidth else "unlimited" for o in outcomes],
    )
    row("piece sets / injured (<= m)", [f"{o.sets}/{o.injured}" for o in outcomes])
    row(
        "pieces lost / MiB lost",
        [f"{o.lost_pieces}/{o.lost_bytes / MiB:.0f}" for o in outcomes],
        "-",
        "pieces on the killed farmers: what 'healed' counts",
    )
    row("upload s (before the kill)", [fmt(o.upload_seconds) for o in outcomes])
    row(
        "detected s (poll / offline_since)",
        [f"{fmt(o.detected)}/{fmt(o.detected_column, 0)}" for o in outcomes],
        "-",
        "all killed nodes offline_since set; column in whole s",
    )
    row("first set queued s", [fmt(o.queued) for o in outcomes])
    row(
        "first repair bytes s",
        [fmt(o.first_byte) for o in outcomes],
        "-",
        f"seen on /metrics, scraped every {POLL * SCRAPE_EVERY:.1f} s",
    )
    row(
        "repair proper s (detected -> done)",
        [fmt(None if o.done is None or o.detected is None else o.done - o.detected)
         for o in outcomes],
    )  # fmt: skip
    row(
        "kill -> every set >= o s",
        [("gave up" if o.gave_up else fmt(o.done)) for o in outcomes],
        "-",
        "sets left <= m by the kill back at >= o pieces on live farmers",
    )
    row(
        "repairs repaired/failed/not-needed",
        [
            "/".join(f"{o.repairs.get(k, 0):.0f}" for k in ("repaired", "failed", "not-needed"))
            for o in outcomes
        ],
    )
    row(
        "repairer MiB down / up",
        [
            f"{o.moved.get('downloaded', 0) / MiB:.0f}/{o.moved.get('uploaded', 0) / MiB:.0f}"
            for o in outcomes
        ],
        "-",
        "bridge's metadisk_bridge_repair_bytes_total",
    )
    row(
        "farmers MiB served / stored",
        [f"{o.farmers_served / MiB:.0f}/{o.farmers_stored / MiB:.0f}" for o in outcomes],
        "-",
        "live farmers' /metrics over the same span",
    )
    row(
        "MiB a repair must download",
        [f"{o.needed_down / MiB:.0f}" for o in outcomes],
        "-",
        "k pieces of each injured set; beyond it: download_spares fetched and dropped",
    )

    def moved(o: Outcome) -> float:
        return sum(o.moved.values())

    row(
        "bytes moved / bytes lost",
        [fmt(moved(o) / o.lost_bytes if o.lost_bytes else None, 2) for o in outcomes],
    )
    row(
        "bytes uploaded / bytes lost",
        [
            fmt(o.moved.get("uploaded", 0) / o.lost_bytes if o.lost_bytes else None, 2)
            for o in outcomes
        ],
        "-",
        "above 1: upload_spares pieces per set beyond o, kept",
    )
    row(
        "live pieces before kill -> after",
        [f"{o.pieces - o.lost_pieces}->{o.after_pieces}" for o in outcomes],
        "-",
        "fewest in a set once done: " + ", ".join(str(o.after_min) for o in outcomes),
    )

    def heal_rate(o: Outcome) -> float | None:
        if o.done is None or o.detected is None or o.done <= o.detected:
            return None
        return o.lost_bytes / (o.done - o.detected) / MB

    row("healed MB/s (lost / repair proper)", [fmt(heal_rate(o)) for o in outcomes])
    row(
        "healed MB/s (lost / kill -> done)",
        [fmt(o.lost_bytes / o.done / MB if o.done else None) for o in outcomes],
    )
    row(
        "repairer MB/s moved, while active",
        [fmt(o.rate / MB if o.rate else None) for o in outcomes],
        "<= bandwidth",
        "down + up, between the first and last scrapes that saw bytes",
    )
    row(
        f"repairer MB/s moved, busiest {PEAK_WINDOW:.0f} s",
        [fmt(o.peak_rate / MB if o.peak_rate else None) for o in outcomes],
        "<= bandwidth",
        "the bucket starts full: 1 s of bandwidth may pass at once",
    )

    def others(o: Outcome) -> float:
        mine = o.bridge_cpu + o.farmer_cpu + o.bench_cpu
        return max(0.0, o.machine_busy - mine / o.elapsed) if o.elapsed else 0.0

    def per_gib(cpu: float, o: Outcome) -> str:
        return fmt(cpu / (o.lost_bytes / GiB) if o.lost_bytes else None)

    row(
        "idle CPU cores: bridge / farmers",
        [f"{o.bridge_idle_share:.2f}/{o.farmer_idle_share:.2f}" for o in outcomes],
        "-",
        f"in the quiet window ({args.quiet:.0f} s, {args.settle:.0f} s after the upload)",
    )
    row("bridge CPU s, kill -> done (gross)", [fmt(o.bridge_cpu, 2) for o in outcomes])
    row(
        "bridge CPU s less idle",
        [fmt(o.bridge_cpu - o.bridge_idle, 2) for o in outcomes],
        "-",
        "idle: the quiet window's rate (audits, GC, checks at 0.5 s) over the same time",
    )
    row("bridge CPU s per GiB healed (gross)", [per_gib(o.bridge_cpu, o) for o in outcomes])
    row(
        "bridge CPU s per GiB healed (net)",
        [per_gib(o.bridge_cpu - o.bridge_idle, o) for o in outcomes],
        "-",
        "rough where idle is most of the gross (a throttled repair)",
    )
    row(
        "bridge CPU s per GiB moved (net)",
        [
            fmt((o.bridge_cpu - o.bridge_idle) / (moved(o) / GiB) if moved(o) else None)
            for o in outcomes
        ],
    )
    row(
        "farmers' CPU s per GiB healed",
        [
            f"{per_gib(o.farmer_cpu, o)}/{per_gib(o.farmer_cpu - o.farmer_idle, o)}"
            for o in outcomes
        ],
        "-",
        "gross/net, all live farmers together (net: less their idle rate, noisy)",
    )
    row(
        "CPU cores, kill -> done: bridge/farmers",
        [f"{o.bridge_cpu / o.elapsed:.2f}/{o.farmer_cpu / o.elapsed:.2f}" for o in outcomes],
    )
    row(
        "  whole machine / not this network",
        [f"{o.machine_busy:.2f}/{others(o):.2f}" for o in outcomes],
        "-",
        f"of {os.cpu_count()} cores (/proc/stat); 'not this network': other work on the machine",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of under a minute")
    parser.add_argument("--farmers", type=int, default=16)
    parser.add_argument("--profile", default="4/7/8/10", help="k/m/o/n (default 4/7/8/10)")
    parser.add_argument("--size", type=int, help="MiB stored, in 64 MiB objects (default 512)")
    parser.add_argument(
        "--cases",
        type=lambda t: t.split(","),
        help="of unlimited, throttled, c1, c4 (default all; --quick: unlimited,throttled)",
    )
    parser.add_argument(
        "--bandwidth", type=float, default=20.0, help="MB/s of the throttled case (default 20)"
    )
    parser.add_argument("--quiet", type=float, help="seconds of the idle window (default 3)")
    parser.add_argument(
        "--settle", type=float, default=2.0, help="seconds between the upload and the quiet window"
    )
    parser.add_argument("--give-up", type=float, default=180.0, help="seconds after the kill")
    parser.add_argument("--dir", type=Path, help="work here instead of a temporary dir")
    args = parser.parse_args()
    # 512 MiB: 256 healed in 2-4 s unlimited, too short for 0.5 s scrapes and a 5 s window.
    args.size = args.size or (32 if args.quick else 512)
    args.quiet = args.quiet or (2.0 if args.quick else 3.0)
    known = cases(int(args.bandwidth * MB))
    names = args.cases or (["unlimited", "throttled"] if args.quick else list(known))
    for name in names:
        if name not in known:
            parser.error(f"unknown case {name!r}: choose from {', '.join(known)}")
    tune_for_streaming()  # as the `metadisk` CLI does in its own process

    async def run_all(root: Path) -> list[Outcome]:
        sources = {size: root / f"object-{size}.bin" for size in object_sizes(args.size * MiB)}
        for size, path in sources.items():
            await asyncio.to_thread(make_source, path, size)
        outcomes = []
        for name in names:
            print(f"case {name} ...", file=sys.stderr)
            outcomes.append(await run_case(args, known[name], root / name, sources))
        return outcomes

    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        outcomes = asyncio.run(run_all(args.dir))
    else:
        with tempfile.TemporaryDirectory(prefix="metadisk-repair-") as temp:
            outcomes = asyncio.run(run_all(Path(temp)))
    report(args, outcomes)


if __name__ == "__main__":
    main()
