"""One farmer process on loopback, 64 MiB PUTs one after another: wall time and farmer CPU.

    python bench/farmer_put64.py [--count 6] [--dir /var/tmp]

Measures the hot path of an upload's biggest pieces (docs/farmer.md, "Bounded resources": the
per-chunk reservation and the body's silence watch ride on it). Prints the median and range of
MiB/s per PUT and the farmer's CPU-seconds per GiB over them all (user + system,
/proc/<pid>/stat); nothing is asserted. Run old and new code alternately: the shared VM's load
moves MiB/s a lot.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from metadisk.core.encoding import b64encode
from metadisk.core.identity import Identity
from metadisk.core.merkle import digest_piece
from metadisk.core.messages import Action, OrderLimit
from metadisk.devnet.farmer import farmer_process
from metadisk.farmer.config import TrustedBridge

MIB = 1 << 20
SIZE = 64 * MIB
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def run(count: int, parent: str | None) -> None:
    bridge = Identity.generate()
    trusted = TrustedBridge(bridge.node_id, bridge.public_key, "http://127.0.0.1:9")
    data = os.urandom(SIZE)
    piece_hash = b64encode(digest_piece(data).piece_hash)
    with tempfile.TemporaryDirectory(dir=parent) as root:
        async with (
            farmer_process(
                Path(root) / "data", [trusted], allocated=(count + 1) * 80 * MIB,
                checkin_interval=3600,
            ) as farmer,
            aiohttp.ClientSession() as session,
        ):  # fmt: skip
            rates, cpus = [], []
            for _ in range(count + 1):  # the first warms up and is not counted
                pid = os.urandom(32)
                now = int(time.time())
                limit = OrderLimit(
                    serial=os.urandom(16), bridge_id=bridge.node_id,
                    node_id=farmer.identity.node_id, piece_id=pid, action=Action.PUT,
                    limit=SIZE, issued_at=now, expires_at=now + 600, piece_expires_at=0,
                ).signed_by(bridge)  # fmt: skip
                headers = {
                    "X-Metadisk-Order-Limit": b64encode(limit.encode()),
                    "X-Metadisk-Piece-Hash": piece_hash,
                }
                cpu, start = cpu_seconds(farmer.pid), time.perf_counter()
                url = f"{farmer.url}/v1/pieces/{pid.hex()}"
                async with session.put(url, data=data, headers=headers) as response:
                    assert response.status == 201, await response.text()
                rates.append(SIZE / MIB / (time.perf_counter() - start))
                cpus.append(cpu_seconds(farmer.pid) - cpu)
    rates, cpus = rates[1:], cpus[1:]
    # summed: one PUT is a few clock ticks of CPU, too coarse to count alone
    per_gib = sum(cpus) / (count * SIZE / (1 << 30))
    print(
        f"PUT 64 MiB x{count}: {statistics.median(rates):.0f} MiB/s median "
        f"({min(rates):.0f}-{max(rates):.0f}), farmer {per_gib:.2f} CPU-s/GiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=6)
    parser.add_argument("--dir", default=None, help="where the data dir goes")
    args = parser.parse_args()
    asyncio.run(run(args.count, args.dir))


if __name__ == "__main__":
    main()
