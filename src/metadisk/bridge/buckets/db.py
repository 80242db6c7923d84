"""What the buckets service needs from the database."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from metadisk.core.erasure import RedundancyScheme


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    profile: str
    redundancy: RedundancyScheme
    created_at: int


class CreateOutcome(enum.Enum):
    CREATED = "created"
    EXISTS = "exists"
    LIMIT = "limit"


class DeleteOutcome(enum.Enum):
    DELETED = "deleted"
    NOT_FOUND = "not-found"
    NOT_EMPTY = "not-empty"


class BucketsDB(Protocol):
    def create_bucket(self, project_id: str, bucket: Bucket) -> CreateOutcome:
        """Insert unless it exists or the project is at its bucket limit (atomically)."""
        ...

    def bucket(self, project_id: str, name: str) -> Bucket | None: ...

    def buckets(
        self, project_id: str, after: str, limit: int, only: frozenset[str] | None
    ) -> list[Bucket]:
        """Buckets named after `after`, in name order; `only` restricts to those names."""
        ...

    def delete_bucket(self, project_id: str, name: str, force: bool, now: int) -> DeleteOutcome:
        """Delete a bucket; with `force` also its objects, queueing their pieces for deletion."""
        ...
