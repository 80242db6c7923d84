"""`Project.usage`, `list_uploads` and `abort_upload` against a real bridge and ten farmers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from metadisk.client import NotFound, Project
from metadisk.devnet.network import Tenant
from tests.e2e.harness import SEGMENT, SMALL


class Interrupted(Exception):
    pass


@pytest.fixture
def project(tenant: Tenant) -> Iterator[Project]:
    with Project.open(tenant.grant, config=SMALL) as opened:
        yield opened


def test_usage_and_pending_uploads_through_the_library(project: Project, tmp_path: Path) -> None:
    project.create_bucket("lib")
    before = project.usage()
    assert (before.objects, before.usage.buckets, before.pending.uploads) == (0, 1, 0)
    project.upload("lib", "docs/done.txt", b"finished")
    assert project.usage().objects == 1

    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(3 * SEGMENT))

    def stop_after_a_segment(done: int, total: int | None) -> None:
        if done >= SEGMENT:
            raise Interrupted

    # With a resume dir, an interrupted upload stays pending, to be resumed (or aborted).
    with pytest.raises(Exception) as raised:
        project.upload(
            "lib",
            "docs/big.bin",
            source,
            resume_dir=tmp_path / "resume",
            progress=stop_after_a_segment,
        )
    assert isinstance(raised.value, Interrupted) or isinstance(
        raised.value.__cause__, Interrupted
    ), raised.value
    held = project.usage().pending
    assert held.uploads == 1 and held.storage_bytes > 0 and held.segments >= 1

    (pending,) = project.list_uploads("lib", "docs/")
    assert (pending.bucket, pending.key) == ("lib", "docs/big.bin")
    assert pending.deadline > pending.created_at
    assert project.list_uploads("lib") == [pending]
    assert project.list_uploads("lib", "other/") == []

    project.abort_upload(pending.stream_id)
    assert project.list_uploads("lib") == []
    released = project.usage().pending
    assert (released.uploads, released.storage_bytes, released.segments) == (0, 0, 0)
    with pytest.raises(NotFound):
        project.abort_upload(pending.stream_id)
