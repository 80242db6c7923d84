"""Reading a small answer's body whole, but never more than a cap (a peer chooses its size)."""

from __future__ import annotations

import aiohttp


class BodyTooLarge(Exception):
    """An answer longer than the cap its reader set."""


async def read_capped(content: aiohttp.StreamReader, cap: int) -> bytes:
    """The whole body, or `BodyTooLarge` once more than `cap` bytes arrived.

    `StreamReader.read(n)` returns what is buffered, up to n bytes: one call may stop halfway
    through a body that has not all arrived, so this reads until the end.
    """
    parts: list[bytes] = []
    total = 0
    while chunk := await content.read(min(cap + 1 - total, 1 << 16)):
        parts.append(chunk)
        total += len(chunk)
        if total > cap:
            raise BodyTooLarge(f"the answer is longer than {cap} bytes")
    return b"".join(parts)
