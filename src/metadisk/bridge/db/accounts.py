"""Accounts, sessions, projects and API keys in SQL."""

from __future__ import annotations

import contextlib

from sqlalchemy import Connection, Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from metadisk.bridge.accounts.db import KeyRecord, Project, Usage, User
from metadisk.bridge.auth.kek import KeyWrap, unwrap_or_none
from metadisk.bridge.config import Limits
from metadisk.bridge.db import tables as t
from metadisk.bridge.db.engine import Database


class AccountsStore:
    """Implements `metadisk.bridge.accounts.db.AccountsDB`."""

    def __init__(self, db: Database, wrap: KeyWrap) -> None:
        self._db = db
        self._wrap = wrap  # API key secrets are stored wrapped (metadisk.bridge.auth.kek)

    def create_user(self, user: User) -> bool:
        def work(conn: Connection) -> bool:
            taken = conn.execute(select(t.users.c.id).where(t.users.c.email == user.email))
            if taken.first() is not None:
                return False
            conn.execute(
                insert(t.users).values(
                    id=user.id,
                    email=user.email,
                    password_hash=user.password_hash,
                    created_at=user.created_at,
                )
            )
            return True

        try:
            return self._db.write(work)
        except IntegrityError:  # registered concurrently
            return False

    def user_by_email(self, email: str) -> User | None:
        row = self._db.read(
            lambda conn: conn.execute(select(t.users).where(t.users.c.email == email)).first()
        )
        return None if row is None else User(row.id, row.email, row.password_hash, row.created_at)

    def create_session(self, token_hash: bytes, user_id: str, now: int, expires_at: int) -> None:
        def work(conn: Connection) -> None:
            # Logins are rare: a good moment to forget expired sessions.
            conn.execute(delete(t.sessions).where(t.sessions.c.expires_at <= now))
            conn.execute(
                insert(t.sessions).values(
                    token_hash=token_hash, user_id=user_id, created_at=now, expires_at=expires_at
                )
            )

        self._db.write(work)

    def session_user(self, token_hash: bytes, now: int) -> User | None:
        query = (
            select(t.users)
            .join(t.sessions, t.sessions.c.user_id == t.users.c.id)
            .where(t.sessions.c.token_hash == token_hash, t.sessions.c.expires_at > now)
        )
        row = self._db.read(lambda conn: conn.execute(query).first())
        return None if row is None else User(row.id, row.email, row.password_hash, row.created_at)

    def delete_session(self, token_hash: bytes) -> None:
        self._db.write(
            lambda conn: conn.execute(
                delete(t.sessions).where(t.sessions.c.token_hash == token_hash)
            )
        )

    def create_project(self, project: Project) -> None:
        limits = project.limits
        self._db.write(
            lambda conn: conn.execute(
                insert(t.projects).values(
                    id=project.id,
                    owner_id=project.owner_id,
                    name=project.name,
                    salt=project.salt,
                    created_at=project.created_at,
                    max_buckets=limits.buckets,
                    max_storage=limits.storage_bytes,
                    max_egress=limits.egress_bytes,
                    max_segments=limits.segments,
                )
            )
        )

    def projects(self, owner_id: str, period: int) -> list[Project]:
        query = _project_query(period).where(t.projects.c.owner_id == owner_id)
        rows = self._db.read(
            lambda conn: conn.execute(query.order_by(t.projects.c.created_at, t.projects.c.id))
        )
        return [_project(row) for row in rows]

    def project(self, owner_id: str, project_id: str, period: int) -> Project | None:
        query = _project_query(period).where(
            t.projects.c.owner_id == owner_id, t.projects.c.id == project_id
        )
        row = self._db.read(lambda conn: conn.execute(query).first())
        return None if row is None else _project(row)

    def verifier(self, project_id: str) -> bytes | None:
        query = select(t.projects.c.passphrase_verifier).where(t.projects.c.id == project_id)
        found = self._db.read(lambda conn: conn.execute(query).scalar())
        return None if found is None else bytes(found)

    def set_verifier(self, project_id: str, verifier: bytes, force: bool) -> bytes | None:
        p = t.projects.c
        condition = p.id == project_id
        if not force:
            # First writer wins: one conditional UPDATE, so two racing setups cannot both win.
            condition = condition & p.passphrase_verifier.is_(None)

        def work(conn: Connection) -> bytes | None:
            conn.execute(update(t.projects).where(condition).values(passphrase_verifier=verifier))
            kept = conn.execute(select(p.passphrase_verifier).where(p.id == project_id)).scalar()
            return None if kept is None else bytes(kept)

        return self._db.write(work)

    def create_key(self, record: KeyRecord, secret: bytes) -> None:
        self._db.write(
            lambda conn: conn.execute(
                insert(t.api_keys).values(
                    key_id=record.key_id,
                    project_id=record.project_id,
                    name=record.name,
                    secret=self._wrap.wrap(record.key_id, record.project_id, secret),
                    created_at=record.created_at,
                )
            )
        )

    def keys(self, project_id: str) -> list[KeyRecord]:
        k = t.api_keys.c
        query = (
            select(k.key_id, k.project_id, k.name, k.created_at)
            .where(k.project_id == project_id)
            .order_by(k.created_at, k.key_id)
        )
        rows = self._db.read(lambda conn: conn.execute(query).all())
        return [KeyRecord(r.key_id, r.project_id, r.name, r.created_at) for r in rows]

    def key_secret(self, project_id: str, key_id: bytes) -> bytes | None:
        k = t.api_keys.c
        query = select(k.secret).where(k.project_id == project_id, k.key_id == key_id)
        stored: bytes | None = self._db.read(lambda conn: conn.execute(query).scalar())
        if stored is None:
            return None
        return unwrap_or_none(self._wrap, key_id, project_id, bytes(stored))

    def delete_key(self, project_id: str, key_id: bytes) -> bool:
        k = t.api_keys.c
        statement = delete(t.api_keys).where(k.project_id == project_id, k.key_id == key_id)
        return bool(self._db.write(lambda conn: conn.execute(statement).rowcount))

    def revoke(self, key_id: bytes, tail: bytes, now: int) -> None:
        revoke(self._db, key_id, tail, now)


def revoke(db: Database, key_id: bytes, tail: bytes, now: int) -> None:
    def work(conn: Connection) -> None:
        exists = conn.execute(select(t.revocations.c.tail).where(t.revocations.c.tail == tail))
        if exists.first() is None:
            conn.execute(insert(t.revocations).values(tail=tail, key_id=key_id, created_at=now))

    # Revoked concurrently: the tail is on the list either way.
    with contextlib.suppress(IntegrityError):
        db.write(work)


def _project_query(period: int):  # type: ignore[no-untyped-def]
    p = t.projects.c
    bucket_count = (
        select(func.count())
        .select_from(t.buckets)
        .where(t.buckets.c.project_id == p.id)
        .scalar_subquery()
    )
    egress = (
        select(t.project_egress.c.bytes)
        .where(t.project_egress.c.project_id == p.id, t.project_egress.c.period == period)
        .scalar_subquery()
    )
    return select(
        t.projects, bucket_count.label("bucket_count"), func.coalesce(egress, 0).label("egress")
    )


def _project(row: Row) -> Project:  # type: ignore[type-arg]
    return Project(
        id=row.id,
        owner_id=row.owner_id,
        name=row.name,
        salt=row.salt,
        created_at=row.created_at,
        limits=Limits(row.max_buckets, row.max_storage, row.max_egress, row.max_segments),
        usage=Usage(row.used_storage, row.used_segments, row.bucket_count, row.egress),
        verifier=None if row.passphrase_verifier is None else bytes(row.passphrase_verifier),
    )
