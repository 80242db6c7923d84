"""What the accounts service needs from the database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from metadisk.bridge.config import Limits


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    password_hash: str
    created_at: int


@dataclass(frozen=True, slots=True)
class Usage:
    storage_bytes: int
    segments: int
    buckets: int
    egress_bytes: int  # this calendar month


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    owner_id: str
    name: str
    salt: bytes
    created_at: int
    limits: Limits
    usage: Usage
    verifier: bytes | None = None  # core.keys.passphrase_verifier; None until the first setup


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: bytes
    project_id: str
    name: str
    created_at: int


class AccountsDB(Protocol):
    def create_user(self, user: User) -> bool:
        """Insert `user`; False if the email is taken."""
        ...

    def user_by_email(self, email: str) -> User | None: ...

    def create_session(
        self, token_hash: bytes, user_id: str, now: int, expires_at: int
    ) -> None: ...

    def session_user(self, token_hash: bytes, now: int) -> User | None:
        """The user of an unexpired session."""
        ...

    def delete_session(self, token_hash: bytes) -> None: ...

    def create_project(self, project: Project) -> None: ...

    def projects(self, owner_id: str, period: int) -> list[Project]: ...

    def project(self, owner_id: str, project_id: str, period: int) -> Project | None: ...

    def create_key(self, record: KeyRecord, secret: bytes) -> None: ...

    def verifier(self, project_id: str) -> bytes | None:
        """The project's passphrase verifier (None if unset or no such project)."""
        ...

    def set_verifier(self, project_id: str, verifier: bytes, force: bool) -> bytes | None:
        """Store `verifier` if none is set yet (or `force`), atomically; the one kept after."""
        ...

    def keys(self, project_id: str) -> list[KeyRecord]: ...

    def key_secret(self, project_id: str, key_id: bytes) -> bytes | None: ...

    def delete_key(self, project_id: str, key_id: bytes) -> bool: ...

    def revoke(self, key_id: bytes, tail: bytes, now: int) -> None:
        """Record a revoked tail (idempotent)."""
        ...
