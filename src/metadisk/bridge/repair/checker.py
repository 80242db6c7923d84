"""The repair checker: walks every piece set and queues those with too few healthy pieces.

A piece is healthy when its node is online (found by the uptime checker within the online
window, and not found offline since) and neither disqualified, suspended nor leaving (a graceful
exit started). A set whose healthy pieces are at or below its repair threshold m is queued,
least healthy first; one below k is lost (no repair can rebuild it) and is said so loudly: an
error in the log each pass, the ``lost`` figure of ``metadisk bridge health`` and of the
worker's ``metadisk_bridge_piece_sets`` gauge.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from metadisk.bridge.repair.db import RepairDB, SetHealth
from metadisk.runtime.logs import event

log = logging.getLogger(__name__)

BATCH = 1000


@dataclass(frozen=True, slots=True)
class CheckReport:
    piece_sets: int
    injured: int  # at or below the repair threshold, repairable
    lost: int  # below k


class Checker:
    """One cycle: a full pass over the piece sets, in batches."""

    def __init__(
        self,
        db: RepairDB,
        clock: Callable[[], int],
        online_window: int,
        *,
        before_pass: Callable[[int], object] = lambda now: None,
        observe: Callable[[CheckReport], None] = lambda report: None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._online_window = online_window
        self._before_pass = before_pass  # e.g. ending graceful exits that stopped moving
        self._observe = observe

    async def cycle(self) -> CheckReport:
        started = self._clock()
        await asyncio.to_thread(self._before_pass, started)
        after, total, injured, lost = b"", 0, 0, 0
        while True:
            roots = await asyncio.to_thread(self._db.sets_after, after, BATCH)
            if not roots:
                break
            after = roots[-1]
            now = self._clock()
            sets = await asyncio.to_thread(
                self._db.check_sets, roots, now - self._online_window, now
            )
            total += len(sets)
            weak = [s for s in sets if s.healthy <= s.m]
            injured += sum(1 for s in weak if s.healthy >= s.k)
            lost += sum(1 for s in weak if s.healthy < s.k)
            _log_lost([s for s in weak if s.healthy < s.k])
        await asyncio.to_thread(self._db.finish_check, started, self._clock(), total, injured, lost)
        report = CheckReport(total, injured, lost)
        if lost:
            event(
                log,
                logging.ERROR,
                f"{lost} piece sets have fewer than k healthy pieces: their segments cannot be "
                "rebuilt unless nodes come back",
                lost=lost,
                injured=injured,
                piece_sets=total,
            )
        elif injured:
            event(log, logging.INFO, f"{injured} piece sets queued for repair", injured=injured)
        self._observe(report)
        return report


def _log_lost(sets: list[SetHealth]) -> None:
    for each in sets[:10]:  # a few by name; the total goes in the pass's summary line
        event(
            log,
            logging.ERROR,
            f"piece set {each.root_piece_id.hex()[:16]} is lost: {each.healthy} healthy pieces, "
            f"{each.k} needed",
            root_piece_id=each.root_piece_id,
            healthy=each.healthy,
            k=each.k,
        )
