"""Small helpers shared by the bridge's services."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime


def month_period(now: int) -> int:
    """The calendar month (UTC) that `now` falls in, as year * 100 + month: egress is per month."""
    moment = datetime.fromtimestamp(now, UTC)
    return moment.year * 100 + moment.month


def token_hash(token: str) -> bytes:
    """What the database keeps of a bearer token: a leaked table does not leak sessions."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def wall_clock() -> int:
    """The bridge's clock in unix seconds; endpoints pass its value into services as `now`."""
    return int(time.time())
