"""API key secrets and revocations in SQL."""

from __future__ import annotations

from sqlalchemy import bindparam, select

from metadisk.bridge.auth.db import KeySecret
from metadisk.bridge.db import tables as t
from metadisk.bridge.db.accounts import revoke
from metadisk.bridge.db.engine import Database

_KEY_QUERY = (
    select(t.api_keys.c.project_id, t.api_keys.c.secret, t.revocations.c.tail)
    .select_from(t.api_keys.outerjoin(t.revocations, t.revocations.c.key_id == t.api_keys.c.key_id))
    .where(t.api_keys.c.key_id == bindparam("key_id"))
)


class AuthStore:
    """Implements `metadisk.bridge.auth.db.AuthDB`: one query per authorized request."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def key_secret(self, key_id: bytes) -> KeySecret | None:
        rows = self._db.read(lambda conn: conn.execute(_KEY_QUERY, {"key_id": key_id}).all())
        if not rows:
            return None
        project_id, secret, _ = rows[0]
        revoked = frozenset(tail for _, _, tail in rows if tail is not None)
        return KeySecret(project_id, secret, revoked)

    def revoke(self, key_id: bytes, tail: bytes, now: int) -> None:
        revoke(self._db, key_id, tail, now)
