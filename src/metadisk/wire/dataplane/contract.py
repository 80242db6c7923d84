"""The farmer data plane's routes, headers and JSON bodies::

    PUT    /v1/pieces/{piece_id}        X-Metadisk-Order-Limit, X-Metadisk-Piece-Hash,
                                        Content-Length, the piece  -> 201 PieceStored
    GET    /v1/pieces/{piece_id}        X-Metadisk-Order-Limit [, Range: bytes=a-b]
                                                                   -> 200 / 206 the bytes
    POST   /v1/pieces/{piece_id}/audit  X-Metadisk-Order-Limit, AuditRequest -> 200 AuditAnswer
    DELETE /v1/pieces/{piece_id}        X-Metadisk-Order-Limit     -> 204
    GET    /v1/node                     (public)                   -> 200 NodeInfo
    GET    /v1/status                   (loopback only)            -> 200 NodeReport
    POST   /v1/chores/{name}            (loopback only)            -> 200 ChoreRun
    POST   /v1/exit                     (loopback only) ExitStart  -> 202 ExitReport
    GET    /v1/exit                     (loopback only)            -> 200 ExitReport
    errors                              {"error": {"code", "message"}} (metadisk.wire.errors)

A piece id is 64 lowercase hex digits: the id the bridge derived for this farmer
(`metadisk.core.messages.derive_piece_id`). Every piece route needs an order limit signed by a
bridge the farmer trusts, for exactly that node, piece and action, and unexpired.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from metadisk.wire.fields import B64, HexNodeId, SignedReceipt
from metadisk.wire.models import Answer, Request

PIECES = "/v1/pieces/"
PIECE = PIECES + "{piece_id}"
PIECE_AUDIT = PIECE + "/audit"
NODE_INFO = "/v1/node"
STATUS = "/v1/status"
CHORE = "/v1/chores/{name}"
EXIT = "/v1/exit"

ORDER_LIMIT_HEADER = "X-Metadisk-Order-Limit"
PIECE_HASH_HEADER = "X-Metadisk-Piece-Hash"
MAX_ORDER_LIMIT_HEADER = 4096  # characters; an encoded order limit is ~260


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
    free: int | None = Field(
        default=None, description="bytes it can still accept (the bridge's uptime check reads it)"
    )


class BridgeUsage(Answer):
    """What a farmer holds and moved for one bridge."""

    stored: int = Field(description="bytes of stored pieces")
    pieces: int
    trash: int = Field(description="bytes in the trash, deleted after its grace period")
    bandwidth_in: int
    bandwidth_out: int


class NodeReport(Answer):
    """The node's dashboard (loopback only)."""

    node_id: str
    version: str
    address: str
    allocated: int
    used: int
    free: int
    pieces: int
    uptime: float
    bridges: dict[str, BridgeUsage]


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
