"""Piece deletes with every farmer up, then with some hung (SIGSTOP): pieces/s to the others.

Starts a bridge as a deployment runs it, the API and a worker apart (``metadisk bridge api`` and
``metadisk bridge worker``, `metadisk.devnet.network`), and 10 farmers on loopback. Each round:

1. stops the worker, stores `--pieces` small pieces on every farmer (PUT under order limits signed
   with the bridge's key, as uploads are) and queues a delete of each in the bridge's database,
   interleaved farmer after farmer as a deleted object's segments queue them;
2. after the first round, SIGSTOPs farmers (``--hung``: how many, one round for each; 1 by
   default): their ports still accept connections, nothing answers;
3. starts the worker, whose deletion chore runs at once and then every ``delete_interval``
   (default settings: 10 s, batches of 100, ``delete_timeout`` 10 s), and times how long until
   every delete to the farmers that are up has left the queue (polling the database every 0.1 s).

The bridge's uptime checks are slowed to once in 10^6 s per node, so hung farmers stay "online"
to the bridge throughout: the worst case, where deletes to them are tried. Prints one row
per round; asserts nothing. Hung farmers get SIGCONT afterwards; only processes the bench
started are signalled, by pid.

    python bench/deletes.py                 # about 30 s; minutes if a hung farmer stalls deletes
    python bench/deletes.py --hung 1 3 --pieces 50 --give-up 60
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from metadisk.bridge.config import DatabaseConfig, sqlite_url
from metadisk.bridge.db._shared import queue_deletes
from metadisk.bridge.db.engine import Database
from metadisk.bridge.orders.service import OrderSigner
from metadisk.core.identity import Identity
from metadisk.core.merkle import digest_piece
from metadisk.core.messages import Action
from metadisk.devnet.farmer import FarmerProcess
from metadisk.devnet.network import LocalNetwork
from metadisk.wire.dataplane import PieceClient

PIECE_SIZE = 1024


@dataclass(frozen=True)
class Round:
    name: str
    queued: int  # deletes queued to the farmers that are up
    settled: int  # of those, gone from the queue when timing stopped
    seconds: float
    hung_left: int  # deletes to the hung farmer still queued
    hung_attempts: int  # the most attempts counted on one of them

    @property
    def rate(self) -> float:
        return self.settled / self.seconds if self.seconds > 0 else 0.0


async def store_pieces(
    farmers: Sequence[FarmerProcess], signer: OrderSigner, count: int
) -> list[tuple[bytes, bytes]]:
    """`count` pieces on each farmer; (node id, piece id) pairs, one farmer after another."""
    client = PieceClient()
    gate = asyncio.Semaphore(32)
    now = int(time.time())

    async def put(farmer: FarmerProcess) -> bytes:
        data, piece_id = os.urandom(PIECE_SIZE), os.urandom(32)
        limit = signer.sign(farmer.identity.node_id, piece_id, Action.PUT, len(data), now)
        async with gate:
            await client.put(farmer.url, limit, digest_piece(data).piece_hash, data)
        return piece_id

    try:
        targets: list[tuple[bytes, bytes]] = []
        for _ in range(count):
            ids = await asyncio.gather(*(put(farmer) for farmer in farmers))
            targets += [(f.identity.node_id.raw, p) for f, p in zip(farmers, ids, strict=True)]
        return targets
    finally:
        await client.aclose()


def queued_by_node(database: Path) -> dict[bytes, tuple[int, int]]:
    """node id -> (deletes queued, most attempts on one)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as conn:
        rows = conn.execute(
            "SELECT node_id, count(*), max(attempts) FROM piece_deletes GROUP BY node_id"
        ).fetchall()
    return {bytes(node): (count, attempts) for node, count, attempts in rows}


async def run_round(
    network: LocalNetwork, signer: OrderSigner, name: str, hung: int, args: argparse.Namespace
) -> Round:
    worker = network.worker
    assert worker is not None
    await asyncio.to_thread(worker.stop)
    farmers = network.farmers
    targets = await store_pieces(farmers, signer, args.pieces)
    database = network.bridge_dir / "bridge.sqlite3"
    db = Database(DatabaseConfig(sqlite_url(network.bridge_dir)))
    try:
        db.write(lambda conn: queue_deletes(conn, targets, int(time.time())))
    finally:
        db.close()
    stopped = farmers[:hung]
    up = {f.identity.node_id.raw for f in farmers[hung:]}
    queued = sum(count for node, (count, _) in queued_by_node(database).items() if node in up)
    for farmer in stopped:
        os.kill(farmer.pid, signal.SIGSTOP)
    try:
        await asyncio.to_thread(worker.start)
        started = time.perf_counter()
        while True:
            left = queued_by_node(database)
            waiting = sum(count for node, (count, _) in left.items() if node in up)
            seconds = time.perf_counter() - started
            if waiting == 0 or seconds > args.give_up:
                break
            await asyncio.sleep(0.1)
        hung_rows = [left[node] for node in left if node not in up]
    finally:
        for farmer in stopped:
            os.kill(farmer.pid, signal.SIGCONT)
    # Let the hung farmer's deletes go too, so the next round starts from an empty queue.
    with sqlite3.connect(database, timeout=30) as conn:
        conn.execute("DELETE FROM piece_deletes")
    return Round(
        name,
        queued,
        queued - waiting,
        seconds,
        sum(count for count, _ in hung_rows),
        max((attempts for _, attempts in hung_rows), default=0),
    )


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="metadisk-bench-deletes-") as root:
        network = LocalNetwork(
            Path(root),
            farmers=args.farmers,
            separate_worker=True,
            bridge_settings={"health": {"node_check_interval": 1e6, "node_audit_interval": 1e6}},
        )
        async with network:
            identity = Identity((network.bridge_dir / "identity.seed").read_bytes())
            signer = OrderSigner(identity, 3600)
            rounds = [await run_round(network, signer, "all up", 0, args)]
            for hung in args.hung:
                rounds.append(await run_round(network, signer, f"{hung} hung", hung, args))
    print(
        f"{args.farmers} farmers, {args.pieces} pieces each; worker defaults "
        "(delete_interval 10 s, delete_batch 100, delete_timeout 10 s)"
    )
    header = (
        f"{'round':<8} {'queued':>7} {'settled':>8} {'seconds':>8} {'pieces/s':>9}"
        f" {'hung left':>10} {'attempts':>9}"
    )
    print(header)
    for r in rounds:
        print(
            f"{r.name:<8} {r.queued:>7} {r.settled:>8} {r.seconds:>8.2f} {r.rate:>9.1f}"
            f" {r.hung_left:>10} {r.hung_attempts:>9}"
        )
    print("queued/settled: deletes to the farmers that are up; timing gives up after", args.give_up)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--farmers", type=int, default=10)
    parser.add_argument("--pieces", type=int, default=100, help="pieces stored on each farmer")
    parser.add_argument(
        "--hung", type=int, nargs="+", default=[1], help="farmers hung, one round for each"
    )
    parser.add_argument(
        "--give-up", type=float, default=120.0, help="seconds before a round stops timing"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
