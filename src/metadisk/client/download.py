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
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from metadisk.client.config import DownloadConfig as DownloadConfig  # its home before config
from metadisk.client.errors import BridgeError, DownloadFailed, IntegrityFailure, PieceError
from metadisk.client.farmer_transport import (
    FarmerTransport,
    Outcomes,
    Suspects,
    routed_around,
)
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
from metadisk.wire.api.objects import PieceOutcome


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

    def report_segment(self, index: int, outcomes: Sequence[PieceOutcome]) -> None:
        """Tell the bridge how segment `index`'s fetches went: best effort, in the background,
        never raising and never waited for."""
        ...


MoreSources = Callable[[frozenset[int]], Awaitable[Sequence[PieceSource]]]


HEDGE_GRACE = 0.05  # seconds: the least wait, after the first piece, before hedges start


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
        self.scheme = scheme
        self.config = config

    def layout(self, capacity: int) -> SegmentLayout:
        # Room for k pieces plus the hedges in flight; a range needs less.
        return layout_for(capacity, self.scheme.k, self.scheme.k + self.config.extra_pieces)

    async def fetch_segment(
        self,
        buffer: SegmentBuffer,
        layout: SegmentLayout,
        segment: SegmentInfo,
        sources: Sequence[PieceSource],
        content_key: bytes,
        more: MoreSources | None = None,
        outcomes: Outcomes | None = None,
    ) -> int:
        """Fetch, verify, rebuild and decrypt a whole segment to the buffer's start.

        When every source is tried and fewer than k pieces came back good, `more` is asked for
        sources other than those tried, again until k are good or it has none left. Every
        fetch's outcome goes to `outcomes`, whose suspects are fetched from last.
        """
        fetch = _SegmentFetch(self, buffer, layout, segment, more, outcomes or Outcomes())
        fetch.add(sources)
        await fetch.run()
        k, n = self.scheme.k, self.scheme.n
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
                positions=tuple(fetch.positions),
            )
        except DecryptionError as exc:
            raise IntegrityFailure(f"segment {segment.index} does not decrypt: {exc}") from exc

    async def fetch_piece(
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

    async def _ranged(
        self, source: PieceSource, into: memoryview, offset: int, outcomes: Outcomes
    ) -> None:
        started = time.monotonic()
        node = source.limit.node_id
        try:
            await self._transport.get_piece(
                source.address, source.limit, into, offset=offset, ranged=True
            )
        except PieceError as exc:
            outcomes.failure(source.number, node, started, exc.code)
            routed_around("download", source.number, source.limit, source.address, exc)
            raise
        outcomes.success(source.number, node, started)

    async def fetch_range(
        self,
        buffer: SegmentBuffer,
        layout: SegmentLayout,
        span: _Span,
        sources: Sequence[PieceSource],
        content_key: bytes,
        more: MoreSources | None = None,
        outcomes: Outcomes | None = None,
    ) -> int:
        """Plaintext of `span` to the buffer's start, fetching only the blocks it covers.

        Falls back to `fetch_segment` when a data piece it needs is missing, on a farmer the
        `outcomes`' suspects name, or fails.
        """
        outcomes = outcomes or Outcomes()
        suspects = outcomes.suspects or ()
        segment = span.segment
        k = self.scheme.k
        piece_size = ErasureCodec(k, self.scheme.n).piece_size(segment.ciphertext_size)
        first, last = content.block_range(span.offset, span.length, segment.plaintext_size)
        start, end = content.ciphertext_range(first, last, segment.plaintext_size)
        by_number = {s.number: s for s in sources}
        parts = []  # (source, offset in piece, offset in the fetched span, length)
        for number in range(start // piece_size, (end - 1) // piece_size + 1):
            lo, hi = max(start, number * piece_size), min(end, (number + 1) * piece_size)
            parts.append((by_number.get(number), lo - number * piece_size, lo - start, hi - lo))
        span_view = buffer.view[layout.capacity : layout.capacity + end - start]
        if all(s is not None and s.limit.node_id not in suspects for s, *_ in parts):
            try:
                async with asyncio.TaskGroup() as group:
                    for source, piece_offset, at, count in parts:
                        assert source is not None
                        into = span_view[at : at + count]
                        group.create_task(self._ranged(source, into, piece_offset, outcomes))
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
        size = await self.fetch_segment(
            buffer, layout, segment, sources, content_key, more, outcomes
        )
        if span.offset or span.length != size:
            buffer.view[: span.length] = bytes(buffer.view[span.offset : span.offset + span.length])
        return span.length


@dataclass(slots=True)
class _Fetch:
    slot: int
    source: PieceSource
    started: float


class _SegmentFetch:
    """One segment's piece fetches: k + ``extra_pieces`` at once (data pieces first, farmers
    this client suspects last), more from the bridge when fewer than k can still come back, and
    a fetch lagging far behind the finished ones (`DownloadConfig.hedge_laggards`) no longer
    counted on: its farmer turns suspect, and another source starts in its place (in its slot,
    if no other is free)."""

    def __init__(
        self,
        fetcher: SegmentFetcher,
        buffer: SegmentBuffer,
        layout: SegmentLayout,
        segment: SegmentInfo,
        more: MoreSources | None,
        outcomes: Outcomes,
    ) -> None:
        self.fetcher, self.buffer, self.layout, self.segment = fetcher, buffer, layout, segment
        self.more, self.outcomes = more, outcomes
        scheme, config = fetcher.scheme, fetcher.config
        self.k, self.n = scheme.k, scheme.n
        self.want = min(layout.slots, scheme.k + config.extra_pieces)
        self.hedge = config.hedge_laggards
        self.began = time.monotonic()
        delay = config.hedge_delay
        self.hedge_at = self.began if delay is None else self.began + delay
        self.first_at: float | None = None  # when the first fetch ended
        self.piece_size = ErasureCodec(scheme.k, scheme.n).piece_size(segment.ciphertext_size)
        self.fresh: deque[PieceSource] = deque()
        self.spare: deque[PieceSource] = deque()  # on suspect farmers: fetched last
        self.known: set[int] = set()  # piece numbers with a source, tried or not
        self.positions = [-1] * layout.slots  # piece number held by each slot, -1 if none
        self.good = 0
        self.failures: dict[int, str] = {}
        self.running: dict[asyncio.Task[None], _Fetch] = {}
        self.asking: asyncio.Future[Sequence[PieceSource]] | None = None
        self.exhausted = more is None  # the bridge has no other source

    def add(self, sources: Sequence[PieceSource]) -> bool:
        """Queue sources not seen yet (data pieces first); False if there were none."""
        new = [s for s in sources if s.number not in self.known and 0 <= s.number < self.n]
        suspects = self.outcomes.suspects
        for source in sorted(new, key=lambda s: s.number >= self.k):
            self.known.add(source.number)
            wary = suspects is not None and source.limit.node_id in suspects
            (self.spare if wary else self.fresh).append(source)
        return bool(new)

    async def run(self) -> None:
        try:
            await self.top_up()
            while self.good < self.k and (self.running or self.asking):
                waiting: list[asyncio.Future[Any]] = [*self.running]
                if self.asking is not None:
                    waiting.append(self.asking)
                done, _ = await asyncio.wait(
                    waiting, timeout=self.wake(), return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    if task is self.asking:
                        self.asking = None
                        self.exhausted = not self.add(task.result())
                    else:
                        fetched = cast("asyncio.Task[None]", task)
                        self.landed(self.running.pop(fetched), fetched)
                await self.top_up()
        finally:
            lag = self.lag()
            for task, fetch in self.running.items():
                task.cancel()
                slow = lag is not None and self.age(fetch) >= lag
                self.outcomes.slow(
                    fetch.source.number, fetch.source.limit.node_id, fetch.started, laggard=slow
                )
            if self.asking is not None:
                self.asking.cancel()
            await asyncio.gather(
                *self.running, *filter(None, [self.asking]), return_exceptions=True
            )
        if self.good < self.k:
            bad = ", ".join(str(number) for number in sorted(self.failures)) or "none"
            raise DownloadFailed(
                f"segment {self.segment.index}: only {self.good} of the {self.k} pieces needed "
                f"came back (failed pieces: {bad})",
                failures=self.failures,
            )

    def landed(self, fetch: _Fetch, task: asyncio.Task[None]) -> None:
        if self.first_at is None:
            self.first_at = time.monotonic()
        source = fetch.source
        try:
            task.result()
        except PieceError as exc:
            self.failures[source.number] = f"{exc.code}: {exc}"
            self.outcomes.failure(source.number, source.limit.node_id, fetch.started, exc.code)
            routed_around("download", source.number, source.limit, source.address, exc)
            return
        self.outcomes.success(source.number, source.limit.node_id, fetch.started)
        self.positions[fetch.slot] = source.number
        self.good += 1

    def lag(self) -> float | None:
        return None if self.hedge is None else self.hedge.after(self.outcomes.latencies)

    def age(self, fetch: _Fetch) -> float:
        return time.monotonic() - fetch.started

    def hedge_time(self) -> float:
        """When the hedges may start: as long again after the first fetch ended as it took
        (at least `HEDGE_GRACE`), or `hedge_delay` after the fetches began, whichever is first.

        Equal farmers deliver a segment's k pieces close together, so no hedge starts and the
        farmers serve no extra bytes; a hung one among them is hedged about one piece transfer
        after the others land.
        """
        if self.first_at is None:
            return self.hedge_at
        took = self.first_at - self.began
        return min(self.hedge_at, self.first_at + max(took, HEDGE_GRACE))

    def hedging(self) -> bool:
        """Whether the hedges may start (`hedge_time`)."""
        return time.monotonic() >= self.hedge_time()

    def wake(self) -> float | None:
        """Seconds until a fetch in flight next turns into a laggard, or the hedges may start
        (None: neither will)."""
        lag = self.lag()
        times = [] if lag is None else [lag - self.age(f) for f in self.running.values()]
        if not self.hedging() and self.good + len(self.running) < self.want:
            times.append(self.hedge_time() - time.monotonic())
        return min((t for t in times if t > 0), default=None)

    async def top_up(self) -> None:
        """Start fetches while fewer than `want` (or, from suspects and the bridge's extra
        sources, fewer than k) good pieces are in or on their way."""
        lag = self.lag()
        suspects = self.outcomes.suspects
        while self.good < self.k:
            laggards = [
                t for t, f in self.running.items() if lag is not None and self.age(f) >= lag
            ]
            if suspects is not None:  # so that other segments' fetches keep off them too
                for task in laggards:
                    suspects.add(self.running[task].source.limit.node_id, "slow")
            coming = self.good + len(self.running) - len(laggards)
            want = self.want if self.hedging() else self.k
            if self.fresh and coming < want:
                queue = self.fresh
            elif coming < self.k or (self.spare and coming < want):
                # Short of k, or of hedges because suspects were set aside: the bridge's other
                # pieces come before suspects, and suspects are never hedges.
                if not self.exhausted:
                    if self.asking is None and self.more is not None:
                        self.asking = asyncio.ensure_future(self.more(frozenset(self.known)))
                    return
                if not self.spare or coming >= self.k:
                    return
                queue = self.spare
            else:
                return
            slot = self.free_slot(queue[0].number)
            if slot is None and laggards:  # no slot left: the oldest laggard gives up its own
                oldest = min(laggards, key=lambda t: self.running[t].started)
                fetch = self.running.pop(oldest)
                oldest.cancel()
                source = fetch.source
                self.outcomes.slow(source.number, source.limit.node_id, fetch.started, laggard=True)
                await asyncio.gather(oldest, return_exceptions=True)
                slot = self.free_slot(queue[0].number)
            if slot is None:
                return
            source = queue.popleft()
            view = piece_view(self.buffer.view, self.layout, slot, self.piece_size)
            piece = self.fetcher.fetch_piece(self.buffer, self.layout, slot, view, source)
            self.running[asyncio.create_task(piece)] = _Fetch(slot, source, time.monotonic())

    def free_slot(self, number: int) -> int | None:
        # A data piece goes to its own slot, so that all of them in place need no decoding.
        taken = {fetch.slot for fetch in self.running.values()}
        order = [number] if number < self.k else []
        order += [*range(self.k, self.layout.slots), *range(self.k)]
        for slot in order:
            if self.positions[slot] == -1 and slot not in taken:
                return slot
        return None


class DownloadPipeline:
    """Streams an object's plaintext (or a range of it) segment by segment, in order.

    Example::

        pipeline = DownloadPipeline(transport, offload)
        async with contextlib.aclosing(pipeline.chunks(segments, ...)) as chunks:
            async for view in chunks:  # valid until the next iteration
                out.write(view)
    """

    def __init__(
        self,
        transport: FarmerTransport,
        offload: Offload,
        config: DownloadConfig | None = None,
        *,
        suspects: Suspects | None = None,
    ) -> None:
        self._transport = transport
        self._offload = offload
        self._config = config or DownloadConfig()
        self._suspects = suspects if suspects is not None else Suspects()

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
            index = span.segment.index
            outcomes = Outcomes(self._suspects)
            try:
                key = _content_key(span.segment, object_key)
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
                        buffer, layout, span.segment, sources, key, more, outcomes
                    )
                else:
                    size = await fetcher.fetch_range(
                        buffer, layout, span, sources, key, more, outcomes
                    )
            except BaseException:
                await self._offload.release(buffer)
                raise
            finally:
                if outcomes.items:  # off the critical path: the coordinator sends it later
                    coordinator.report_segment(index, tuple(outcomes.items))
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
