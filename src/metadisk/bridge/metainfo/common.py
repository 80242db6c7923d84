"""What the uploads and objects services share: the order limits they hand out, input checks, and
the errors both raise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from metadisk.bridge import errors
from metadisk.bridge.auth.service import Access
from metadisk.bridge.buckets.service import check_bucket_name
from metadisk.bridge.metainfo.db import Outcome
from metadisk.core.erasure import RedundancyScheme
from metadisk.core.macaroon import Op
from metadisk.core.messages import OrderLimit
from metadisk.wire.api.objects import MAX_KEY, MAX_SEGMENT_INDEX, MAX_SEGMENTS

# Encrypted paths: base64url components joined by "/" (printable ASCII is accepted, so that the
# client may choose its encoding; ordering is bytewise on every engine).
_KEY_CHARS = re.compile(r"^[\x21-\x7e]*$")


@dataclass(frozen=True, slots=True)
class AddressedOrder:
    """One signed order limit, where to use it, and what the client checks the farmer with."""

    piece_number: int
    address: str
    order_limit: OrderLimit
    public_key: bytes | None = None  # PUT: the farmer's key, to verify its receipt
    piece_hash: bytes | None = None  # GET: the stored piece's hash, to check what comes back


@dataclass(frozen=True, slots=True)
class SegmentOrders:
    index: int
    piece_size: int
    redundancy: RedundancyScheme
    orders: list[AddressedOrder]


# 403, like the storage limit, not 429: waiting does not help (an upload holds its reservation
# until it is committed, aborted or reclaimed a day later) and clients retry 429s by themselves.
PENDING_UPLOADS_LIMIT = "pending-uploads-limit"
PENDING_ORDERS_LIMIT = "pending-orders-limit"


def raise_for(outcome: Outcome, bucket: str) -> None:
    if outcome is Outcome.OK:
        return
    if outcome is Outcome.NOT_FOUND:
        raise errors.NotFound(
            "no such upload or bucket (committed, aborted, reclaimed or deleted)",
            code="upload-not-found",
        )
    if outcome is Outcome.SEGMENTS_MISSING:
        raise segments_missing(None)
    if outcome is Outcome.EXISTS:
        raise errors.AccessDenied(
            "an object exists at this key and the API key does not allow deleting it"
        )
    if outcome is Outcome.STORAGE_LIMIT:
        raise errors.LimitExceeded("the project's storage limit would be exceeded")
    if outcome is Outcome.SEGMENT_LIMIT:
        raise errors.LimitExceeded("the project's segment limit would be exceeded")
    if outcome is Outcome.PENDING_LIMIT:
        raise errors.LimitExceeded(
            "the project has as many pending uploads as it may: commit or abort some first",
            code=PENDING_UPLOADS_LIMIT,
        )
    if outcome is Outcome.ORDER_LIMIT:
        raise errors.LimitExceeded(
            "the project has as many order limits out for uncommitted segments as it may: "
            "commit or abort uploads first",
            code=PENDING_ORDERS_LIMIT,
        )
    raise AssertionError(outcome)


def allows(access: Access, op: Op, bucket: str, key: str, now: int) -> bool:
    try:
        access.require(op, bucket, key, now)
    except errors.AccessDenied:
        return False
    return True


def check_location(bucket: str, key: str) -> None:
    check_bucket_name(bucket)
    check_key(key, allow_empty=False)


def check_key(key: str, *, allow_empty: bool) -> None:
    if (not key and not allow_empty) or len(key) > MAX_KEY or not _KEY_CHARS.match(key):
        raise errors.InvalidRequest(
            f"an object key is an encrypted path: 1 to {MAX_KEY} printable ASCII characters",
            code="invalid-key",
        )


def check_index(index: int) -> None:
    if not 0 <= index <= MAX_SEGMENT_INDEX:
        raise errors.InvalidRequest(f"segment index must be 0 to {MAX_SEGMENT_INDEX}")


def check_segment_list(indices: Sequence[int]) -> None:
    """The segments an object is committed with: 1 to MAX_SEGMENTS indices, strictly increasing."""
    if not indices:
        raise errors.InvalidRequest("an object needs at least one segment", code="no-segments")
    if len(indices) > MAX_SEGMENTS:
        raise errors.InvalidRequest(f"an object has at most {MAX_SEGMENTS} segments")
    previous = -1
    for index in indices:
        check_index(index)
        if index <= previous:
            raise errors.InvalidRequest("segment indices must be strictly increasing")
        previous = index


def check_size(what: str, value: bytes | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise errors.InvalidRequest(f"{what} is at most {limit} bytes")


def segments_missing(index: int | None) -> errors.InvalidRequest:
    """400 `segments-missing`, naming the first segment that is not committed if known."""
    detail = (
        "every segment of the object must be committed first"
        if index is None
        else f"segment {index} is not a committed segment of the upload"
    )
    return errors.InvalidRequest(detail, code="segments-missing")


def no_bucket(bucket: str) -> errors.NotFound:
    return errors.NotFound(f"no bucket {bucket!r}", code="bucket-not-found")


def no_upload() -> errors.NotFound:
    return errors.NotFound(
        "no such upload (committed, aborted, reclaimed or never begun)", code="upload-not-found"
    )
