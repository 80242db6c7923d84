"""The bodies of uploads: a commit that names its segments, and segment indices."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from metadisk.wire.api.objects import (
    MAX_SEGMENT_INDEX,
    BeginSegment,
    CommitObject,
    SegmentRekey,
)


def test_a_commit_may_name_its_segments() -> None:
    assert CommitObject.model_validate_json("{}").segments is None
    body = CommitObject.model_validate_json(f'{{"segments": [0, 1, 131072, {MAX_SEGMENT_INDEX}]}}')
    assert body.segments == [0, 1, 131072, MAX_SEGMENT_INDEX]
    for bad in ("[]", f"[{MAX_SEGMENT_INDEX + 1}]", "[-1]", "[true]", '["1"]', "[1.5]"):
        with pytest.raises(ValidationError):
            CommitObject.model_validate_json(f'{{"segments": {bad}}}')


def test_the_document_states_the_index_range() -> None:
    items = CommitObject.model_json_schema()["properties"]["segments"]["anyOf"][0]["items"]
    assert (items["minimum"], items["maximum"]) == (0, MAX_SEGMENT_INDEX)


@pytest.mark.parametrize("model", [BeginSegment, SegmentRekey])
def test_segment_indices_reach_the_signed_32_bit_range(model: type) -> None:
    fields = {"encrypted_size": 1, "piece_size": 1, "encrypted_metadata": None}
    known = {k: v for k, v in fields.items() if k in model.model_fields}
    assert model(index=MAX_SEGMENT_INDEX, **known).index == MAX_SEGMENT_INDEX
    with pytest.raises(ValidationError):
        model(index=MAX_SEGMENT_INDEX + 1, **known)
