"""Farmers failing under a real network: killed mid-upload, n-k of them gone, pieces corrupted.

This module runs its own network (it kills and damages farmers). Farmers check in every second
and the bridge counts a farmer offline after six seconds without a ping-back, so a dead
farmer is noticed in seconds rather than the hour a production bridge allows.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from metadisk.bridge.config import ObjectsConfig
from metadisk.client import ClientError, DownloadFailed, IntegrityFailure, Project
from tests.e2e.harness import SMALL, BackgroundNetwork, MiB, background_network, piece_files

ONLINE_WINDOW = 6
SPARES = ObjectsConfig().download_spares  # order limits beyond k the bridge hands out
FULL = {"k": 4, "m": 6, "o": 10, "n": 10}  # a profile that stores every piece


@pytest.fixture(scope="module")
def fragile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundNetwork]:
    with background_network(
        tmp_path_factory.mktemp("fragile"),
        farmers=10,
        farmer_settings={"checkin_interval": 1.0},
        bridge_settings={
            "nodes": {"online_window": ONLINE_WINDOW},
            "objects": {"profiles": {"full": FULL}},
        },
    ) as running:
        yield running


@pytest.fixture
def project(fragile: BackgroundNetwork) -> Iterator[Project]:
    with Project.open(fragile.tenant().grant, config=SMALL) as opened:
        opened.create_bucket("bkt")
        yield opened


def read(project: Project, key: str) -> bytes:
    return b"".join(project.stream("bkt", key))


def test_upload_goes_on_when_farmers_die_midway(
    fragile: BackgroundNetwork, project: Project
) -> None:
    scheme = fragile.network.redundancy
    victims = fragile.farmers[: scheme.n - scheme.o]  # as many as a segment can lose
    data = os.urandom(8 * MiB + 99)
    first_segment, killed = threading.Event(), threading.Event()
    outcome: list[BaseException | None] = []

    def progress(done: int, total: int | None) -> None:
        if done >= MiB and not first_segment.is_set():
            first_segment.set()
            # Hold the upload (this runs on its event loop) until the farmers are dead, so the
            # kill lands mid-upload however fast this machine is.
            killed.wait(60)

    def upload() -> None:
        try:
            project.upload("bkt", "survivor", data, progress=progress)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)
            first_segment.set()

    worker = threading.Thread(target=upload)
    worker.start()
    try:
        assert first_segment.wait(60), "no segment was stored"
        assert not outcome, outcome  # still uploading
        fragile.kill(victims)
    finally:
        killed.set()
        worker.join(120)
    try:
        assert outcome == [None], outcome
        assert read(project, "survivor") == data
    finally:
        fragile.restart(victims)


def test_download_needs_only_k_farmers(fragile: BackgroundNetwork, project: Project) -> None:
    # Long-tail cancellation commits o of n pieces, so which farmers hold a committed piece
    # varies by segment. A bucket whose profile needs all n (o = n) makes "any n - k farmers
    # may die" exact for every segment.
    full = FULL
    project.create_bucket("allten", profile="full")
    data = os.urandom(3 * MiB + 7)
    project.upload("allten", "sturdy", data)
    victims = fragile.farmers[: full["n"] - full["k"]]
    fragile.kill(victims)
    try:
        fragile.wait_offline(victims, ONLINE_WINDOW)
        assert b"".join(project.stream("allten", "sturdy")) == data
        middle = b"".join(project.stream("allten", "sturdy", offset=MiB - 3, length=MiB + 9))
        assert middle == data[MiB - 3 : 2 * MiB + 6]
    finally:
        fragile.restart(victims)


def flip(path: Path) -> None:
    """Damage a piece file's data (its first bytes are piece bytes, the trailer comes last).

    A piece the segment did not record (one of the n - o that landed after the success
    threshold) may be deleted meanwhile: gone, it is never offered, so there is nothing to do.
    """
    try:
        with open(path, "r+b") as piece:
            piece.seek(100)
            byte = piece.read(1)
            piece.seek(100)
            piece.write(bytes([byte[0] ^ 0xFF]))
    except FileNotFoundError:
        return


def upload_and_find_pieces(
    fragile: BackgroundNetwork, project: Project, key: str, data: bytes, bucket: str = "bkt"
) -> list[list[Path]]:
    """Upload `data`; the new piece files, grouped by farmer (in farmer order)."""
    before = piece_files(fragile.root)
    project.upload(bucket, key, data)
    by_farmer: dict[str, list[Path]] = {}
    for piece in sorted(piece_files(fragile.root) - before):
        by_farmer.setdefault(piece.relative_to(fragile.root).parts[1], []).append(piece)
    assert len(by_farmer) >= fragile.network.redundancy.o
    return [by_farmer[name] for name in sorted(by_farmer)]


def test_corrupted_pieces_are_detected_and_worked_around(
    fragile: BackgroundNetwork, project: Project
) -> None:
    data = os.urandom(2 * MiB + 5)
    farmers = upload_and_find_pieces(fragile, project, "damaged", data)
    # The bridge hands out k + spares order limits per segment: that many bad pieces are
    # always worked around, whichever pieces it offers.
    for pieces in farmers[:SPARES]:
        for piece in pieces:
            flip(piece)
    assert read(project, "damaged") == data
    assert (
        b"".join(project.stream("bkt", "damaged", offset=MiB - 1, length=3))
        == (data[MiB - 1 : MiB + 2])
    )

    # Every piece bad: the download must fail loudly, never hand back other bytes.
    for pieces in farmers[SPARES:]:
        for piece in pieces:
            flip(piece)
    with pytest.raises((DownloadFailed, IntegrityFailure)):
        read(project, "damaged")


def test_any_k_good_pieces_are_enough(fragile: BackgroundNetwork, project: Project) -> None:
    # All n pieces stored (o = n, as in test_download_needs_only_k_farmers): with o < n a
    # segment may keep only o pieces, and n - k bad farmers could leave fewer than k good.
    project.create_bucket("spoilt", profile="full")
    # Seven segments: that the k + 2 pieces offered for every one of them happen to include
    # no more than 2 bad ones is far too unlikely (about 1e-8) to pass by luck.
    data = os.urandom(6 * MiB + 5)
    farmers = upload_and_find_pieces(fragile, project, "spoiled", data, "spoilt")
    assert len(farmers) == FULL["n"]
    for pieces in farmers[: FULL["n"] - FULL["k"]]:
        for piece in pieces:
            flip(piece)
    assert b"".join(project.stream("spoilt", "spoiled")) == data
    # One bad piece more than a segment can lose: the error names the bad pieces.
    for piece in farmers[FULL["n"] - FULL["k"]]:
        flip(piece)
    with pytest.raises(DownloadFailed) as caught:
        b"".join(project.stream("spoilt", "spoiled"))
    assert len(caught.value.failures) == FULL["n"] - FULL["k"] + 1
    assert all(r.startswith("bad-piece") for r in caught.value.failures.values())


def test_nothing_is_lost_across_a_network_restart(
    fragile: BackgroundNetwork, project: Project
) -> None:
    data = os.urandom(MiB + 3)
    project.upload("bkt", "kept", data)
    fragile.call(fragile.network.stop())
    with pytest.raises(ClientError):
        project.stat("bkt", "kept")
    fragile.call(fragile.network.start())
    assert read(project, "kept") == data
