"""The download pipeline: pieces from farmers, checked, rebuilt, decrypted, streamed in order.

Per segment (`fetch_segment`): the data pieces are fetched first (with every data piece back, the
ciphertext is just their concatenation: no decoding), plus ``extra_pieces`` more in parallel as a
hedge. Each piece is hashed as it lands and compared with the hash the bridge recorded from the
farmer's receipt; a bad piece is skipped, reported in the error if the segment fails, and the
next spare is fetched. With every limit used up and fewer than k good pieces, the bridge is asked
for limits on pieces not tried yet, until k are good or none are left. Once k good pieces are
in, the rest are cancelled, and a worker decodes (if needed) and decrypts.

Range reads (`fetch_range`): only the segments the range touches are fetched, and within a
segment only the AES-GCM blocks it touches. With a systematic code those blocks sit in known
data pieces at known offsets, so they are fetched with HTTP Range and decrypted; the GCM tags
authenticate them. If a data piece is missing or fails, the segment is fetched whole instead.

`DownloadPipeline.chunks` runs ``read_ahead`` segments ahead of the consumer and yields each
segment's plaintext in order; memory is bounded by ``read_ahead + 1`` segment buffers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from metadisk.client.errors import BridgeError, DownloadFailed, IntegrityFailure, PieceError
from metadisk.client.farmer_transport import FarmerTransport, routed_around
from metadisk.client.formats import SegmentKey
from metadisk.client.offload import Offload, SegmentBuffer
from metadisk.client.segment_codec import (
    SegmentLayout,
    decode_segment,
    decrypt_span,
    layout_for,
    piece_hash,
    piece_view,
)
from metadisk.core import content
from metadisk.core.erasure import ErasureCodec, RedundancyScheme
from metadisk.core.errors import DecryptionError
from metadisk.core.messages import OrderLimit


@dataclass(frozen=True, slots=True)
class PieceSource:
    """A GET order limit for one stored piece, the farmer holding it and the piece's hash."""

    number: int
    limit: OrderLimit
    address: str
    piece_hash: bytes | None  # BLAKE3 of the piece from its receipt; None: rely on AES-GCM


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """A stored segment as the bridge describes it."""

    index: int
    plaintext_size: int
    ciphertext_size: int
    encrypted_key: bytes  # formats.SegmentKey


class DownloadCoordinator(Protocol):
    """The bridge's half of a download."""

    async def download_segment(
        self, index: int, exclude: Collection[int] = ()
    ) -> Sequence[PieceSource]:
        """GET order limits for k pieces of segment `index` plus some spares, none of them in
        `exclude` (pieces already fetched or found bad); an empty answer means no others."""
        ...


MoreSources = Callable[[frozenset[int]], Awaitable[Sequence[PieceSource]]]


@dataclass(frozen=True, slots=True)
class DownloadConfig:
    """Tuning of downloads: hedged fetches per segment, and segments fetched ahead."""

    extra_pieces: int = 0
    read_ahead: int = 2

    def __post_init__(self) -> None:
        if self.extra_pieces < 0 or self.read_ahead < 1:
            raise ValueError("need extra_pieces >= 0 and read_ahead >= 1")


@dataclass(frozen=True, slots=True)
class _Span:
    """Plaintext [offset, offset + length) of one segment."""

    segment: SegmentInfo
    offset: int
    length: int

    @property
    def whole(self) -> bool:
        return self.offset == 0 and self.length == self.segment.plaintext_size


def plan_spans(segments: Sequence[SegmentInfo], offset: int, length: int | None) -> list[_Span]:
    """The segment spans holding object bytes [offset, offset + length) (None: to the end)."""
    spans: list[_Span] = []
    position = 0
    end = None if length is None else offset + length
    for segment in segments:
        start, stop = position, position + segment.plaintext_size
        position = stop
        lo = max(offset, start)
        hi = stop if end is None else min(end, stop)
        if hi > lo or (segment.plaintext_size == 0 and lo == start and end is None):
            spans.append(_Span(segment, lo - start, hi - lo))
    return spans


class SegmentFetcher:
    """Fetches one segment (or a range of it) into a buffer; see the module docstring."""

    def __init__(
        self,
        transport: FarmerTransport,
        offload: Offload,
        scheme: RedundancyScheme,
        config: DownloadConfig,
    ) -> None:
        self._transport = transport
        self._offload = offload
        self._scheme = scheme
        self._config = config

    def layout(self, capacity: int) -> SegmentLayout:
        # Room for k pieces plus the hedges in flight; a range needs less.
        return layout_for(capacity, self._scheme.k, self._scheme.k + self._config.extra_pieces)

    async def fetch_segment(
        self,
        buffer: SegmentBuffer,
        layout: SegmentLayout,
        segment: SegmentInfo,
        sources: Sequence[PieceSource],
        content_key: bytes,
        more: MoreSources | None = None,
    ) -> int:
        """Fetch, verify, rebuild and decrypt a whole segment to the buffer's start.

        When every source is tried and fewer than k pieces came back good, `more` is asked for
        sources other than those tried, again until k are good or it has none left.
        """
        k, n = self._scheme.k, self._scheme.n
        piece_size = ErasureCodec(k, n).piece_size(segment.ciphertext_size)
        # Data pieces first (all of them back means no decoding); otherwise the bridge's order.
        queue = deque(sorted(sources, key=lambda s: s.number >= k))
        slots = layout.slots
        positions = [-1] * slots  # piece number held by each slot, -1 if none (yet)
        good = 0
        failures: dict[int, str] = {}
        running: dict[asyncio.Task[None], tuple[int, PieceSource]] = {}
        seen: set[int] = set()

        def free_slot(number: int) -> int | None:
            # A data piece goes to its own slot, so that all of them in place need no decoding.
            taken = {slot for slot, _ in running.values()}
            order = [number] if number < k else []
            order += [*range(k, slots), *range(k)]
            for slot in order:
                if positions[slot] == -1 and slot not in taken:
                    return slot
            return None

        def start_next() -> bool:
            while queue:
                source = queue.popleft()
                if source.number in seen or not 0 <= source.number < n:
                    continue
                slot = free_slot(source.number)
                if slot is None:
                    queue.appendleft(source)
                    return False
                seen.add(source.number)
                view = piece_view(buffer.view, layout, slot, piece_size)
                task = asyncio.create_task(self._fetch_piece(buffer, layout, slot, view, source))
                running[task] = (slot, source)
                return True
            return False

        try:
            for _ in range(min(slots, k + self._config.extra_pieces)):
                if not start_next():
                    break
            while good < k:
                if not running:
                    if more is None:
                        break
                    fresh = [s for s in await more(frozenset(seen)) if s.number not in seen]
                    if not fresh:
                        break
                    queue.extend(sorted(fresh, key=lambda s: s.number >= k))
                    while good + len(running) < k + self._config.extra_pieces and start_next():
                        pass
                    if not running:
                        break
                    continue
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    slot, source = running.pop(task)
                    try:
                        task.result()
                    except PieceError as exc:
                        failures[source.number] = f"{exc.code}: {exc}"
                        routed_around("download", source.number, source.limit, source.address, exc)
                        continue
                    positions[slot] = source.number
                    good += 1
                while good + len(running) < k + self._config.extra_pieces and start_next():
                    pass
        finally:
            rest = list(running)
            for task in rest:
                task.cancel()
            if rest:
                await asyncio.gather(*rest, return_exceptions=True)
        if good < k:
            bad = ", ".join(str(number) for number in sorted(failures)) or "none"
            raise DownloadFailed(
                f"segment {segment.index}: only {good} of the {k} pieces needed came back "
                f"(failed pieces: {bad})",
                failures=failures,
            )
        try:
            return await self._offload.run(
                decode_segment,
                buffer,
                layout,
                content_key=content_key,
                index=segment.index,
                plaintext_size=segment.plaintext_size,
                k=k,
                n=n,
                positions=tuple(positions),
            )
        except DecryptionError as exc:
            raise IntegrityFailure(f"segment {segment.index} does not decrypt: {exc}") from exc

    async def _fetch_piece(
        self,
        buffer: SegmentBuffer,
        layout: SegmentLayout,
        slot: int,
        view: memoryview,
        source: PieceSource,
    ) -> None:
        await self._transport.get_piece(source.address, source.limit, view)
        if source.piece_hash is None:
            return  # nothing to check against here: decryption authenticates the segment
        start = layout.capacity + slot * len(view)
        got = await self._offload.run(piece_hash, buffer, start, len(view))
        if got != source.piece_hash:
            raise PieceError(f"piece {source.number} does not match its hash", code="bad-piece")

    async def fetch_range(
        self,
        buffer: SegmentBuffer,
        layout: SegmentLayout,
        span: _Span,
        sources: Sequence[PieceSource],
        content_key: bytes,
        more: MoreSources | None = None,
    ) -> int:
        """Plaintext of `span` to the buffer's start, fetching only the blocks it covers.

        Falls back to `fetch_segment` when a data piece it needs is missing or fails.
        """
        segment = span.segment
        k = self._scheme.k
        piece_size = ErasureCodec(k, self._scheme.n).piece_size(segment.ciphertext_size)
        first, last = content.block_range(span.offset, span.length, segment.plaintext_size)
        start, end = content.ciphertext_range(first, last, segment.plaintext_size)
        by_number = {s.number: s for s in sources}
        parts = []  # (source, offset in piece, offset in the fetched span, length)
        for number in range(start // piece_size, (end - 1) // piece_size + 1):
            lo, hi = max(start, number * piece_size), min(end, (number + 1) * piece_size)
            parts.append((by_number.get(number), lo - number * piece_size, lo - start, hi - lo))
        span_view = buffer.view[layout.capacity : layout.capacity + end - start]
        if all(source is not None for source, *_ in parts):
            try:
                async with asyncio.TaskGroup() as group:
                    for source, piece_offset, at, count in parts:
                        assert source is not None
                        group.create_task(
                            self._transport.get_piece(
                                source.address,
                                source.limit,
                                span_view[at : at + count],
                                offset=piece_offset,
                                ranged=True,
                            )
                        )
                return await self._offload.run(
                    decrypt_span,
                    buffer,
                    layout,
                    content_key=content_key,
                    index=segment.index,
                    plaintext_size=segment.plaintext_size,
                    offset=span.offset,
                    length=span.length,
                )
            except* (PieceError, DecryptionError):
                pass  # some farmer failed or lied: the whole segment, with hash checks, decides
        size = await self.fetch_segment(buffer, layout, segment, sources, content_key, more)
        if span.offset or span.length != size:
            buffer.view[: span.length] = bytes(buffer.view[span.offset : span.offset + span.length])
        return span.length


class DownloadPipeline:
    """Streams an object's plaintext (or a range of it) segment by segment, in order.

    Example::

        pipeline = DownloadPipeline(transport, offload)
        async with contextlib.aclosing(pipeline.chunks(segments, ...)) as chunks:
            async for view in chunks:  # valid until the next iteration
                out.write(view)
    """

    def __init__(
        self, transport: FarmerTransport, offload: Offload, config: DownloadConfig | None = None
    ) -> None:
        self._transport = transport
        self._offload = offload
        self._config = config or DownloadConfig()

    async def chunks(
        self,
        segments: Sequence[SegmentInfo],
        *,
        object_key: bytes,
        scheme: RedundancyScheme,
        coordinator: DownloadCoordinator,
        offset: int = 0,
        length: int | None = None,
    ) -> AsyncGenerator[memoryview, None]:
        """Yield the plaintext of bytes [offset, offset + length) one segment at a time.

        Each yielded view is only valid until the generator resumes: copy or write it first.
        """
        spans = plan_spans(segments, offset, length)
        if not spans:
            return
        fetcher = SegmentFetcher(self._transport, self._offload, scheme, self._config)
        layout = fetcher.layout(max(span.segment.plaintext_size for span in spans))
        pending: deque[asyncio.Task[tuple[SegmentBuffer, int]]] = deque()
        upcoming = iter(spans)

        async def fetch(span: _Span) -> tuple[SegmentBuffer, int]:
            buffer = await self._offload.acquire(layout.size)
            try:
                key = _content_key(span.segment, object_key)
                index = span.segment.index
                sources = await coordinator.download_segment(index)

                async def more(tried: frozenset[int]) -> Sequence[PieceSource]:
                    try:
                        return await coordinator.download_segment(index, tried)
                    except BridgeError as exc:
                        if exc.code != "segment-unavailable":
                            raise
                        return ()  # fewer than k online now: fail naming the bad pieces

                if span.whole:
                    size = await fetcher.fetch_segment(
                        buffer, layout, span.segment, sources, key, more
                    )
                else:
                    size = await fetcher.fetch_range(buffer, layout, span, sources, key, more)
            except BaseException:
                await self._offload.release(buffer)
                raise
            return buffer, size

        def top_up() -> None:
            while len(pending) < self._config.read_ahead:
                span = next(upcoming, None)
                if span is None:
                    return
                pending.append(asyncio.create_task(fetch(span)))

        try:
            top_up()
            while pending:
                buffer, size = await pending.popleft()
                top_up()
                try:
                    yield buffer.view[:size]
                finally:
                    await self._offload.release(buffer)
        finally:
            for task in pending:
                task.cancel()
            for task in pending:
                try:
                    buffer, _ = await task
                except BaseException:  # noqa: S112 - cancelled or failed: nothing to release
                    continue
                await self._offload.release(buffer)


def _content_key(segment: SegmentInfo, object_key: bytes) -> bytes:
    try:
        return SegmentKey.decode(segment.encrypted_key).content_key(object_key, segment.index)
    except (DecryptionError, ValueError) as exc:
        raise IntegrityFailure(f"segment {segment.index}: its key does not open: {exc}") from exc
