"""Audit judgement: honest answers pass, wrong answers fail, and signed wrong proofs are faults
that a third party can check from the two signed statements alone."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metadisk.core.audit import choose_leaf, judge, prove_fault
from metadisk.core.errors import DecodeError
from metadisk.core.identity import Identity
from metadisk.core.merkle import LEAF_SIZE, digest_piece, leaf_count, leaf_hash, prove
from metadisk.core.messages import (
    Action,
    AuditResponse,
    NodeQuery,
    OrderLimit,
    PieceReceipt,
)

VECTORS = Path(__file__).parent / "vectors" / "messages.json"
BRIDGE = Identity(bytes([1]) * 32)
FARMER = Identity(bytes([2]) * 32)
OTHER = Identity(bytes([3]) * 32)
PIECE_ID = bytes([5]) * 32


def stored(piece: bytes) -> PieceReceipt:
    digest = digest_piece(piece)
    return PieceReceipt(
        bytes(16), FARMER.node_id, PIECE_ID, len(piece), digest.piece_hash, 1_800_000_000
    ).signed_by(FARMER)


def audit_limit() -> OrderLimit:
    return OrderLimit(
        bytes([7]) * 16, BRIDGE.node_id, FARMER.node_id, PIECE_ID, Action.AUDIT, LEAF_SIZE,
        1_800_000_100, 1_800_000_400,
    ).signed_by(BRIDGE)  # fmt: skip


def answer(
    held: bytes, index: int, *, signer: Identity = FARMER, limit: OrderLimit | None = None
) -> tuple[bytes, AuditResponse]:
    """What a farmer holding `held` answers for leaf `index`."""
    limit = limit or audit_limit()
    digest = digest_piece(held)
    start = index * LEAF_SIZE
    leaf = held[start : start + LEAF_SIZE]
    response = AuditResponse(
        limit.serial, signer.node_id, limit.piece_id, index, leaf_hash(index, leaf), len(leaf),
        prove(digest.leaf_hashes, index).encode(),
    ).signed_by(signer)  # fmt: skip
    return leaf, response


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6 * LEAF_SIZE), st.integers(0, 2**64))
def test_an_honest_answer_passes(size: int, draw: int) -> None:
    piece = os.urandom(size)
    index = choose_leaf(size, draw)
    assert 0 <= index < leaf_count(size)
    leaf, response = answer(piece, index)
    verdict = judge(audit_limit(), stored(piece), FARMER.public_key, index, leaf, response)
    assert verdict.passed and verdict.reason == ""


def test_a_wellformed_proof_for_other_data_is_a_provable_fault() -> None:
    piece, other = os.urandom(3 * LEAF_SIZE), os.urandom(3 * LEAF_SIZE)
    receipt = stored(piece)
    leaf, response = answer(other, 1)  # a self-consistent proof, of the wrong tree
    verdict = judge(audit_limit(), receipt, FARMER.public_key, 1, leaf, response)
    assert verdict.outcome == "fault"
    assert "does not verify" in verdict.reason
    # Anyone holding the two signed statements sees the same, with no bridge to trust.
    receipt2 = PieceReceipt.decode(receipt.encode())
    response2 = AuditResponse.decode(response.encode())
    assert prove_fault(receipt2, response2, FARMER.public_key) is not None


def test_a_corrupted_leaf_is_a_fault() -> None:
    piece = bytearray(os.urandom(2 * LEAF_SIZE + 10))
    receipt = stored(bytes(piece))
    digest = digest_piece(bytes(piece))
    piece[LEAF_SIZE + 3] ^= 1  # bit rot on disk; the farmer still proves with its stored hashes
    leaf = bytes(piece[LEAF_SIZE : 2 * LEAF_SIZE])
    limit = audit_limit()
    response = AuditResponse(
        limit.serial, FARMER.node_id, PIECE_ID, 1, leaf_hash(1, leaf), len(leaf),
        prove(digest.leaf_hashes, 1).encode(),
    ).signed_by(FARMER)  # fmt: skip
    assert judge(limit, receipt, FARMER.public_key, 1, leaf, response).outcome == "fault"


def test_a_wrong_piece_size_is_a_fault() -> None:
    piece = os.urandom(3 * LEAF_SIZE)
    leaf, response = answer(piece[: 2 * LEAF_SIZE], 1)  # a truncated copy: 2 leaves, not 3
    verdict = judge(audit_limit(), stored(piece), FARMER.public_key, 1, leaf, response)
    assert verdict.outcome == "fault" and "leaves" in verdict.reason


def test_wrong_answers_that_prove_nothing_fail() -> None:
    piece = os.urandom(2 * LEAF_SIZE)
    receipt, limit, key = stored(piece), audit_limit(), FARMER.public_key
    leaf, response = answer(piece, 0, signer=OTHER)
    assert judge(limit, receipt, key, 0, leaf, response).reason == (
        "the answer is not signed by the node"
    )
    leaf, response = answer(piece, 0)
    assert judge(limit, receipt, key, 1, leaf, response).outcome == "fail"  # another leaf
    assert (
        judge(limit, receipt, key, 0, leaf[:-1] + bytes([leaf[-1] ^ 1]), response).outcome == "fail"
    )
    other_limit = replace(limit, serial=bytes(16)).signed_by(BRIDGE)
    assert judge(other_limit, receipt, key, 0, leaf, response).reason == (
        "the answer is for another audit"
    )
    garbled = replace(response, proof=b"\x00\x01").signed_by(FARMER)
    assert judge(limit, receipt, key, 0, leaf, garbled).outcome == "fail"
    # Neither of those is evidence against the farmer on its own.
    assert prove_fault(receipt, garbled, key) is None
    assert prove_fault(receipt, answer(piece, 0, signer=OTHER)[1], key) is None
    assert prove_fault(receipt, response, key) is None  # consistent: no fault


def test_choose_leaf_needs_a_leaf() -> None:
    with pytest.raises(ValueError):
        choose_leaf(0, 5)
    assert choose_leaf(LEAF_SIZE + 1, 3) == 1


@given(st.integers(0, 2**32 - 1), st.binary(min_size=32, max_size=32), st.binary(max_size=500))
def test_audit_response_round_trip(index: int, hashed: bytes, proof: bytes) -> None:
    response = AuditResponse(
        bytes(16), FARMER.node_id, PIECE_ID, index, hashed, 100, proof
    ).signed_by(FARMER)
    decoded = AuditResponse.decode(response.encode())
    assert decoded == response
    decoded.verify_signature(FARMER.public_key)


@given(st.text(max_size=20), st.integers(0, 2**64 - 1))
def test_node_query_round_trip(purpose: str, timestamp: int) -> None:
    query = NodeQuery(FARMER.public_key, BRIDGE.node_id, purpose, timestamp).signed_by(FARMER)
    decoded = NodeQuery.decode(query.encode())
    assert decoded == query and decoded.node_id == FARMER.node_id
    decoded.verify_signature()


def test_truncations_are_decode_errors() -> None:
    for encoded, cls in [
        (answer(os.urandom(100), 0)[1].encode(), AuditResponse),
        (NodeQuery(FARMER.public_key, BRIDGE.node_id, "standing", 1).signed_by(FARMER).encode(),
         NodeQuery),
    ]:  # fmt: skip
        for cut in range(len(encoded)):
            with pytest.raises(DecodeError):
                cls.decode(encoded[:cut])  # type: ignore[attr-defined]
        with pytest.raises(DecodeError):
            cls.decode(encoded + b"\x00")  # type: ignore[attr-defined]


def test_fixed_vectors() -> None:
    vectors = json.loads(VECTORS.read_text())
    response = AuditResponse(
        bytes([7]) * 16, FARMER.node_id, PIECE_ID, 3, bytes([8]) * 32, 65536, b"proof"
    ).signed_by(FARMER)
    query = NodeQuery(FARMER.public_key, BRIDGE.node_id, "standing", 1_800_000_000)
    assert response.encode().hex() == vectors["audit_response"]
    assert query.signed_by(FARMER).encode().hex() == vectors["node_query"]
