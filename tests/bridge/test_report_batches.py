"""Transfer reports reach the database in batches, at most one write per `flush_every`."""

from __future__ import annotations

from collections.abc import Sequence

from metadisk.bridge.config import HealthConfig
from metadisk.bridge.health.db import Transfer
from metadisk.bridge.health.reports import Reported, TransferReports


class Writes:
    def __init__(self) -> None:
        self.batches: list[list[Transfer]] = []

    def record_transfers(self, transfers: Sequence[Transfer], decay: float, now: int) -> None:
        self.batches.append(list(transfers))


def test_reports_are_written_once_a_second_and_on_flush() -> None:
    db, clock = Writes(), [0.0]
    reports = TransferReports(db, HealthConfig(), clock=lambda: clock[0])  # type: ignore[arg-type]
    a, b = b"a" * 32, b"b" * 32
    assert (
        reports.record([Reported(0, a, "success", 5), Reported(1, b, "failed", 9, "timeout")], 1)
        == 2
    )
    assert db.batches == []  # within the second: held
    clock[0] = 1.5
    reports.record([Reported(0, a, "slow", 700)], 2)
    [batch] = db.batches
    assert [(t.node_id, t.ok, t.recheck) for t in batch] == [
        (a, True, False), (b, False, True), (a, False, False),
    ]  # fmt: skip
    reports.record([Reported(2, b, "success", 4)], 3)
    reports.flush(4)
    assert len(db.batches) == 2 and db.batches[1][0].node_id == b
    reports.flush(5)
    assert len(db.batches) == 2  # nothing new: no write


def test_a_node_counts_once_per_report_with_its_worst_outcome() -> None:
    db = Writes()
    reports = TransferReports(db, HealthConfig(), flush_every=0)  # type: ignore[arg-type]
    a = b"a" * 32
    reported = [
        Reported(0, a, "success", 5),
        Reported(3, a, "bad-piece", 5),
        Reported(4, a, "slow", 5),
    ]
    assert reports.record(reported, 1) == 1
    assert [t.ok for t in db.batches[0]] == [False]
