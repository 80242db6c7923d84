"""What an operator reads of repair: the checker's last pass and the queue."""

from __future__ import annotations

from collections.abc import Callable

from metadisk.bridge.repair.db import HealthSummary, RepairDB


class RepairStatus:
    def __init__(self, db: RepairDB, check_admin: Callable[[str], None]) -> None:
        self._db = db
        self._check_admin = check_admin  # raises unless `authorization` carries the admin token

    def summary(self, authorization: str) -> HealthSummary:
        self._check_admin(authorization)
        return self._db.summary()
