"""Judging a farmer's answer to an audit, and checking the evidence of a fault (sans I/O).

The bridge asks a farmer, under an AUDIT order limit, for one leaf of a piece. The farmer answers
with the leaf's bytes and a signed `AuditResponse`: the leaf's hash, its size and its Merkle
proof. The root it must prove against is the one the same farmer signed in its `PieceReceipt`
when it stored the piece. `judge` sorts the answer into one of three outcomes:

- ``pass``: signed, for this limit and leaf, the bytes hash to the signed hash, and the signed
  proof places that hash under the receipt's root;
- ``fault``: a well-signed answer to this very audit whose signed hash and proof do not verify
  against the receipt's root. Both statements carry the farmer's signature, so the pair is
  evidence anyone can check with `prove_fault`, without trusting the bridge;
- ``fail``: any other wrong answer (unsigned, for another audit, bytes that do not match the
  signed hash, a malformed proof). The farmer did not show it holds the piece, which counts the
  same against it, but the record alone proves nothing to a third party.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

from metadisk.core.errors import CoreError
from metadisk.core.merkle import MerkleProof, leaf_count, leaf_hash, leaf_span, verify_leaf_hash
from metadisk.core.messages import AuditResponse, OrderLimit, PieceReceipt

Outcome = Literal["pass", "fault", "fail"]


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reason: str  # empty for a pass

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"


PASS = Verdict("pass", "")


def choose_leaf(piece_size: int, draw: int) -> int:
    """The leaf to ask for: `draw` (any non-negative random integer) reduced to a valid index."""
    count = leaf_count(piece_size)
    if count == 0:
        raise ValueError("an empty piece has no leaf to audit")
    return draw % count


def judge(
    limit: OrderLimit,
    receipt: PieceReceipt,
    farmer_public_key: bytes,
    leaf_index: int,
    leaf: bytes,
    response: AuditResponse,
) -> Verdict:
    """Decide an audit of leaf `leaf_index` under `limit` of the piece `receipt` describes."""
    try:
        response.verify_signature(farmer_public_key)
    except CoreError:
        return Verdict("fail", "the answer is not signed by the node")
    if (response.serial, response.node_id, response.piece_id) != (
        limit.serial,
        limit.node_id,
        limit.piece_id,
    ):
        return Verdict("fail", "the answer is for another audit")
    if response.leaf_index != leaf_index:
        return Verdict("fail", f"asked for leaf {leaf_index}, answered leaf {response.leaf_index}")
    if len(leaf) != response.leaf_size or not hmac.compare_digest(
        leaf_hash(leaf_index, leaf), response.leaf_hash
    ):
        return Verdict("fail", "the leaf's bytes do not match the signed leaf hash")
    reason = _proof_fault(receipt, response)
    if reason is None:
        return PASS
    if reason.startswith("malformed"):
        return Verdict("fail", reason)
    return Verdict("fault", reason)


def prove_fault(
    receipt: PieceReceipt, response: AuditResponse, farmer_public_key: bytes
) -> str | None:
    """Why `response` contradicts `receipt`, both signed by the node with `farmer_public_key`;
    None if they do not prove a fault (unsigned, about different pieces, or consistent)."""
    try:
        receipt.verify_signature(farmer_public_key)
        response.verify_signature(farmer_public_key)
    except CoreError:
        return None
    if response.node_id != receipt.node_id or response.piece_id != receipt.piece_id:
        return None
    reason = _proof_fault(receipt, response)
    if reason is None or reason.startswith("malformed"):
        return None
    return reason


def _proof_fault(receipt: PieceReceipt, response: AuditResponse) -> str | None:
    try:
        proof = MerkleProof.decode(response.proof)
    except CoreError:
        return "malformed proof"
    count = leaf_count(receipt.size)
    if proof.leaf_index != response.leaf_index:
        return "malformed proof: it is for another leaf"
    if proof.leaf_count != count:
        return f"the proof is for a piece of {proof.leaf_count} leaves, the receipt's has {count}"
    start, end = leaf_span(receipt.size, response.leaf_index)
    if response.leaf_size != end - start:
        size = end - start
        return f"leaf {response.leaf_index} is {size} bytes, the answer says {response.leaf_size}"
    try:
        verify_leaf_hash(receipt.piece_hash, response.leaf_hash, response.leaf_size, proof)
    except CoreError as exc:
        return f"the signed leaf does not verify against the receipt's root: {exc}"
    return None
