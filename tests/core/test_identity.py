"""Identities: signatures, node ids and proof of work."""

from __future__ import annotations

import os

import pytest

from metadisk.core.errors import DecodeError, SignatureError
from metadisk.core.identity import Identity, NodeId, verify_signature


def test_sign_and_verify() -> None:
    me = Identity.generate()
    sig = me.sign(b"hello")
    verify_signature(me.public_key, b"hello", sig)
    with pytest.raises(SignatureError):
        verify_signature(me.public_key, b"hellO", sig)
    with pytest.raises(SignatureError):
        verify_signature(Identity.generate().public_key, b"hello", sig)
    with pytest.raises(SignatureError):
        verify_signature(me.public_key, b"hello", sig[:-1])


def test_node_id_is_derived_from_public_key() -> None:
    me = Identity(bytes(range(32)))
    assert me.node_id == NodeId.from_public_key(me.public_key)
    assert NodeId.from_hex(me.node_id.hex()) == me.node_id
    assert Identity(bytes(range(32))).node_id == me.node_id


def test_proof_of_work_difficulty() -> None:
    me = Identity.generate(difficulty=6)
    assert me.node_id.difficulty() >= 6
    assert me.node_id.raw[-1] & 0b111111 == 0


def test_difficulty_counts_trailing_zero_bits() -> None:
    assert NodeId(b"\x00" * 31 + b"\x01").difficulty() == 0
    assert NodeId(b"\x00" * 31 + b"\x08").difficulty() == 3
    assert NodeId(b"\x01" + b"\x00" * 31).difficulty() == 248
    assert NodeId(b"\x00" * 32).difficulty() == 256


def test_generate_uses_given_randomness() -> None:
    seeds = iter([bytes(32), bytes([1]) * 32])
    assert Identity.generate(randbytes=lambda n: next(seeds)).seed == bytes(32)


@pytest.mark.parametrize("bad", [b"", b"\x00" * 31, b"\x00" * 33])
def test_malformed_ids_and_seeds(bad: bytes) -> None:
    with pytest.raises(DecodeError):
        NodeId(bad)
    with pytest.raises(DecodeError):
        Identity(bad)
    with pytest.raises(DecodeError):
        NodeId.from_public_key(bad)


def test_from_hex_rejects_garbage() -> None:
    with pytest.raises(DecodeError):
        NodeId.from_hex("zz" * 32)
    with pytest.raises(DecodeError):
        NodeId.from_hex("ab")


def test_repr_hides_the_seed() -> None:
    seed = os.urandom(32)
    assert seed.hex() not in repr(Identity(seed))
