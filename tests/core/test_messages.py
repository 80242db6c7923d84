"""Signed wire messages: round trips, fixed vectors, and every rejection with its code."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metadisk.core.bloom import BloomFilter
from metadisk.core.errors import DecodeError, SignatureError
from metadisk.core.identity import Identity, NodeId
from metadisk.core.messages import (
    Action,
    NodeContact,
    OrderLimit,
    OrderLimitRejected,
    PieceReceipt,
    RetainRequest,
    check_order_limit,
    derive_piece_id,
)

VECTORS = Path(__file__).parent / "vectors" / "messages.json"
BRIDGE = Identity(bytes([1]) * 32)
FARMER = Identity(bytes([2]) * 32)
OTHER = Identity(bytes([3]) * 32)
u64 = st.integers(0, 2**64 - 1)


def order_limit(**changes: Any) -> OrderLimit:
    fields: dict[str, Any] = {
        "serial": bytes(range(16)),
        "bridge_id": BRIDGE.node_id,
        "node_id": FARMER.node_id,
        "piece_id": derive_piece_id(bytes([9]) * 32, FARMER.node_id, 0),
        "action": Action.PUT,
        "limit": 2 * 1024 * 1024,
        "issued_at": 1_800_000_000,
        "expires_at": 1_800_003_600,
    }
    fields.update(changes)
    return OrderLimit(**fields).signed_by(BRIDGE)


def receipt() -> PieceReceipt:
    return PieceReceipt(
        serial=bytes(range(16)),
        node_id=FARMER.node_id,
        piece_id=bytes([5]) * 32,
        size=12345,
        piece_hash=bytes([6]) * 32,
        stored_at=1_800_000_010,
    ).signed_by(FARMER)


def contact() -> NodeContact:
    return NodeContact(
        public_key=FARMER.public_key,
        address="http://127.0.0.1:7001",
        allocated=10 * 2**30,
        free=9 * 2**30,
        version="0.1.0",
        timestamp=1_800_000_000,
    ).signed_by(FARMER)


@given(
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=32, max_size=32),
    st.sampled_from(list(Action)),
    u64,
    u64,
    u64,
    u64,
)
def test_order_limit_round_trip(
    serial: bytes, piece_id: bytes, action: Action, limit: int, a: int, b: int, c: int
) -> None:
    ol = order_limit(serial=serial, piece_id=piece_id, action=action, limit=limit, issued_at=a,
                     expires_at=b, piece_expires_at=c)  # fmt: skip
    decoded = OrderLimit.decode(ol.encode())
    assert decoded == ol
    decoded.verify_signature(BRIDGE.public_key)


@given(st.integers(0, 2**64 - 1), st.binary(min_size=32, max_size=32))
def test_receipt_round_trip(size: int, digest: bytes) -> None:
    r = replace(receipt(), size=size, piece_hash=digest).signed_by(FARMER)
    decoded = PieceReceipt.decode(r.encode())
    assert decoded == r
    decoded.verify_signature(FARMER.public_key)


@given(st.text(max_size=200), st.text(max_size=20), u64, u64)
def test_contact_round_trip(address: str, version: str, allocated: int, free: int) -> None:
    c = replace(contact(), address=address, version=version, allocated=allocated, free=free)
    c = c.signed_by(FARMER)
    decoded = NodeContact.decode(c.encode())
    assert decoded == c
    decoded.verify_signature()
    assert decoded.node_id == FARMER.node_id


def test_fixed_vectors() -> None:
    """Formats and signatures cannot drift silently: Ed25519 is deterministic."""
    vectors = json.loads(VECTORS.read_text())
    assert BRIDGE.node_id.hex() == vectors["bridge_node_id"]
    assert FARMER.public_key.hex() == vectors["farmer_public_key"]
    assert order_limit().encode().hex() == vectors["order_limit"]
    assert receipt().encode().hex() == vectors["piece_receipt"]
    assert contact().encode().hex() == vectors["node_contact"]
    assert derive_piece_id(bytes(32), FARMER.node_id, 7).hex() == vectors["derived_piece_id"]


@pytest.mark.parametrize("cls", [OrderLimit, PieceReceipt, NodeContact])
def test_every_truncation_and_extension_is_a_decode_error(cls: Any) -> None:
    encoded = {OrderLimit: order_limit, PieceReceipt: receipt, NodeContact: contact}[cls]().encode()
    for cut in range(len(encoded)):
        with pytest.raises(DecodeError):
            cls.decode(encoded[:cut])
    with pytest.raises(DecodeError):
        cls.decode(encoded + b"\x00")


def test_messages_of_one_kind_do_not_decode_as_another() -> None:
    with pytest.raises(DecodeError, match="type"):
        PieceReceipt.decode(order_limit().encode())
    with pytest.raises(DecodeError, match="version"):
        encoded = bytearray(order_limit().encode())
        encoded[1] = 99
        OrderLimit.decode(bytes(encoded))
    with pytest.raises(DecodeError, match="action"):
        encoded = bytearray(order_limit().encode())
        encoded[2 + 16 + 32 + 32 + 32] = 200
        OrderLimit.decode(bytes(encoded))


@given(st.data())
def test_any_bit_flip_breaks_the_signature_or_the_decoding(data: st.DataObject) -> None:
    encoded = bytearray(order_limit().encode())
    bit = data.draw(st.integers(0, len(encoded) * 8 - 1))
    encoded[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises((DecodeError, SignatureError)):
        OrderLimit.decode(bytes(encoded)).verify_signature(BRIDGE.public_key)


def test_signature_checks_the_signer() -> None:
    with pytest.raises(SignatureError):
        order_limit().verify_signature(OTHER.public_key)
    with pytest.raises(SignatureError):
        receipt().verify_signature(OTHER.public_key)
    forged = replace(contact(), public_key=OTHER.public_key)
    with pytest.raises(SignatureError):
        forged.verify_signature()
    with pytest.raises(ValueError):
        replace(order_limit(), bridge_id=OTHER.node_id).signed_by(BRIDGE)


def test_signature_of_one_message_is_not_valid_for_another() -> None:
    ol = order_limit()
    other = order_limit(limit=ol.limit + 1)
    with pytest.raises(SignatureError):
        replace(other, signature=ol.signature).verify_signature(BRIDGE.public_key)


def check(limit: OrderLimit, **changes: Any) -> None:
    args: dict[str, Any] = {
        "trusted_bridges": {BRIDGE.node_id: BRIDGE.public_key},
        "node_id": FARMER.node_id,
        "piece_id": limit.piece_id,
        "actions": {Action.PUT},
        "now": limit.issued_at + 10,
    }
    args.update(changes)
    check_order_limit(limit, **args)


def test_valid_order_limit_passes() -> None:
    check(order_limit())


@pytest.mark.parametrize(
    ("code", "limit", "changes"),
    [
        ("untrusted-bridge", order_limit(), {"trusted_bridges": {}}),
        (
            "untrusted-bridge",
            replace(order_limit(), bridge_id=OTHER.node_id),
            {},
        ),
        ("bad-signature", replace(order_limit(), limit=1), {}),
        ("bad-signature", replace(order_limit(), signature=bytes(64)), {}),
        ("wrong-node", order_limit(node_id=OTHER.node_id), {}),
        ("wrong-piece", order_limit(), {"piece_id": bytes(32)}),
        ("wrong-action", order_limit(action=Action.GET), {}),
        ("not-yet-valid", order_limit(), {"now": 1_800_000_000 - 301}),
        ("expired", order_limit(), {"now": 1_800_003_600}),
    ],
)
def test_each_order_limit_check_has_its_code(
    code: str, limit: OrderLimit, changes: dict[str, Any]
) -> None:
    with pytest.raises(OrderLimitRejected) as info:
        check(limit, **changes)
    assert info.value.code == code


def test_derived_piece_ids_are_unlinkable_and_stable() -> None:
    root = bytes([4]) * 32
    ids = {derive_piece_id(root, Identity(bytes([i]) * 32).node_id, i) for i in range(20)}
    assert len(ids) == 20
    assert root not in ids
    assert derive_piece_id(root, FARMER.node_id, 1) == derive_piece_id(root, FARMER.node_id, 1)
    assert derive_piece_id(root, FARMER.node_id, 1) != derive_piece_id(root, FARMER.node_id, 2)
    with pytest.raises(ValueError):
        derive_piece_id(b"short", FARMER.node_id, 0)
    with pytest.raises(ValueError):
        derive_piece_id(root, FARMER.node_id, 1 << 16)


def test_constructors_validate_fields() -> None:
    with pytest.raises(DecodeError):
        replace(order_limit(), serial=b"x")
    with pytest.raises(DecodeError):
        replace(order_limit(), limit=-1)
    with pytest.raises(DecodeError):
        replace(receipt(), piece_hash=b"")
    with pytest.raises(DecodeError):
        replace(contact(), address="x" * 5000)
    assert isinstance(order_limit().node_id, NodeId)


def retain_request(**changes: Any) -> RetainRequest:
    bloom = BloomFilter.sized(2, 0.1, seed=bytes([8]) * 32)
    bloom.add(bytes([5]) * 32)
    bloom.add(bytes([6]) * 32)
    fields: dict[str, Any] = {
        "bridge_id": BRIDGE.node_id,
        "node_id": FARMER.node_id,
        "created_before": 1_799_990_000,
        "issued_at": 1_800_000_000,
        "filter": bloom.encode(),
    }
    fields.update(changes)
    return RetainRequest(**fields).signed_by(BRIDGE)


@given(u64, u64, st.binary(max_size=300))
def test_retain_request_round_trip(created_before: int, issued_at: int, blob: bytes) -> None:
    request = retain_request(created_before=created_before, issued_at=issued_at, filter=blob)
    decoded = RetainRequest.decode(request.encode())
    assert decoded == request
    decoded.verify_signature(BRIDGE.public_key)


def test_retain_request_vector_and_rejections() -> None:
    vectors = json.loads(VECTORS.read_text())
    request = retain_request()
    assert request.encode().hex() == vectors["retain_request"]
    assert bytes([5]) * 32 in request.bloom_filter()
    encoded = request.encode()
    for cut in range(len(encoded)):
        with pytest.raises(DecodeError):
            RetainRequest.decode(encoded[:cut])
    with pytest.raises(DecodeError):
        RetainRequest.decode(encoded + b"\x00")
    with pytest.raises(DecodeError, match="type"):
        RetainRequest.decode(order_limit().encode())
    with pytest.raises(SignatureError):
        request.verify_signature(OTHER.public_key)
    with pytest.raises(SignatureError):
        replace(request, created_before=request.created_before + 1).verify_signature(
            BRIDGE.public_key
        )
    with pytest.raises(ValueError):
        replace(request, bridge_id=OTHER.node_id).signed_by(BRIDGE)
    with pytest.raises(DecodeError):
        replace(request, issued_at=-1)
    with pytest.raises(DecodeError):
        retain_request(filter=b"not a filter").bloom_filter()


def test_retain_request_filter_is_capped_at_64_mib_of_bits() -> None:
    largest = bytes(RetainRequest.MAX_FILTER)
    request = retain_request(filter=largest)
    assert len(request.encode()) == RetainRequest.MAX_ENCODED
    assert RetainRequest.decode(request.encode()).filter == largest
    with pytest.raises(DecodeError, match="too large"):
        replace(request, filter=largest + b"\x00")
    # a length field claiming more is refused before anything is read
    head = 2 + 32 + 32 + 8 + 8
    forged = request.encode()[:head] + (RetainRequest.MAX_FILTER + 1).to_bytes(4, "big")
    with pytest.raises(DecodeError, match="too large"):
        RetainRequest.decode(forged + b"\x00" * 100)
