"""Small helpers shared by the bridge's services."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime

from metadisk.bridge import errors
from metadisk.core.errors import CoreError
from metadisk.core.identity import NodeId
from metadisk.core.messages import NodeQuery


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


def verified_query(
    encoded: bytes, purpose: str, bridge_id: NodeId, now: int, skew: int
) -> NodeQuery:
    """A farmer's signed `NodeQuery` for `purpose` at this bridge, checked: signed by its own
    key (``bad-signature``), for this purpose and bridge (``wrong-query``), and within `skew`
    seconds of `now` (``clock-skew``, which bounds replays); each an `Unauthenticated`."""
    try:
        query = NodeQuery.decode(encoded)
        query.verify_signature()
    except CoreError as exc:
        raise errors.Unauthenticated(
            f"not a node query signed by its key: {exc}", code="bad-signature"
        ) from exc
    if query.purpose != purpose or query.bridge_id != bridge_id:
        raise errors.Unauthenticated(
            "the query is for another purpose or another bridge", code="wrong-query"
        )
    if abs(now - query.timestamp) > skew:
        raise errors.Unauthenticated(
            f"query timestamp is {query.timestamp - now:+d} s from the bridge's clock",
            code="clock-skew",
        )
    return query
