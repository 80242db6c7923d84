"""The wire's field types: every value survives the round trip, and what is not canonical is
refused before any handler sees it."""

from __future__ import annotations

import os
import re
from typing import Annotated

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from metadisk.core.encoding import b64decode, b64encode
from metadisk.core.erasure import RedundancyScheme
from metadisk.core.errors import DecodeError
from metadisk.core.identity import Identity
from metadisk.core.messages import Action, OrderLimit
from metadisk.wire.api.accounts import NewProject
from metadisk.wire.api.objects import BeginSegment, CommitSegment
from metadisk.wire.fields import (
    B64,
    CANONICAL_B64_PATTERN,
    MAX_B64_TEXT,
    MAX_REQUEST_INT,
    HexNodeId,
    Redundancy,
    SignedOrderLimit,
    b64_length,
)


class Sample(BaseModel):
    data: Annotated[B64, Field(max_length=64)] | None = None
    node: HexNodeId | None = None
    limit: SignedOrderLimit | None = None
    redundancy: Redundancy | None = None


BRIDGE = Identity.generate()


def _limit() -> OrderLimit:
    return OrderLimit(
        os.urandom(16), BRIDGE.node_id, Identity.generate().node_id, os.urandom(32), Action.GET,
        1000, 1, 2,
    ).signed_by(BRIDGE)  # fmt: skip


@given(st.binary(max_size=64))
def test_bytes_round_trip(data: bytes) -> None:
    dumped = Sample(data=data).model_dump_json()
    assert Sample.model_validate_json(dumped).data == data
    assert f'"{b64encode(data)}"' in dumped


@given(st.integers(1, 255).flatmap(lambda n: st.tuples(*[st.integers(1, n)] * 3, st.just(n))))
def test_redundancy_round_trip(values: tuple[int, int, int, int]) -> None:
    k, m, o, n = sorted(values)
    scheme = RedundancyScheme(k, m, o, n)
    parsed = Sample.model_validate_json(Sample(redundancy=scheme).model_dump_json())
    assert parsed.redundancy == scheme


def test_signed_messages_and_node_ids_round_trip() -> None:
    limit = _limit()
    sample = Sample(limit=limit, node=limit.node_id)
    parsed = Sample.model_validate_json(sample.model_dump_json())
    assert parsed.limit == limit and parsed.node == limit.node_id
    parsed.limit.verify_signature(BRIDGE.public_key)


@pytest.mark.parametrize(
    "body",
    [
        '{"data": "YQ="}',  # padded
        '{"data": "YR"}',  # non-canonical trailing bits
        '{"data": "a+b/"}',  # not the url alphabet
        '{"data": 12}',
        '{"data": "' + "A" * 88 + '"}',  # 66 bytes: over the field's limit
        '{"data": "' + "A" * (MAX_B64_TEXT + 4) + '"}',  # refused before decoding
        '{"node": "' + "AB" * 32 + '"}',  # upper case hex
        '{"node": "abcd"}',
        '{"limit": "AAAA"}',
        '{"redundancy": {"k": 4, "m": 6, "o": 8}}',
        '{"redundancy": {"k": 4, "m": 6, "o": 8, "n": 3}}',
        '{"redundancy": {"k": 4, "m": 6, "o": 8, "n": 10, "x": 1}}',
        '{"redundancy": {"k": 4.0, "m": 6, "o": 8, "n": 10}}',
        '{"redundancy": {"k": true, "m": 6, "o": 8, "n": 10}}',
    ],
)
def test_refused(body: str) -> None:
    with pytest.raises(ValidationError):
        Sample.model_validate_json(body)


def test_a_tampered_order_limit_still_parses_but_does_not_verify() -> None:
    # Parsing checks the encoding only; the signature is the farmer's check.
    raw = bytearray(_limit().encode())
    raw[-1] ^= 1
    parsed = Sample.model_validate_json(f'{{"limit": "{b64encode(bytes(raw))}"}}')
    assert parsed.limit is not None
    with pytest.raises(Exception, match="signature"):
        parsed.limit.verify_signature(BRIDGE.public_key)


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@given(st.text(alphabet=ALPHABET, max_size=13))
def test_the_documents_base64_pattern_is_exactly_what_decodes(text: str) -> None:
    try:
        b64decode(text)
        decodes = True
    except DecodeError:
        decodes = False
    assert bool(re.match(CANONICAL_B64_PATTERN, text)) == decodes


@given(st.binary(max_size=64))
def test_the_documents_length_bound_is_the_decoded_limit(data: bytes) -> None:
    assert len(b64encode(data)) == b64_length(len(data))


@pytest.mark.parametrize("value", [True, False, "5", "0", [1]])
def test_request_integers_are_json_integers(value: object) -> None:
    # pydantic's lax mode took true as 1 and "5" as 5: the document says integer.
    with pytest.raises(ValidationError):
        CommitSegment.model_validate({"receipts": [], "plain_size": value})
    with pytest.raises(ValidationError):
        BeginSegment.model_validate({"index": value, "encrypted_size": 1, "piece_size": 1})
    with pytest.raises(ValidationError):
        NewProject.model_validate({"name": "p", "limits": {"segments": value}})


def test_request_integers_take_whole_floats_and_stay_in_range() -> None:
    assert CommitSegment.model_validate({"receipts": [], "plain_size": 2.0}).plain_size == 2
    limits = NewProject.model_validate({"name": "p", "limits": {"buckets": MAX_REQUEST_INT}})
    assert limits.limits is not None and limits.limits.buckets == MAX_REQUEST_INT
    for bad in (2.5, -1, MAX_REQUEST_INT + 1):
        with pytest.raises(ValidationError):
            CommitSegment.model_validate({"receipts": [], "plain_size": bad})
