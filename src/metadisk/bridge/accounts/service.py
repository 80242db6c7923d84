"""Accounts logic: registration and login (Argon2id), projects with limits, API keys."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from metadisk.bridge import errors
from metadisk.bridge.accounts.db import AccountsDB, KeyRecord, Project, Usage, User
from metadisk.bridge.auth.service import Access
from metadisk.bridge.common import month_period, token_hash
from metadisk.bridge.config import AccountsConfig, Limits
from metadisk.core.encoding import b64encode
from metadisk.core.errors import AccessError, DecodeError
from metadisk.core.keys import VERIFIER_SIZE
from metadisk.core.macaroon import APIKey

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
SESSION_PREFIX = "mds1"  # tells a session token from an API key (mdk1) at a glance


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class NewKey:
    record: KeyRecord
    api_key: str  # serialized; shown once, never stored


class AccountsService:
    """Users, sessions, projects and API keys."""

    def __init__(
        self,
        db: AccountsDB,
        config: AccountsConfig,
        randbytes: Callable[[int], bytes] = os.urandom,
        on_key_change: Callable[[bytes], None] = lambda key_id: None,
    ) -> None:
        self._db = db
        self._on_key_change = on_key_change  # lets the key cache forget at once
        self._config = config
        self._randbytes = randbytes
        self._hasher = PasswordHasher(
            time_cost=config.argon2_time_cost,
            memory_cost=config.argon2_memory_kib,
            parallelism=config.argon2_parallelism,
        )
        # Verifying against this when the email is unknown keeps login time the same either way.
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))

    def register(self, email: str, password: str, now: int) -> User:
        email = _normalize_email(email)
        _check_password(password)
        user = User(self._randbytes(16).hex(), email, self._hasher.hash(password), now)
        if not self._db.create_user(user):
            raise errors.Conflict("an account with this email exists", code="email-taken")
        return user

    def login(self, email: str, password: str, now: int) -> Session:
        user = self._db.user_by_email(email.strip().lower())
        try:
            self._hasher.verify(user.password_hash if user else self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            user = None
        if user is None:
            raise errors.Unauthenticated("wrong email or password", code="invalid-credentials")
        token = SESSION_PREFIX + b64encode(self._randbytes(32))
        expires_at = now + self._config.session_ttl
        self._db.create_session(token_hash(token), user.id, now, expires_at)
        return Session(token, expires_at)

    def authenticate(self, token: str, now: int) -> User:
        """The user a session token belongs to; `Unauthenticated` if none or expired."""
        user = self._db.session_user(token_hash(token), now)
        if user is None:
            raise errors.Unauthenticated("session is invalid or expired")
        return user

    def logout(self, token: str) -> None:
        self._db.delete_session(token_hash(token))

    def create_project(self, user: User, name: str, limits: Limits | None, now: int) -> Project:
        """A new project; requested limits are capped at the bridge's defaults."""
        cap = self._config.default_limits
        if limits is None:
            limits = cap
        else:
            limits = Limits(
                buckets=min(limits.buckets, cap.buckets),
                storage_bytes=min(limits.storage_bytes, cap.storage_bytes),
                egress_bytes=min(limits.egress_bytes, cap.egress_bytes),
                segments=min(limits.segments, cap.segments),
            )
        project = Project(
            id=self._randbytes(16).hex(),
            owner_id=user.id,
            name=name,
            salt=self._randbytes(32),
            created_at=now,
            limits=limits,
            usage=Usage(0, 0, 0, 0),
        )
        self._db.create_project(project)
        return project

    def projects(self, user: User, now: int) -> list[Project]:
        return self._db.projects(user.id, month_period(now))

    def project(self, user: User, project_id: str, now: int) -> Project:
        project = self._db.project(user.id, project_id, month_period(now))
        if project is None:
            raise errors.NotFound("no such project", code="project-not-found")
        return project

    def set_verifier(
        self, user: User, project_id: str, verifier: bytes, force: bool, now: int
    ) -> None:
        """The owner stores the project's passphrase verifier; `force` replaces another one."""
        self.project(user, project_id, now)
        self._store_verifier(project_id, verifier, force)

    def key_verifier(self, access: Access) -> bytes | None:
        """The verifier of the key's project: any genuine key of it may read it, even a
        restricted one (a grant being imported checks its root key against it)."""
        return self._db.verifier(access.project_id)

    def set_key_verifier(self, access: Access, verifier: bytes) -> None:
        """Store the verifier with an API key: only an unrestricted (root) key, never replacing.

        A restricted key holds a part of the project at most, so it may not speak for the
        passphrase of all of it.
        """
        if access.key.caveats:
            raise errors.AccessDenied("only an unrestricted API key may set the verifier")
        self._store_verifier(access.project_id, verifier, False)

    def _store_verifier(self, project_id: str, verifier: bytes, force: bool) -> None:
        if len(verifier) != VERIFIER_SIZE:
            raise errors.InvalidRequest(
                f"a passphrase verifier is {VERIFIER_SIZE} bytes", code="invalid-verifier"
            )
        if self._db.set_verifier(project_id, verifier, force) != verifier:
            raise errors.Conflict(
                "the project has another passphrase verifier: wrong passphrase for this project",
                code="verifier-mismatch",
            )

    def create_key(self, user: User, project_id: str, name: str, now: int) -> NewKey:
        self.project(user, project_id, now)
        secret = self._randbytes(32)
        key = APIKey.new(secret, self._randbytes(16))
        record = KeyRecord(key.key_id, project_id, name, now)
        self._db.create_key(record, secret)
        return NewKey(record, key.serialize())

    def keys(self, user: User, project_id: str, now: int) -> list[KeyRecord]:
        self.project(user, project_id, now)
        return self._db.keys(project_id)

    def delete_key(self, user: User, project_id: str, key_id: bytes, now: int) -> None:
        """Delete a root key: it and every key restricted from it stop working."""
        self.project(user, project_id, now)
        if not self._db.delete_key(project_id, key_id):
            raise errors.NotFound("no such API key", code="api-key-not-found")
        self._on_key_change(key_id)

    def revoke(self, user: User, project_id: str, serialized: str, now: int) -> None:
        """Revoke one (possibly restricted) key of the project and every key made from it."""
        self.project(user, project_id, now)
        try:
            key = APIKey.parse(serialized)
        except DecodeError as exc:
            raise errors.InvalidRequest(f"not an API key: {exc}") from exc
        secret = self._db.key_secret(project_id, key.key_id)
        if secret is None:
            raise errors.NotFound("no such API key in this project", code="api-key-not-found")
        try:
            key.tails(secret)
        except AccessError as exc:  # the HMAC chain does not verify: forged or tampered
            raise errors.InvalidRequest("API key is not genuine", code="invalid-api-key") from exc
        self._db.revoke(key.key_id, key.tail, now)
        self._on_key_change(key.key_id)


def _normalize_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise errors.InvalidRequest("not a valid email address", code="invalid-email")
    return email


def _check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise errors.InvalidRequest(
            f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters", code="weak-password"
        )
