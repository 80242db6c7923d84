"""API key secrets (stored wrapped: `metadisk.bridge.auth.kek`) and revocations in SQL."""

from __future__ import annotations

import logging

from sqlalchemy import Connection, bindparam, func, select, update

from metadisk.bridge.auth.db import KeySecret
from metadisk.bridge.auth.kek import (
    SECRET_SIZE,
    KekError,
    KeyWrap,
    unwrap_or_none,
    wrapped_kek_id,
)
from metadisk.bridge.db import tables as t
from metadisk.bridge.db.accounts import revoke
from metadisk.bridge.db.engine import Database
from metadisk.runtime.logs import event

log = logging.getLogger(__name__)

_KEY_QUERY = (
    select(t.api_keys.c.project_id, t.api_keys.c.secret, t.revocations.c.tail)
    .select_from(t.api_keys.outerjoin(t.revocations, t.revocations.c.key_id == t.api_keys.c.key_id))
    .where(t.api_keys.c.key_id == bindparam("key_id"))
)


class AuthStore:
    """Implements `metadisk.bridge.auth.db.AuthDB`: one query per authorized request."""

    def __init__(self, db: Database, wrap: KeyWrap) -> None:
        self._db = db
        self._wrap = wrap

    def key_secret(self, key_id: bytes) -> KeySecret | None:
        rows = self._db.read(lambda conn: conn.execute(_KEY_QUERY, {"key_id": key_id}).all())
        if not rows:
            return None
        project_id, stored, _ = rows[0]
        secret = unwrap_or_none(self._wrap, key_id, project_id, stored)
        if secret is None:
            return None
        revoked = frozenset(tail for _, _, tail in rows if tail is not None)
        return KeySecret(project_id, secret, revoked)

    def revoke(self, key_id: bytes, tail: bytes, now: int) -> None:
        revoke(self._db, key_id, tail, now)


def prepare_secrets(db: Database, wrap: KeyWrap) -> int:
    """Check that the database's secrets are wrapped under `wrap`'s KEK, then wrap any raw ones
    (from before wrapping) in place; how many it wrapped.

    Idempotent, and safe when several processes start at once: a row is rewritten only while it
    still holds the raw secret read. `KekError` if a secret is wrapped under another KEK.
    """
    k = t.api_keys.c
    sample = select(k.secret).where(func.length(k.secret) != SECRET_SIZE).limit(1)
    found: bytes | None = db.read(lambda conn: conn.execute(sample).scalar())
    if found is not None:
        their = wrapped_kek_id(bytes(found))
        if their != wrap.kek_id:
            theirs = "an unknown format" if their is None else f"KEK id {their.hex()}"
            raise KekError(
                f"the database's API key secrets are wrapped under {theirs}, but this process "
                f"loaded KEK id {wrap.kek_id.hex()} from {wrap.source}: give every bridge "
                "process of this database the same KEK ([database] kek or kek_file)"
            )

    def work(conn: Connection) -> int:
        raw = conn.execute(
            select(k.key_id, k.project_id, k.secret).where(func.length(k.secret) == SECRET_SIZE)
        ).all()
        for key_id, project_id, secret in raw:
            conn.execute(
                update(t.api_keys)
                .where(k.key_id == key_id, k.secret == secret)
                .values(secret=wrap.wrap(key_id, project_id, bytes(secret)))
            )
        return len(raw)

    wrapped = db.write(work)
    if wrapped:
        event(log, logging.WARNING, "wrapped raw api key secrets under the KEK", count=wrapped)
    return wrapped


__all__ = ["AuthStore", "KekError", "prepare_secrets"]
