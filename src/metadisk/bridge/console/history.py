"""Usage over time: one row a project a UTC day (`tables.usage_days`), for the console's chart.

The bridge keeps usage as counters (storage, segments) and a monthly egress total; their history
is what this adds. A row is the day's usage as last seen: the worker's ``usage-history`` chore
writes every project's row for today (`UsageHistory.record_all`), and the console writes the row
of the project it shows (`UsageHistory.record`), so the chart's last bar is always current and an
upload shows on the next page load, not the next day.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, insert, select

from metadisk.bridge.common import month_period
from metadisk.bridge.db import tables as t
from metadisk.bridge.db._shared import IS_COMMITTED
from metadisk.bridge.db.engine import Database
from metadisk.bridge.metainfo.db import ProjectUsage

DAY = 86_400
HISTORY_INTERVAL = 600.0  # seconds between the worker's snapshots of every project
_u = t.usage_days.c


@dataclass(frozen=True, slots=True)
class DayUsage:
    """A project's usage on `day` (days since the epoch, UTC)."""

    day: int
    storage_bytes: int
    egress_bytes: int
    segments: int
    objects: int


@dataclass(frozen=True, slots=True)
class Totals:
    """The whole bridge's usage, for operators."""

    users: int
    projects: int
    storage_bytes: int
    segments: int
    objects: int
    egress_bytes: int  # this month


def day_of(now: int) -> int:
    return now // DAY


class UsageHistory:
    """Reads and writes `usage_days`."""

    def __init__(self, db: Database, clock: Callable[[], int]) -> None:
        self._db = db
        self._clock = clock

    def record(self, project_id: str, usage: ProjectUsage, now: int) -> None:
        """Today's row of one project, as `usage` (read at `now`) has it."""
        row = DayUsage(
            day_of(now), usage.storage_bytes, usage.egress_bytes, usage.segments, usage.objects
        )
        self._db.write(lambda conn: _put(conn, project_id, row, now))

    def record_all(self, now: int) -> int:
        """Today's row of every project; how many were written."""
        objects = (
            select(t.objects.c.project_id, func.count().label("n"))
            .where(IS_COMMITTED)
            .group_by(t.objects.c.project_id)
            .subquery()
        )
        egress = (
            select(t.project_egress.c.project_id, t.project_egress.c.bytes)
            .where(t.project_egress.c.period == month_period(now))
            .subquery()
        )
        p = t.projects.c
        query = (
            select(p.id, p.used_storage, p.used_segments, objects.c.n, egress.c.bytes)
            .outerjoin(objects, objects.c.project_id == p.id)
            .outerjoin(egress, egress.c.project_id == p.id)
        )

        def work(conn: Connection) -> int:
            rows = conn.execute(query).all()
            for project_id, storage, segments, count, egressed in rows:
                day = DayUsage(day_of(now), storage, egressed or 0, segments, count or 0)
                _put(conn, project_id, day, now)
            return len(rows)

        return self._db.write(work)

    def days(self, project_id: str, now: int, span: int = 30) -> list[DayUsage]:
        """The project's rows of the last `span` days, oldest first."""
        query = (
            select(_u.day, _u.storage_bytes, _u.egress_bytes, _u.segments, _u.objects)
            .where(_u.project_id == project_id, _u.day > day_of(now) - span)
            .order_by(_u.day)
        )
        rows = self._db.read(lambda conn: conn.execute(query).all())
        return [DayUsage(*row) for row in rows]

    def totals(self, now: int) -> Totals:
        """Every project's usage added up, read now (not from the history)."""
        p = t.projects.c
        e = t.project_egress.c

        def read(conn: Connection) -> Totals:
            storage, segments, projects = conn.execute(
                select(
                    func.coalesce(func.sum(p.used_storage), 0),
                    func.coalesce(func.sum(p.used_segments), 0),
                    func.count(),
                )
            ).one()
            users = conn.execute(select(func.count()).select_from(t.users)).scalar_one()
            objects = conn.execute(
                select(func.count()).select_from(t.objects).where(IS_COMMITTED)
            ).scalar_one()
            egress = conn.execute(
                select(func.coalesce(func.sum(e.bytes), 0)).where(e.period == month_period(now))
            ).scalar_one()
            return Totals(users, projects, int(storage), int(segments), objects, int(egress))

        return self._db.read(read)

    async def cycle(self) -> int:
        """The worker chore's pass: snapshot every project (off the event loop)."""
        return await asyncio.to_thread(self.record_all, self._clock())


def _put(conn: Connection, project_id: str, row: DayUsage, now: int) -> None:
    # Delete and insert: one portable upsert on SQLite and PostgreSQL, inside the transaction.
    conn.execute(delete(t.usage_days).where(_u.project_id == project_id, _u.day == row.day))
    conn.execute(
        insert(t.usage_days).values(
            project_id=project_id,
            day=row.day,
            storage_bytes=row.storage_bytes,
            egress_bytes=row.egress_bytes,
            segments=row.segments,
            objects=row.objects,
            updated_at=now,
        )
    )
