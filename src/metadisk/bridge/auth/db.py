"""What API key authorization needs from the database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class KeySecret:
    project_id: str
    secret: bytes
    revoked: frozenset[bytes]  # revoked tails of this key id


class AuthDB(Protocol):
    def key_secret(self, key_id: bytes) -> KeySecret | None:
        """The project, secret and revoked tails of a root key; None if it does not exist."""
        ...

    def revoke(self, key_id: bytes, tail: bytes, now: int) -> None: ...
