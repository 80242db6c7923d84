"""Node selection: the vetting share, performance weights and network diversity (unit tests
over an in-memory node directory; the SQL side is in test_health.py and test_nodes.py)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection

import pytest

from metadisk.bridge import errors
from metadisk.bridge.config import HealthConfig, NodesConfig
from metadisk.bridge.overlay.db import Candidate, NodeRecord
from metadisk.bridge.overlay.service import OverlayService


class Directory:
    """The `OverlayDB` calls selection makes, over a fixed list of candidates."""

    def __init__(self, candidates: list[Candidate]) -> None:
        self.candidates_ = candidates

    def candidates(
        self,
        min_free: int,
        online_since: int,
        exclude: Collection[bytes],
        limit: int,
    ) -> list[Candidate]:
        found = [c for c in self.candidates_ if c.node_id not in exclude]
        random.shuffle(found)
        return found[:limit]

    def holding(self, node_ids: Collection[bytes], count: int) -> set[bytes]:
        return set()  # no node holds any piece yet

    def node(self, node_id: bytes) -> NodeRecord | None:
        raise AssertionError("not used")

    def save_contact(self, record: NodeRecord) -> None:
        raise AssertionError("not used")

    def disqualify(self, node_id: bytes, now: int) -> bool:
        raise AssertionError("not used")


async def no_ping(address: str, wait: float) -> str:
    raise AssertionError("not used")


def node(i: int, *, vetted: bool = True, success: float = 1.0, net: str | None = None) -> Candidate:
    return Candidate(
        bytes([i]) * 32, b"k" * 32, f"http://n{i}", net or f"10.0.{i}.0/24",
        vetted=vetted, perf_success=success,
    )  # fmt: skip


def service(
    nodes: list[Candidate], *, share: float = 0.05, single_host: bool = True
) -> OverlayService:
    return OverlayService(
        Directory(nodes),  # type: ignore[arg-type]
        NodesConfig(single_host=single_host),
        no_ping,
        HealthConfig(new_node_share=share),
        rng=random.Random(7),
    )


def test_unvetted_nodes_get_their_share_on_average() -> None:
    nodes = [node(i) for i in range(20)] + [node(100 + i, vetted=False) for i in range(20)]
    overlay = service(nodes, share=0.2)
    new = sum(sum(not c.vetted for c in overlay.select(10, 10, 1, 0)) for _ in range(500))
    assert 800 <= new <= 1200  # 500 selections of 10 at a share of 0.2: 1,000 expected


def test_unvetted_nodes_fill_in_when_vetted_ones_run_short() -> None:
    nodes = [node(i) for i in range(3)] + [node(100 + i, vetted=False) for i in range(7)]
    chosen = service(nodes, share=0.0).select(10, 10, 1, 0)
    assert sum(c.vetted for c in chosen) == 3 and len(chosen) == 10
    # A new network has no vetted node at all, and must still store data.
    only_new = [node(100 + i, vetted=False) for i in range(10)]
    assert len(service(only_new, share=0.0).select(10, 10, 1, 0)) == 10


def test_failing_nodes_are_chosen_less_but_never_starved() -> None:
    nodes = [node(i) for i in range(10)] + [node(50, success=0.2)]
    overlay = service(nodes)
    counts = Counter(c.node_id[0] for _ in range(2000) for c in overlay.select(3, 3, 1, 0))
    healthy = sum(counts[i] for i in range(10)) / 10
    assert 0 < counts[50] < healthy / 4


def test_one_piece_per_network_still_holds() -> None:
    nodes = [node(i, net="10.0.0.0/24") for i in range(5)] + [node(9, net="10.0.9.0/24")]
    overlay = service(nodes, single_host=False)
    chosen = overlay.select(2, 2, 1, 0)
    assert len({c.last_net for c in chosen}) == 2
    with pytest.raises(errors.Unavailable):
        overlay.select(3, 3, 1, 0)
