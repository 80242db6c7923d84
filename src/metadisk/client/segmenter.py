"""Reading an upload's source into segment buffers, and choosing the segment size.

A source is a path, a binary file object, bytes, or an async iterator of bytes. `SourceReader`
fills a segment's plaintext region straight from it: files with ``readinto`` in a thread (no
intermediate copy), iterators chunk by chunk. Every source is read once, front to back, so a
pipe or a network stream uploads as well as a file.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import BinaryIO

from metadisk.client.errors import InvalidArgument
from metadisk.core.erasure import RedundancyScheme

UploadSource = (
    str | os.PathLike[str] | BinaryIO | bytes | bytearray | memoryview | AsyncIterable[bytes]
)
"""What `AsyncProject.upload` accepts."""

KiB = 1 << 10
MiB = 1 << 20
MIN_SEGMENT_SIZE = 1 * MiB
SMALL_SEGMENT = 64 * KiB  # the least a known-size source's segments are sized to
MAX_SEGMENT_SIZE = 64 * MiB


@dataclass(frozen=True, slots=True)
class SegmentSizing:
    """How large a segment's plaintext is, chosen per redundancy scheme.

    A segment is k pieces of about `piece_target` bytes, capped so that the segments in flight
    (plaintext plus n pieces of ciphertext/k each) fit `memory_budget`, and kept between 1 and
    64 MiB. Measured on loopback with 10 farmers (docs/client.md): farmers spend a fixed ~7 ms
    of CPU per piece stored, so 4 MiB pieces (16 MiB segments at 4/10) upload faster than 2 MiB
    ones; at 29/110 the memory cap wins and segments are 13 MiB.
    """

    piece_target: int = 4 * MiB
    memory_budget: int = 192 * MiB

    def segment_size(
        self, scheme: RedundancyScheme, in_flight: int = 3, source_size: int | None = None
    ) -> int:
        """Plaintext bytes per segment for `scheme` with `in_flight` segments held at once.

        A source of known size smaller than that gets segments of its size rounded up to a
        power of two (at least `SMALL_SEGMENT`): a segment's working memory (plaintext and n
        pieces) is allocated and zeroed up front, and a 16 MiB segment's 56 MiB for a 5 KiB
        object cost more CPU than all the rest of its upload (docs/client.md). Powers of two let
        idle buffers serve the next object; the floor bounds the segment count of a file that
        grows while it is read.

        >>> SegmentSizing().segment_size(RedundancyScheme(4, 6, 8, 10)) // MiB
        16
        >>> SegmentSizing().segment_size(RedundancyScheme(4, 6, 8, 10), source_size=5000) // KiB
        64
        >>> SegmentSizing().segment_size(RedundancyScheme(4, 6, 8, 10), source_size=3 * MiB) // MiB
        4
        """
        wanted = scheme.k * self.piece_target
        per_byte = 1 + scheme.n / scheme.k  # plaintext, and n pieces of ciphertext/k
        affordable = int(self.memory_budget / (in_flight * per_byte))
        size = min(wanted, affordable, MAX_SEGMENT_SIZE)
        size = max(MIN_SEGMENT_SIZE, size // MiB * MiB)
        if source_size is not None and source_size < size:
            fitting = 1 << max(source_size - 1, 1).bit_length()
            return min(size, max(SMALL_SEGMENT, fitting))
        return size


class SourceReader:
    """Reads a source front to back into caller buffers.

    Example::

        reader = SourceReader.open("photo.jpg")
        try:
            size = await reader.read_into(buffer.view[:segment_size])  # < segment_size: the end
        finally:
            await reader.aclose()
    """

    def __init__(
        self,
        *,
        file: BinaryIO | None = None,
        data: memoryview | None = None,
        chunks: AsyncIterator[bytes] | None = None,
        size: int | None = None,
        owns_file: bool = False,
    ) -> None:
        self._file = file
        self._data = data
        self._chunks = chunks
        self._pending = memoryview(b"")
        self._owns_file = owns_file
        self._prefix = memoryview(b"")
        self.size = size  # total bytes if known in advance
        self.position = 0
        self._exact = False  # the size was promised by the caller: hold the source to it

    def unread(self, data: bytes) -> None:
        """Put `data` back in front of what is left (after peeking at a stream's start)."""
        self._prefix = memoryview(bytes(data) + bytes(self._prefix))
        self.position -= len(data)

    @classmethod
    def open(cls, source: UploadSource, size: int | None = None) -> SourceReader:
        """A reader for any `UploadSource`; paths are opened here and closed by `aclose`.

        `size` is what the caller knows of the source's length (a stream with a Content-Length):
        the reader then reads exactly that many bytes and raises `InvalidArgument` if the source
        ends sooner or goes on longer.
        """
        reader = cls._open(source)
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                reader.close_now()
                raise InvalidArgument("a source's size is a non-negative integer")
            if reader.size is not None and reader.size != size:
                reader.close_now()
                raise InvalidArgument(f"the source has {reader.size} bytes, not {size}")
            reader.size, reader._exact = size, True
        return reader

    @classmethod
    def _open(cls, source: UploadSource) -> SourceReader:
        if isinstance(source, bytes | bytearray | memoryview):
            view = memoryview(source).cast("B")
            return cls(data=view, size=len(view))
        if isinstance(source, str | os.PathLike):
            file = open(source, "rb")  # noqa: SIM115 - closed by aclose
            return cls(file=file, size=os.fstat(file.fileno()).st_size, owns_file=True)
        if isinstance(source, AsyncIterable):
            return cls(chunks=aiter(source))
        if hasattr(source, "readinto") or hasattr(source, "read"):
            return cls(file=source, size=_remaining(source))
        raise TypeError(f"cannot upload from {type(source).__name__}")

    async def read_into(self, view: memoryview) -> int:
        """Fill `view` from the source; fewer bytes than ``len(view)`` means the source ended."""
        if not self._exact:
            return await self._read_into(view)
        assert self.size is not None
        left = self.size - self.position
        count = await self._read_into(view[:left])
        if count < min(left, len(view)):
            raise InvalidArgument(
                f"the source ended after {self.position} bytes; its size was given as {self.size}"
            )
        if count < len(view) and await self._read_into(memoryview(bytearray(1))):
            raise InvalidArgument(f"the source is longer than its given size ({self.size})")
        return count

    async def _read_into(self, view: memoryview) -> int:
        count = min(len(self._prefix), len(view))
        if count:
            view[:count] = self._prefix[:count]
            self._prefix = self._prefix[count:]
        rest = view[count:]
        if not rest:
            pass
        elif self._data is not None:
            taken = min(len(rest), len(self._data))
            rest[:taken] = self._data[:taken]
            self._data = self._data[taken:]
            count += taken
        elif self._file is not None:
            count += await asyncio.to_thread(_fill_from_file, self._file, rest)
        else:
            count += await self._fill_from_chunks(rest)
        self.position += count
        return count

    async def _fill_from_chunks(self, view: memoryview) -> int:
        assert self._chunks is not None
        filled = 0
        while filled < len(view):
            if not self._pending:
                try:
                    chunk = await anext(self._chunks)
                except StopAsyncIteration:
                    break
                if not isinstance(chunk, bytes | bytearray | memoryview):
                    raise TypeError("an upload iterator must yield bytes")
                self._pending = memoryview(chunk).cast("B")
            take = min(len(self._pending), len(view) - filled)
            view[filled : filled + take] = self._pending[:take]
            self._pending = self._pending[take:]
            filled += take
        return filled

    def close_now(self) -> None:
        """Close a file this reader opened (a reader that was never read)."""
        if self._owns_file and self._file is not None:
            self._file.close()

    async def aclose(self) -> None:
        self.close_now()
        if self._chunks is not None and hasattr(self._chunks, "aclose"):
            await self._chunks.aclose()


def _fill_from_file(file: BinaryIO, view: memoryview) -> int:
    filled = 0
    readinto = getattr(file, "readinto", None)
    while filled < len(view):
        if readinto is not None:
            count = readinto(view[filled:])
        else:  # a file-like object with read() only
            chunk = file.read(len(view) - filled)
            count = len(chunk)
            view[filled : filled + count] = chunk
        if not count:  # readinto may return None on non-blocking streams: treat as the end
            break
        filled += count
    return filled


def _remaining(file: BinaryIO) -> int | None:
    """Bytes left in a seekable file from its current position; None if it cannot tell."""
    try:
        if not file.seekable():
            return None
        here = file.tell()
        end = file.seek(0, io.SEEK_END)
        file.seek(here)
        return end - here
    except (OSError, AttributeError, ValueError):
        return None
