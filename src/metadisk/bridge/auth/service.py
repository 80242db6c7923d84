"""Turning a bearer API key into an `Access` that services ask about each request."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from metadisk.bridge import errors
from metadisk.bridge.auth.db import AuthDB, KeySecret
from metadisk.core.errors import AccessError, DecodeError
from metadisk.core.macaroon import AccessDenied, APIKey, Op, Request


@dataclass(frozen=True, slots=True)
class Access:
    """A genuine API key of `project_id`; `require` checks its caveats for one request."""

    project_id: str
    key: APIKey
    secret: bytes
    revoked: frozenset[bytes]

    def require(self, op: Op, bucket: str | None, path: str | None, now: int) -> None:
        """Raise `errors.AccessDenied` unless every caveat allows `op` on `bucket`/`path`."""
        try:
            self.key.check(self.secret, Request(op, bucket, path, now), revoked=self._is_revoked)
        except AccessDenied as exc:
            raise errors.AccessDenied(f"{exc} ({exc.reason})") from exc

    def buckets(self) -> frozenset[str] | None:
        """Buckets the key may touch at all; None: every bucket of the project."""
        return self.key.allowed_buckets()

    def _is_revoked(self, tail: bytes) -> bool:
        return tail in self.revoked


class KeyAuthority:
    """Resolves bearer API keys against the bridge's secrets and revocations.

    Each process keeps what it read of a key (project, secret, revoked tails) for `cache_ttl`
    seconds: a revocation or key deletion takes effect at once in the process that made it and
    within `cache_ttl` seconds in the others (0 turns the cache off).
    """

    MAX_CACHED = 10_000

    def __init__(
        self,
        db: AuthDB,
        cache_ttl: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._ttl = cache_ttl
        self._monotonic = monotonic
        self._cache: dict[bytes, tuple[float, KeySecret]] = {}

    def forget(self, key_id: bytes) -> None:
        """Drop a cached key (after revoking or deleting it here)."""
        self._cache.pop(key_id, None)

    def _lookup(self, key_id: bytes) -> KeySecret | None:
        if self._ttl <= 0:
            return self._db.key_secret(key_id)
        now = self._monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = self._db.key_secret(key_id)
        if found is not None:
            if len(self._cache) >= self.MAX_CACHED:
                self._cache.clear()
            self._cache[key_id] = (now + self._ttl, found)
        return found

    def resolve(self, serialized: str) -> Access:
        """The `Access` of a genuine, unrevoked key; `Unauthenticated` / `AccessDenied` if not."""
        try:
            key = APIKey.parse(serialized)
        except DecodeError as exc:
            raise errors.Unauthenticated("malformed API key", code="invalid-api-key") from exc
        found = self._lookup(key.key_id)
        if found is None:
            raise errors.Unauthenticated("unknown or deleted API key", code="invalid-api-key")
        try:
            chain = key.tails(found.secret)
        except AccessError as exc:
            raise errors.Unauthenticated("API key is not genuine", code="invalid-api-key") from exc
        if any(tail in found.revoked for tail in chain):
            raise errors.AccessDenied("API key has been revoked (revoked)")
        return Access(found.project_id, key, found.secret, found.revoked)

    def revoke(self, access: Access, serialized: str, now: int) -> None:
        """Revoke `serialized` (and every key made from it) if `access`'s key is its ancestor.

        A key may revoke itself or any key restricted from it, never a sibling or a parent.
        """
        try:
            child = APIKey.parse(serialized)
        except DecodeError as exc:
            raise errors.InvalidRequest(f"not an API key: {exc}") from exc
        if child.key_id != access.key.key_id:
            raise errors.AccessDenied("can only revoke keys restricted from the caller's key")
        try:
            chain = child.tails(access.secret)
        except AccessError as exc:
            raise errors.InvalidRequest("API key is not genuine", code="invalid-api-key") from exc
        if access.key.tail not in chain:
            raise errors.AccessDenied("can only revoke keys restricted from the caller's key")
        self._db.revoke(child.key_id, child.tail, now)
        self.forget(child.key_id)
