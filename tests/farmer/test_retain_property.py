"""The property garbage collection must never break, checked by hypothesis against the real
services on a real store: a piece whose id is in the filter is never moved, whatever the
filter's false positives and the times; and the rest move exactly when stored before
``created_before`` and not matched by the filter."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metadisk.core.bloom import MAX_HASHES, BloomFilter
from metadisk.core.identity import Identity
from metadisk.core.merkle import digest_piece
from metadisk.core.messages import Action, RetainRequest
from metadisk.farmer.db import FarmerDB
from metadisk.farmer.pieces.service import PieceService
from metadisk.farmer.pieces.store import PieceStore
from metadisk.farmer.retain.service import RetainService
from metadisk.farmer.usage.service import UsageService
from tests.farmer.helpers import START, Bridge, Clock, make_config

pieces = st.lists(st.tuples(st.integers(0, 20), st.booleans()), min_size=1, max_size=12)


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def scenario(
    tmp: Path,
    stored: list[tuple[int, bool]],
    created_before: int,
    size: int,
    hashes: int,
    seed: bytes,
) -> None:
    bridge, identity, clock = Bridge.new(), Identity.generate(), Clock()
    config = make_config(tmp, bridge.trusted)
    db = FarmerDB(config.data_dir / "farmer.db")
    await db.open()
    usage = UsageService(db)
    store = PieceStore(config.data_dir)
    service = PieceService(
        identity=identity,
        store=store,
        db=db,
        usage=usage,
        trusted_bridges=config.trusted_bridges(),
        allocated=config.allocated,
        trash_grace=config.trash_grace,
        clock=clock,
    )
    retain = RetainService(
        node_id=identity.node_id,
        pieces=service,
        usage=usage,
        trusted_bridges=config.trusted_bridges(),
        clock=clock,
    )
    try:
        await service.start()
        times: dict[bytes, tuple[int, bool]] = {}
        for offset, listed in stored:
            clock.now = START + offset
            pid, data = os.urandom(32), os.urandom(100)
            limit = bridge.limit(identity.node_id, pid, Action.PUT, now=clock.now)
            await service.put(limit, pid, digest_piece(data).piece_hash, len(data), _body(data))
            times[pid] = (int(clock.now), listed)
        # a tiny filter: mostly false positives, which must only ever keep more
        keep = BloomFilter(seed=seed, hash_count=hashes, size=size)
        for pid, (_, listed) in times.items():
            if listed:
                keep.add(pid)
        clock.now = START + 50
        cutoff = int(START) + created_before
        request = RetainRequest(
            bridge.identity.node_id, identity.node_id, cutoff, int(clock.now), keep.encode()
        ).signed_by(bridge.identity)
        assert (await retain.accept(request.encode())).queued
        moved = await retain.collect()

        bridge_raw = bridge.identity.node_id.raw
        expected = set()
        for pid, (at, listed) in times.items():
            present = store.exists(store.piece_rel(bridge_raw, pid))
            if listed:
                assert present, "a piece in the filter was moved"
            if at >= cutoff:
                assert present, "a piece stored at or after created_before was moved"
            if pid not in keep and at < cutoff:
                expected.add(pid)
            assert present == (pid not in expected)
        assert moved == len(expected)
        trashed = {bytes.fromhex(name.split(".")[0]) for name in _names(store.trash_dir)}
        assert trashed == expected
        last = usage.last_collection(bridge_raw)
        assert last is not None and (last.checked, last.collected) == (len(times), len(expected))
        assert usage.pieces == len(times) - len(expected)
    finally:
        await service.close()
        await db.close()


def _names(trash: Path) -> list[str]:
    return [path.name for bridge_dir in trash.iterdir() for path in bridge_dir.iterdir()]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    pieces,
    st.integers(0, 21),
    st.integers(1, 8),
    st.integers(1, MAX_HASHES),
    st.binary(min_size=32, max_size=32),
)
def test_a_piece_in_the_filter_is_never_moved(
    stored: list[tuple[int, bool]], created_before: int, size: int, hashes: int, seed: bytes
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(scenario(Path(tmp), stored, created_before, size, hashes, seed))
