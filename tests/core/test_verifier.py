"""The passphrase verifier: fixed vectors from passphrase to verifier, and its properties."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metadisk.core.keys import (
    KEY_SIZE,
    VERIFIER_SIZE,
    KdfParams,
    derive_root_key,
    passphrase_verifier,
    verifier_matches,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "verifier.json").read_text("utf-8")
)
keys = st.binary(min_size=KEY_SIZE, max_size=KEY_SIZE)


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["root_key"][:8])
def test_fixed_vectors_from_passphrase_to_verifier(case: dict[str, Any]) -> None:
    params = KdfParams(case["time_cost"], case["memory_cost"], case["parallelism"])
    root_key = derive_root_key(case["passphrase"], bytes.fromhex(case["salt"]), params)
    assert root_key.hex() == case["root_key"]
    assert passphrase_verifier(root_key).hex() == case["verifier"]
    assert verifier_matches(root_key, bytes.fromhex(case["verifier"]))


def test_the_vectors_tell_passphrases_and_salts_apart() -> None:
    verifiers = {case["verifier"] for case in VECTORS["cases"]}
    assert len(verifiers) == len(VECTORS["cases"])


@given(keys)
def test_a_verifier_is_32_bytes_deterministic_and_not_the_key(root_key: bytes) -> None:
    verifier = passphrase_verifier(root_key)
    assert len(verifier) == VERIFIER_SIZE
    assert verifier == passphrase_verifier(root_key)
    assert verifier != root_key
    assert verifier_matches(root_key, verifier)


@given(keys, keys)
def test_another_root_key_does_not_match(one: bytes, other: bytes) -> None:
    if one != other:
        assert passphrase_verifier(one) != passphrase_verifier(other)
        assert not verifier_matches(other, passphrase_verifier(one))


@given(keys, st.integers(0, VERIFIER_SIZE * 8 - 1))
def test_any_flipped_bit_does_not_match(root_key: bytes, bit: int) -> None:
    flipped = bytearray(passphrase_verifier(root_key))
    flipped[bit // 8] ^= 1 << (bit % 8)
    assert not verifier_matches(root_key, bytes(flipped))


@given(st.binary(max_size=KEY_SIZE * 2).filter(lambda b: len(b) != KEY_SIZE))
def test_a_root_key_of_the_wrong_size_is_refused(bad: bytes) -> None:
    with pytest.raises(ValueError):
        passphrase_verifier(bad)
