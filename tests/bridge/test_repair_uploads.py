"""The repairer's long-tail rule for rebuilt pieces: the first `need` stored win, the rest are
cancelled (spares are for slow farmers, not for extra pieces)."""

from __future__ import annotations

import asyncio

from metadisk.bridge.repair.db import NewPiece
from metadisk.bridge.repair.repairer import _first


def piece(number: int) -> NewPiece:
    return NewPiece(bytes(16), number, b"n" * 32, b"p" * 32, 1, b"h" * 32, 0, b"r", None)


async def test_the_first_needed_win_and_the_rest_are_cancelled() -> None:
    cancelled: list[int] = []

    async def upload(number: int, delay: float, ok: bool = True) -> NewPiece | None:
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            cancelled.append(number)
            raise
        return piece(number) if ok else None

    results = await _first(
        [upload(0, 0.0, ok=False), upload(1, 0.01), upload(2, 3600), upload(3, 0.02)], need=2
    )
    assert [r.piece_number if r else None for r in results] == [None, 1, None, 3]
    assert cancelled == [2]


async def test_all_run_when_too_few_succeed() -> None:
    async def upload(number: int, ok: bool) -> NewPiece | None:
        await asyncio.sleep(0)
        return piece(number) if ok else None

    results = await _first([upload(0, False), upload(1, True), upload(2, False)], need=2)
    assert [r.piece_number if r else None for r in results] == [None, 1, None]
