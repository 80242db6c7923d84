"""Bodies of the node directory and of the bridge's own card (all public).

Why a ping-back failed is one coarse code (`PingFailure`), never an error's text: anyone may
check in with any address, and detailed answers ("connection refused", an HTTP status) would make
the bridge a port scanner whose results anyone can read.
"""

from __future__ import annotations

import typing
from typing import Annotated, Literal

from pydantic import Field

from metadisk.wire.fields import B64, HexNodeId, SignedOrderLimit, SignedReceipt
from metadisk.wire.models import Answer, Request

PingFailure = Literal[
    "unreachable",  # connection refused, reset or dropped; no route
    "timeout",  # no whole answer within the ping timeout
    "http-error",  # answered with an HTTP status other than 200
    "bad-answer",  # answered 200 (or garbled HTTP), but not with the node's JSON
    "wrong-node",  # answered with another node's id
    "unresolvable",  # the address's host name does not resolve
]
PING_FAILURES: tuple[PingFailure, ...] = typing.get_args(PingFailure)

# The purpose of the NodeQuery a farmer signs to read its own standing (`StandingQuery`): here,
# below both roles, so the farmer that signs it and the bridge that checks it share one literal.
STANDING_PURPOSE = "standing"
# The purpose of the NodeQuery an exiting farmer signs (`ExitRequest`).
EXIT_PURPOSE = "graceful-exit"
# What an exiting farmer may report in one request, each list (the bridge hands out far fewer).
MAX_EXIT_ENTRIES = 1000
# `ExitFailed` codes saying the farmer no longer has the piece (unreadable, damaged or gone): the
# bridge drops the piece and repair rebuilds it. Any other code means the transfer failed (the new
# node refused it or could not be reached): the bridge cancels that transfer and hands the piece
# out again, to another node.
EXIT_LOST_CODES = ("corrupt-piece", "piece-missing")
ExitState = Literal["exiting", "exited", "failed"]

_PieceIdHex = Annotated[str, Field(pattern="^[0-9a-f]{64}$", description="hex piece id")]


class Checkin(Request):
    """A farmer's signed announcement of itself (``POST /v1/nodes/checkin``, no token)."""

    contact: Annotated[B64, Field(max_length=3072)] = Field(
        description="base64url of a signed NodeContact"
    )


class CheckinResult(Answer):
    node_id: HexNodeId
    online: bool = Field(description="whether the ping-back to the address found this node")


class NodeStatus(Answer):
    """What the bridge tells anyone about one node."""

    node_id: HexNodeId
    address: str = Field(description="the base URL it last checked in with")
    online: bool = Field(description="pinged back within the online window and not disqualified")
    last_seen: int = Field(description="unix time of its last accepted check-in")
    last_ping_ok: int | None = Field(description="unix time of the last ping-back that found it")
    last_ping_error: PingFailure | None = Field(
        description="why the last ping-back failed, if it did: `unreachable` (connection refused, "
        "reset or no route), `timeout`, `http-error` (a status other than 200), `bad-answer` (not "
        "the node's JSON), `wrong-node` (another node's id), `unresolvable` (the host name does "
        "not resolve)"
    )


class BridgeInfo(Answer):
    """Who this bridge is, for farmers and clients setting up (``GET /v1/bridge``)."""

    node_id: HexNodeId = Field(description="the bridge_id in every order limit it signs")
    public_key: B64 = Field(description="the Ed25519 key that signs order limits")
    difficulty: int = Field(description="proof-of-work bits a farmer's node id needs")
    version: str


class StandingQuery(Request):
    """``POST /v1/nodes/standing``: a farmer asks for its own standing (no token)."""

    query: Annotated[B64, Field(max_length=512)] = Field(
        description="base64url of a NodeQuery with purpose 'standing', signed by the node's key"
    )


class NodeStanding(Answer):
    """One node as the bridge judges it: the operator's row, and what a farmer sees of itself."""

    node_id: HexNodeId
    address: str
    online: bool = Field(description="the last check found it, within the online window")
    vetted: bool = Field(description="passed enough audits to get a full share of new pieces")
    audit_score: float = Field(description="beta reputation of audits, 0..1")
    unknown_score: float = Field(description="beta reputation of audits that errored, 0..1")
    online_score: float = Field(description="beta reputation of uptime checks, 0..1")
    audits: int = Field(description="audits decided (passed or failed)")
    audits_passed: int
    suspended: bool = Field(description="no new pieces: too many audits ended in unknown errors")
    disqualified: bool
    contained: bool = Field(description="an audit it did not answer is being asked again")
    pieces: int = Field(description="pieces the bridge has recorded on it")
    success_rate: float = Field(description="decaying share of transfers clients saw succeed")
    latency_ms: float = Field(description="decaying mean latency clients saw")
    last_seen: int | None = Field(description="unix time of the last check that found it")
    created_at: int
    uptime: float | None = Field(
        default=None, description="share of the last 30 days' checks that found it online"
    )
    exit: ExitState | None = Field(
        default=None,
        description="its graceful exit, if it asked for one: exiting (no new pieces), exited "
        "(every piece moved), failed (stopped moving them: repair took over)",
    )


class NodeTable(Answer):
    nodes: list[NodeStanding]


class AuditEvidence(Answer):
    """A failed audit as the bridge keeps it. For a ``fault``, `receipt` and `response` (both
    signed by the node) prove it to anyone: `metadisk.core.audit.prove_fault`."""

    outcome: Literal["fault", "fail"]
    reason: str
    order_limit: B64 = Field(description="the AUDIT order limit the bridge signed")
    receipt: B64 | None = Field(description="the node's signed PieceReceipt of the piece")
    response: B64 | None = Field(description="the node's signed AuditResponse, if it sent one")
    leaf: B64 | None = Field(description="the leaf's bytes as the node sent them")
    created_at: int | None


class EvidenceList(Answer):
    evidence: list[AuditEvidence] = Field(description="oldest first")


class QueuedSets(Answer):
    healthy: int = Field(description="healthy pieces")
    sets: int = Field(description="piece sets queued for repair with that many")


class NetworkHealth(Answer):
    """The repair checker's last pass over every piece set (each stored segment's pieces;
    copies of an object share them), and the repair queue as it stands."""

    checked_at: int | None = Field(description="unix time of the last full pass; null: none yet")
    piece_sets: int
    injured: int = Field(description="at or below the repair threshold, and repairable")
    lost: int = Field(description="below k healthy pieces: cannot be rebuilt unless nodes return")
    repaired: int = Field(description="repairs done, in total")
    queue: list[QueuedSets] = Field(description="least healthy first")


class ExitDone(Request):
    """A piece the exiting farmer moved: its own piece id and the new node's receipt."""

    piece_id: _PieceIdHex = Field(description="the id the exiting node knows the piece by")
    receipt: SignedReceipt = Field(description="the new node's signed PieceReceipt")


class ExitFailed(Request):
    """A piece the exiting farmer could not move, and why (`EXIT_LOST_CODES` or a transfer's)."""

    piece_id: _PieceIdHex
    code: Annotated[str, Field(min_length=1, max_length=64)]


class ExitRequest(Request):
    """``POST /v1/nodes/exit``: start or continue a graceful exit (signed NodeQuery, no token)."""

    query: Annotated[B64, Field(max_length=512)] = Field(
        description="base64url of a NodeQuery with purpose 'graceful-exit', signed by the node"
    )
    done: list[ExitDone] = Field(default_factory=list, max_length=MAX_EXIT_ENTRIES)
    failed: list[ExitFailed] = Field(default_factory=list, max_length=MAX_EXIT_ENTRIES)


class ExitTransfer(Answer):
    """Move one piece: PUT it to `address` under `limit` (PUT_REPAIR for the new node)."""

    piece_id: str = Field(description="hex; the id the exiting node knows the piece by")
    address: str = Field(description="the new node's base URL")
    limit: SignedOrderLimit
    piece_hash: B64 = Field(description="the piece's Merkle root, as the bridge recorded it")


class ExitRefusal(Answer):
    """A `done` entry the bridge did not accept, and why (the piece is handed out again)."""

    piece_id: str
    code: str


class ExitStatus(Answer):
    state: ExitState
    transfers: list[ExitTransfer] = Field(description="pieces to move now; none once it ended")
    remaining: int = Field(description="pieces the bridge still records on this node")
    refused: list[ExitRefusal] = Field(default_factory=list)
