"""Repair end to end (issue 12, "Must show"): data outlives its farmers.

A `LocalNetwork` of 20 farmers with ``chore_interval=0.5`` (the settings ``metadisk up
--chore-interval 0.5`` runs: the uptime checker, the repair checker and the repairer every half
second) holds 20 objects of mixed sizes, from 0 B to over two segments. The profile is 4/7/8/10:
the local profile's k, o and n with the repair threshold one below o, so that a set losing any
piece is repaired and "every set back to at least o" is what repair must do (at 4/6/8/10 a set
that lost one piece keeps 7, above the threshold, and rightly waits; `tests/bridge/test_repair.py`
covers that). Farmers are killed
with SIGKILL for good, three at a time, in three rounds: nine in all, more than the four losses a
segment survives without repair. After each round, every piece set must be back to at least o
pieces on live farmers, each piece file on that farmer's disk; at the end every object
downloads byte-identical, an object assembled from parts at sparse segment indices among them.
Nothing is mocked: the repairer downloads pieces from the farmers,
rebuilds the missing ones and uploads them to others.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections import defaultdict
from collections.abc import Collection, Iterator

import pytest

from metadisk.client import Project
from metadisk.devnet.farmer import FarmerProcess
from tests.e2e.harness import SMALL, BackgroundNetwork, MiB, background_network, wait_for

INTERVAL = 0.5
TOKEN = secrets.token_hex(16)
SUCCESS = 8  # o: what repair brings every set back to
SIZES = [0, 1, 100, 4096, 4097, 64 << 10, MiB - 1, MiB, MiB + 1, 2 * MiB + 12345] * 2


def pieces_by_set(network: BackgroundNetwork) -> dict[bytes, list[tuple[str, bytes]]]:
    """Every piece set's pieces as (node id hex, piece id), from the bridge's database."""
    with network.bridge_db() as db:
        rows = db.execute("SELECT root_piece_id, node_id, piece_id FROM pieces").fetchall()
    sets: dict[bytes, list[tuple[str, bytes]]] = defaultdict(list)
    for row in rows:
        sets[row["root_piece_id"]].append((row["node_id"].hex(), row["piece_id"]))
    return sets


def on_disk(network: BackgroundNetwork, farmer: FarmerProcess, piece_id: bytes) -> bool:
    bridge = network.network.bridge.node_id
    name = piece_id.hex()
    return (farmer.data_dir / "pieces" / bridge / name[:2] / name).is_file()


def all_repaired(
    network: BackgroundNetwork, dead: Collection[str], expected_sets: int
) -> dict[bytes, int] | None:
    """Each set's count of pieces on live farmers, if every set has at least o of them, each
    on its farmer's disk; else None."""
    live = {f.node_id: f for f in network.farmers if f.node_id not in dead}
    sets = pieces_by_set(network)
    if len(sets) != expected_sets:
        return None
    counts = {}
    for root, pieces in sets.items():
        alive = [(node, piece) for node, piece in pieces if node in live]
        if len(alive) < SUCCESS:
            return None
        assert all(on_disk(network, live[node], piece) for node, piece in alive)
        counts[root] = len(alive)
    return counts


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundNetwork]:
    with background_network(
        tmp_path_factory.mktemp("repair"),
        farmers=20,
        chore_interval=INTERVAL,
        bridge_settings={
            "server": {"admin_token": TOKEN},
            "objects": {"profiles": {"local": {"k": 4, "m": 7, "o": SUCCESS, "n": 10}}},
        },
    ) as network:
        yield network


def test_repair_brings_every_segment_back_after_each_round_of_losses(
    network: BackgroundNetwork,
) -> None:
    data = {f"object-{i:02d}-{size}": os.urandom(size) for i, size in enumerate(SIZES)}
    with Project.open(network.tenant().grant, config=SMALL) as project:
        project.create_bucket("bkt")
        for key, content in data.items():
            project.upload("bkt", key, content)
        # An object from parts at sparse indices (S3 multipart), one part left out.
        parts = [os.urandom(MiB + 7), os.urandom(3000), os.urandom(MiB)]
        upload_id = project.begin_upload("bkt", "parts")
        written = [
            project.upload_part("bkt", "parts", upload_id, part, first_index=number << 17)
            for number, part in enumerate(parts)
        ]
        project.upload_part("bkt", "parts", upload_id, os.urandom(5000), first_index=3 << 17)
        project.commit_upload("bkt", "parts", upload_id, [i for w in written for i in w.indices])
        data["parts"] = b"".join(parts)
        expected_sets = len(pieces_by_set(network))
        # The segments of the objects too big to be inline, and the four the parts keep.
        assert expected_sets == 18 + 4
        dead: set[str] = set()
        for round_number in range(3):
            # The three live farmers holding the most pieces: the hardest losses to take.
            held: dict[str, int] = defaultdict(int)
            for pieces in pieces_by_set(network).values():
                for node, _ in pieces:
                    held[node] += 1
            live = [f for f in network.farmers if f.node_id not in dead]
            victims = sorted(live, key=lambda f: -held[f.node_id])[:3]
            network.kill(victims)
            dead |= {f.node_id for f in victims}
            counts = wait_for(
                functools.partial(all_repaired, network, frozenset(dead), expected_sets),
                f"every piece set back to {SUCCESS} live pieces after round {round_number + 1}",
                within=90,
            )
            assert min(counts.values()) >= SUCCESS
        assert len(dead) == 9
        for key, content in data.items():
            assert b"".join(project.stream("bkt", key)) == content, key
