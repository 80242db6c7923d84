"""The farmer data plane's routes, headers and JSON bodies::

    PUT    /v1/pieces/{piece_id}        X-Metadisk-Order-Limit, X-Metadisk-Piece-Hash,
                                        Content-Length, the piece  -> 201 PieceStored
    GET    /v1/pieces/{piece_id}        X-Metadisk-Order-Limit [, Range: bytes=a-b]
                                                                   -> 200 / 206 the bytes
    POST   /v1/pieces/{piece_id}/audit  X-Metadisk-Order-Limit, AuditRequest -> 200 AuditAnswer
    DELETE /v1/pieces/{piece_id}        X-Metadisk-Order-Limit     -> 204
    GET    /v1/node                     (public)                   -> 200 NodeInfo
    POST   /v1/retain                   a signed RetainRequest     -> 202 RetainAccepted
    GET    /v1/status                   (loopback only)            -> 200 NodeReport
    POST   /v1/chores/{name}            (loopback only)            -> 200 ChoreRun
    POST   /v1/exit                     (loopback only) ExitStart  -> 202 ExitReport
    GET    /v1/exit                     (loopback only)            -> 200 ExitReport
    errors                              {"error": {"code", "message"}} (metadisk.wire.errors)

A piece id is 64 lowercase hex digits: the id the bridge derived for this farmer
(`metadisk.core.messages.derive_piece_id`). Every piece route needs an order limit signed by a
bridge the farmer trusts, for exactly that node, piece and action, and unexpired.

``POST /v1/retain`` takes the bytes of a `metadisk.core.messages.RetainRequest` signed by a
trusted bridge (``Content-Type: application/octet-stream``, at most `MAX_RETAIN_BODY` bytes):
the farmer checks it, answers 202 and, soon after, moves the bridge's pieces stored before
``created_before`` and not in the request's Bloom filter to its trash. Refusals: 400
``malformed``, 403 ``untrusted-bridge``, ``bad-signature``, ``wrong-node``, 409
``stale-request`` (older than one applied or queued, or issued far from the farmer's clock),
413 ``too-large``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from metadisk.core.messages import RetainRequest
from metadisk.wire.fields import B64, HexNodeId, SignedReceipt
from metadisk.wire.models import Answer, Request

PIECES = "/v1/pieces/"
PIECE = PIECES + "{piece_id}"
PIECE_AUDIT = PIECE + "/audit"
NODE_INFO = "/v1/node"
RETAIN = "/v1/retain"
STATUS = "/v1/status"
CHORE = "/v1/chores/{name}"
EXIT = "/v1/exit"

ORDER_LIMIT_HEADER = "X-Metadisk-Order-Limit"
PIECE_HASH_HEADER = "X-Metadisk-Piece-Hash"
MAX_ORDER_LIMIT_HEADER = 4096  # characters; an encoded order limit is ~260
MAX_RETAIN_BODY = RetainRequest.MAX_ENCODED  # a filter of 64 MiB of bits, plus 189 bytes


class PieceStored(Answer):
    """A PUT's answer: the farmer's signed receipt (the client checks it, the bridge too)."""

    receipt: SignedReceipt


class AuditRequest(Request):
    model_config = ConfigDict(strict=True)
    leaf_index: int = Field(description="which 64 KiB leaf of the piece to prove")


class AuditAnswer(Answer):
    leaf: Annotated[B64, Field(max_length=(1 << 16) * 4 // 3 + 4)] = Field(
        description="the leaf's bytes"
    )
    response: Annotated[B64, Field(max_length=8192)] = Field(
        description="the encoded AuditResponse the farmer signed: the leaf's hash and size and "
        "its Merkle proof against the piece hash"
    )


class NodeInfo(Answer):
    """Who a farmer is: public, for the bridge to ping back."""

    node_id: HexNodeId
    public_key: B64
    version: str
    address: str
    # Bounded like a check-in's capacities: the bridge stores it in a signed 64-bit column.
    free: int | None = Field(
        default=None,
        ge=0,
        le=(1 << 63) - 1,
        description="bytes it can still accept (the bridge's uptime check reads it)",
    )


class RetainAccepted(Answer):
    """A retain request's answer (202): taken, to be run in the background soon."""

    created_before: int = Field(description="the request's created_before, echoed")
    queued: bool = Field(
        description="true if a collection with this request is now pending; false if the same "
        "request (same issued_at) was already run, so nothing new was queued"
    )


class BridgeUsage(Answer):
    """What a farmer holds and moved for one bridge."""

    stored: int = Field(description="bytes of stored pieces")
    pieces: int
    trash: int = Field(description="bytes in the trash, deleted after its grace period")
    bandwidth_in: int
    bandwidth_out: int
    last_collection_at: int | None = Field(
        default=None, description="unix time the last garbage collection for this bridge ended"
    )
    last_checked: int | None = Field(default=None, description="pieces that collection looked at")
    last_collected: int | None = Field(
        default=None, description="pieces that collection moved to the trash"
    )


class DayTraffic(Answer):
    """Bytes the node received and sent on one UTC day, for all bridges."""

    day: str = Field(description="the UTC date, YYYY-MM-DD")
    bandwidth_in: int
    bandwidth_out: int


class NodeReport(Answer):
    """The node's dashboard (loopback only)."""

    node_id: str
    version: str
    address: str
    allocated: int
    used: int = Field(description="bytes of stored pieces (with their trailers), not the trash")
    trash: int = Field(
        default=0,
        description="bytes in the trash: deleted pieces kept for a grace period, emptied first "
        "when room is needed",
    )
    free: int = Field(
        description="what the node can still accept: allocated less used and what uploads in "
        "flight reserved (the trash counts as free: it is emptied when room is needed)"
    )
    pieces: int
    uptime: float
    bridges: dict[str, BridgeUsage]
    days: list[DayTraffic] = Field(
        default_factory=list, description="bandwidth of each of the last 30 UTC days, today last"
    )


class ChoreRun(Answer):
    chore: str
    done: bool


class ExitStart(Request):
    """Start a graceful exit from one trusted bridge, or from every one (`bridge` left out)."""

    bridge: HexNodeId | None = None


class BridgeExit(Answer):
    """How a graceful exit from one bridge is going, as the farmer sees it."""

    state: Literal["exiting", "exited", "failed"] = Field(
        description="exited: every piece moved and deleted here; failed: the bridge gave up on "
        "the node, or refused the exit"
    )
    transferred: int = Field(description="pieces moved to other nodes and accepted")
    failed: int = Field(description="pieces this node could not read or send")
    remaining: int | None = Field(description="pieces the bridge still records here")
    error: str | None = Field(default=None, description="the last problem, with its code")


class ExitReport(Answer):
    bridges: dict[str, BridgeExit] = Field(description="by bridge id (hex); only those exited")
