"""Segment sizing and reading sources into segment buffers."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metadisk.client.errors import InvalidArgument
from metadisk.client.segmenter import SMALL_SEGMENT, MiB, SegmentSizing, SourceReader
from metadisk.core.erasure import GLOBAL, LOCAL, RedundancyScheme


def test_segment_sizes_per_scheme() -> None:
    sizing = SegmentSizing()
    assert sizing.segment_size(LOCAL) == 16 * MiB  # k pieces of 4 MiB
    assert sizing.segment_size(GLOBAL) == 13 * MiB  # the memory budget caps it
    assert SegmentSizing(memory_budget=MiB).segment_size(LOCAL) == MiB  # never below 1 MiB
    roomy = SegmentSizing(piece_target=128 * MiB, memory_budget=1 << 30)
    assert roomy.segment_size(RedundancyScheme(1, 1, 1, 1)) == 64 * MiB  # never above 64 MiB
    held = 3 * (16 * MiB) * (1 + LOCAL.n / LOCAL.k)
    assert held <= sizing.memory_budget


@given(st.integers(min_value=0, max_value=64 * MiB), st.sampled_from([LOCAL, GLOBAL]))
def test_a_small_source_gets_a_segment_its_size(source: int, scheme: RedundancyScheme) -> None:
    """Never a whole segment's memory for a small object, never more segments than needed."""
    sizing = SegmentSizing()
    full = sizing.segment_size(scheme)
    size = sizing.segment_size(scheme, source_size=source)
    assert SMALL_SEGMENT <= size <= full
    if source >= full:
        assert size == full
    else:
        assert size >= source  # one segment holds it all
        assert size == SMALL_SEGMENT or size < 2 * source or size == full  # and not much more


async def read_all(reader: SourceReader, size: int) -> list[bytes]:
    parts = []
    while True:
        buffer = bytearray(size)
        count = await reader.read_into(memoryview(buffer))
        parts.append(bytes(buffer[:count]))
        if count < size:
            return parts


async def test_every_source_reads_the_same(tmp_path: object) -> None:
    import pathlib

    data = os.urandom(100_000)
    path = pathlib.Path(str(tmp_path)) / "f"
    path.write_bytes(data)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 7_000):
            yield data[i : i + 7_000]

    class ReadOnly:  # a file-like object without readinto
        def __init__(self) -> None:
            self._inner = io.BytesIO(data)

        def read(self, n: int) -> bytes:
            return self._inner.read(min(n, 999))

    sources = [data, bytearray(data), path, str(path), io.BytesIO(data), chunks(), ReadOnly()]
    for source in sources:
        reader = SourceReader.open(source)  # type: ignore[arg-type]
        try:
            parts = await read_all(reader, 30_000)
        finally:
            await reader.aclose()
        assert [len(p) for p in parts] == [30_000, 30_000, 30_000, 10_000]
        assert b"".join(parts) == data
        assert reader.position == len(data)


async def test_sizes_known_in_advance() -> None:
    assert SourceReader.open(b"abc").size == 3
    buffer = io.BytesIO(b"abcdef")
    buffer.seek(2)
    assert SourceReader.open(buffer).size == 4

    async def chunks() -> AsyncIterator[bytes]:
        yield b"x"

    assert SourceReader.open(chunks()).size is None


async def test_unread_puts_bytes_back_in_front() -> None:
    reader = SourceReader.open(b"0123456789")
    head = bytearray(4)
    assert await reader.read_into(memoryview(head)) == 4
    reader.unread(bytes(head))
    assert reader.position == 0
    assert b"".join(await read_all(reader, 3)) == b"0123456789"


async def test_an_iterator_of_text_is_refused() -> None:
    async def chunks() -> AsyncIterator[str]:
        yield "text"

    reader = SourceReader.open(chunks())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await reader.read_into(memoryview(bytearray(10)))


def test_unknown_sources_are_refused() -> None:
    with pytest.raises(TypeError):
        SourceReader.open(12345)  # type: ignore[arg-type]


def _stream(data: bytes, chunk: int) -> AsyncIterator[bytes]:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), chunk):
            yield data[i : i + chunk]

    return chunks()


@given(
    st.integers(min_value=0, max_value=3000),
    st.integers(min_value=-3, max_value=3),
    st.integers(min_value=1, max_value=700),
    st.integers(min_value=1, max_value=1100),
)
async def test_a_size_hint_holds_a_stream_to_its_length(
    length: int, off_by: int, chunk: int, buffer_size: int
) -> None:
    """A stream read with a size hint yields exactly its bytes when the hint is right, and is
    `InvalidArgument` when the stream ends sooner or goes on longer; a source that knows its
    own length is held to it at once."""
    data = os.urandom(length)
    hint = max(0, length + off_by)
    reader = SourceReader.open(_stream(data, chunk), hint)
    assert reader.size == hint
    if hint == length:
        assert b"".join(await read_all(reader, buffer_size)) == data
    else:
        with pytest.raises(InvalidArgument):
            await read_all(reader, buffer_size)
    if hint != length:
        with pytest.raises(InvalidArgument):
            SourceReader.open(data, hint)
    else:
        assert SourceReader.open(data, hint).size == length


def test_a_size_hint_is_a_length() -> None:
    for bad in (-1, True, 1.5):
        with pytest.raises(InvalidArgument):
            SourceReader.open(b"abc", bad)  # type: ignore[arg-type]
