"""Buckets in SQL."""

from __future__ import annotations

from sqlalchemy import Connection, Row, delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from metadisk.bridge.buckets.db import Bucket, CreateOutcome, DeleteOutcome
from metadisk.bridge.db import tables as t
from metadisk.bridge.db._shared import IS_COMMITTED, release_streams
from metadisk.bridge.db.engine import Database
from metadisk.core.erasure import RedundancyScheme

_b = t.buckets.c


class BucketsStore:
    """Implements `metadisk.bridge.buckets.db.BucketsDB`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create_bucket(self, project_id: str, bucket: Bucket) -> CreateOutcome:
        def work(conn: Connection) -> CreateOutcome:
            # Lock the project row so that concurrent creates cannot both pass the count.
            limit = conn.execute(
                select(t.projects.c.max_buckets)
                .where(t.projects.c.id == project_id)
                .with_for_update()
            ).scalar_one()
            found = conn.execute(
                select(_b.name).where(_b.project_id == project_id, _b.name == bucket.name)
            ).first()
            if found is not None:
                return CreateOutcome.EXISTS
            count = conn.execute(
                select(func.count()).select_from(t.buckets).where(_b.project_id == project_id)
            ).scalar_one()
            if count >= limit:
                return CreateOutcome.LIMIT
            rs = bucket.redundancy
            conn.execute(
                insert(t.buckets).values(
                    project_id=project_id,
                    name=bucket.name,
                    profile=bucket.profile,
                    k=rs.k,
                    m=rs.m,
                    o=rs.o,
                    n=rs.n,
                    created_at=bucket.created_at,
                )
            )
            return CreateOutcome.CREATED

        try:
            return self._db.write(work)
        except IntegrityError:
            return CreateOutcome.EXISTS

    def bucket(self, project_id: str, name: str) -> Bucket | None:
        query = select(t.buckets).where(_b.project_id == project_id, _b.name == name)
        row = self._db.read(lambda conn: conn.execute(query).first())
        return None if row is None else _bucket(row)

    def buckets(
        self, project_id: str, after: str, limit: int, only: frozenset[str] | None
    ) -> list[Bucket]:
        query = select(t.buckets).where(_b.project_id == project_id, _b.name > after)
        if only is not None:
            query = query.where(_b.name.in_(sorted(only)))
        query = query.order_by(_b.name).limit(limit)
        rows = self._db.read(lambda conn: conn.execute(query).all())
        return [_bucket(row) for row in rows]

    def delete_bucket(self, project_id: str, name: str, force: bool, now: int) -> DeleteOutcome:
        o = t.objects.c

        def work(conn: Connection) -> DeleteOutcome:
            found = conn.execute(
                select(_b.name)
                .where(_b.project_id == project_id, _b.name == name)
                .with_for_update()
            ).first()
            if found is None:
                return DeleteOutcome.NOT_FOUND
            in_bucket = (o.project_id == project_id) & (o.bucket == name)
            if not force:
                visible = conn.execute(select(exists().where(in_bucket, IS_COMMITTED))).scalar()
                if visible:
                    return DeleteOutcome.NOT_EMPTY
            totals = conn.execute(
                select(
                    func.coalesce(func.sum(o.encrypted_size), 0),
                    func.coalesce(func.sum(o.segment_count), 0),
                ).where(in_bucket, IS_COMMITTED)
            ).one()
            # Pending uploads go too: their pieces would otherwise be orphaned on farmers.
            release_streams(conn, select(o.stream_id).where(in_bucket), now)
            conn.execute(delete(t.objects).where(in_bucket))
            conn.execute(delete(t.buckets).where(_b.project_id == project_id, _b.name == name))
            conn.execute(
                update(t.projects)
                .where(t.projects.c.id == project_id)
                .values(
                    used_storage=t.projects.c.used_storage - totals[0],
                    used_segments=t.projects.c.used_segments - totals[1],
                )
            )
            return DeleteOutcome.DELETED

        return self._db.write(work)


def _bucket(row: Row) -> Bucket:  # type: ignore[type-arg]
    return Bucket(
        row.name, row.profile, RedundancyScheme(row.k, row.m, row.o, row.n), row.created_at
    )
