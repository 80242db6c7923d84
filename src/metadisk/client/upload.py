"""The upload pipeline: segments in, pieces out to farmers, long-tail cancellation.

::

    source --read--> [buffer] --encrypt+encode+hash (worker)--> [pieces] --PUT x n--> farmers
                                                                        \\--receipts--> bridge

Two stages run at once: while segment i's pieces are on the wire, segment i+1 is being read and
encoded. At most ``segments_in_flight`` buffers exist, so memory does not grow with the file.

Per segment (`put_pieces`): all n pieces start in parallel. Each receipt is verified
(signature, serial, piece id, size, Merkle root) before it counts; at o receipts the stragglers
are cancelled. When the pieces stored and on their way fall short of o, the bridge is asked at
once for replacements, for no more pieces than are missing: failed pieces first, then pieces
in flight that count as laggards, far behind the stored ones (`UploadConfig.replace_laggards`)
or sent to a farmer this client holds a suspect (`farmer_transport.Suspects`). A laggard goes
on while its replacement is asked for; one no farmer can replace is given up later
(`abandon_laggards`), so a segment with more hung farmers than the network can spare fails in
seconds, naming each piece and its code. Every attempt's outcome goes to the bridge with the
segment's commit (`CommittedSegment.outcomes`).

The pipeline knows nothing of the bridge's API: it talks to an `UploadCoordinator` (begin a
segment, replace failed pieces, commit a segment), which the project implements over HTTP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import blake3

from metadisk.client.config import LongTail
from metadisk.client.config import UploadConfig as UploadConfig  # its home before config
from metadisk.client.errors import (
    ClientError,
    PieceError,
    ResumeMismatch,
    UploadFailed,
    first_error,
)
from metadisk.client.farmer_transport import (
    FarmerTransport,
    Outcomes,
    PieceTarget,
    Suspects,
    check_target,
    put_piece,
    routed_around,
)
from metadisk.client.formats import SegmentKey
from metadisk.client.offload import Offload, SegmentBuffer
from metadisk.client.segment_codec import (
    EncodedSegment,
    PieceDigest,
    SegmentLayout,
    encode_segment,
    layout_for,
    piece_view,
    tag_segment,
)
from metadisk.client.segmenter import SourceReader
from metadisk.core import content
from metadisk.core.erasure import RedundancyScheme
from metadisk.core.errors import DecryptionError
from metadisk.core.keys import new_content_key
from metadisk.core.messages import PieceReceipt
from metadisk.wire.api.objects import PieceOutcome

ProgressCallback = Callable[[int, "int | None"], None]
"""Called with (bytes done, total bytes or None if unknown) on the event loop's thread."""


@dataclass(frozen=True, slots=True)
class CommittedSegment:
    """What the bridge records for a stored segment."""

    index: int
    plaintext_size: int
    ciphertext_size: int
    encrypted_key: bytes  # formats.SegmentKey, opaque to the bridge
    receipts: Mapping[int, PieceReceipt]  # piece number -> verified receipt
    outcomes: tuple[PieceOutcome, ...] = field(default=(), repr=False)  # every piece attempt


class UploadCoordinator(Protocol):
    """The bridge's half of an upload, as the pipeline needs it."""

    async def begin_segment(self, index: int, ciphertext_size: int) -> Sequence[PieceTarget]:
        """Order limits for all n pieces of segment `index`."""
        ...

    async def replace_pieces(
        self, index: int, failed: Sequence[PieceTarget]
    ) -> Sequence[PieceTarget]:
        """New order limits, on other farmers, for the pieces of `failed`."""
        ...

    async def commit_segment(self, segment: CommittedSegment) -> None: ...


@dataclass(frozen=True, slots=True)
class UploadSummary:
    """What an upload stored."""

    plaintext_size: int
    ciphertext_size: int
    segment_count: int
    segments: tuple[CommittedSegment, ...] = field(default=(), repr=False)  # this run's only
    checksum: bytes = b""  # BLAKE3-256 of all the plaintext read, committed segments included


Replace = Callable[[Sequence[PieceTarget]], Awaitable[Sequence[PieceTarget]]]


async def put_pieces(
    transport: FarmerTransport,
    targets: Sequence[PieceTarget],
    pieces: Callable[[int], memoryview],
    digests: Sequence[PieceDigest],
    *,
    success: int,
    replace: Replace | None = None,
    max_replacements: int = 0,
    outcomes: Outcomes | None = None,
    replace_after: LongTail | None = None,
    abandon_after: LongTail | None = None,
    index: int | None = None,
) -> dict[int, PieceReceipt]:
    """Send a segment's pieces in parallel; return verified receipts once `success` are in.

    `pieces(number)` gives piece `number`'s bytes and `digests[number]` its hash and Merkle root.
    `replace` gives new targets (at most `max_replacements` in all) for failed pieces, and for
    pieces in flight that lag past `replace_after` or whose farmer is one of the `outcomes`'
    suspects, whenever the segment is short of pieces; `abandon_after` gives up on laggards it
    cannot replace (see the module docstring). Every attempt's outcome goes to `outcomes`.
    Raises `UploadFailed` (with each piece's failure) if `success` is not reached.
    """
    lines = (replace_after, abandon_after)
    outcomes = outcomes or Outcomes()
    put = _SegmentPut(
        transport, pieces, digests, success, replace, max_replacements, outcomes, lines
    )
    return await put.run(targets, index)


@dataclass(slots=True)
class _Flight:
    target: PieceTarget
    started: float
    suspect: bool  # its farmer was a suspect when it was sent: a laggard from the start
    replacing: bool = False  # a replacement is being asked for while it goes on


@dataclass(frozen=True, slots=True)
class _Ask:
    batch: list[PieceTarget]
    laggards: bool  # the batch is still in flight (else: pieces that failed)


@dataclass(eq=False)
class _SegmentPut:
    """One segment's piece uploads: flights to farmers, replacement requests to the bridge.

    The bridge is asked for exactly the pieces the segment is short of (stored, held, and in
    flight without lagging, plus those being replaced, fall short of `success`): failed pieces
    first, then laggards, the oldest first. Asking for no more keeps a bridge that picks all
    or none of the farmers asked for (as ours does) from refusing what it could give.
    """

    transport: FarmerTransport
    pieces: Callable[[int], memoryview]
    digests: Sequence[PieceDigest]
    success: int
    replace: Replace | None
    budget: int  # pieces a replacement may still be asked for
    outcomes: Outcomes
    lines: tuple[LongTail | None, LongTail | None]  # replace after, abandon after
    receipts: dict[int, PieceReceipt] = field(default_factory=dict)
    # Receipts of pieces whose replacement is being asked for: the bridge may swap their order
    # limits, and then they no longer count, so they wait for its answer.
    held: dict[int, PieceReceipt] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)
    failed: list[PieceTarget] = field(default_factory=list)  # not replaced or asked for yet
    flights: dict[asyncio.Task[PieceReceipt], _Flight] = field(default_factory=dict)
    asks: dict[asyncio.Task[Sequence[PieceTarget]], _Ask] = field(default_factory=dict)
    dropped: list[asyncio.Task[PieceReceipt]] = field(default_factory=list)
    spares_gone: bool = False  # the bridge had no farmer to spare: ask no more

    async def run(
        self, targets: Sequence[PieceTarget], index: int | None
    ) -> dict[int, PieceReceipt]:
        try:
            self.launch(targets)
            while len(self.receipts) < self.success:
                wake = self.plan()
                if not (self.flights or self.asks):
                    break
                done, _ = await asyncio.wait(
                    [*self.flights, *self.asks], timeout=wake, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:  # a flight may be gone: superseded by an answer before it
                    if task in self.flights:
                        self.landed(self.flights.pop(task), task)  # type: ignore[arg-type]
                    elif task in self.asks:
                        self.answered(self.asks.pop(task), task)  # type: ignore[arg-type]
        finally:
            lag = self.line(0)  # long-tail cancellation: what still runs is not needed
            for task, flight in list(self.flights.items()):
                self.drop(task, slow=lag is not None and self.age(flight) >= lag)
            for ask_task in self.asks:
                ask_task.cancel()
            await asyncio.gather(*self.dropped, *self.asks, return_exceptions=True)
        if len(self.receipts) < self.success:
            where = "" if index is None else f"segment {index}: "
            codes = ", ".join(f"{n} {self.failures[n].split(':', 1)[0]}" for n in self.failures)
            raise UploadFailed(
                f"{where}only {len(self.receipts)} of the {self.success} pieces needed were "
                f"stored (failed pieces: {codes or 'none'})",
                failures=self.failures,
            )
        return self.receipts

    def launch(self, targets: Sequence[PieceTarget]) -> None:
        suspects = self.outcomes.suspects
        for target in targets:
            try:
                check_target(target, len(self.digests))
            except PieceError as exc:
                self.failures[target.number] = f"{exc.code}: {exc}"
                self.failed.append(target)
                continue
            number = target.number
            if number in self.receipts:
                continue  # stored meanwhile
            digest = self.digests[number].piece_hash
            task = asyncio.create_task(
                put_piece(self.transport, target, self.pieces(number), digest)
            )
            wary = suspects is not None and target.limit.node_id in suspects
            self.flights[task] = _Flight(target, time.monotonic(), wary)

    def landed(self, flight: _Flight, task: asyncio.Task[PieceReceipt]) -> None:
        target = flight.target
        number, node = target.number, target.limit.node_id
        try:
            receipt = task.result()
        except PieceError as exc:
            self.fail(flight, exc)
            if not flight.replacing:  # else its replacement is on its way already
                self.failed.append(target)
            return
        self.outcomes.success(number, node, flight.started)
        (self.held if flight.replacing else self.receipts).setdefault(number, receipt)

    def fail(self, flight: _Flight, exc: PieceError) -> None:
        target = flight.target
        self.failures[target.number] = f"{exc.code}: {exc}"
        self.outcomes.failure(target.number, target.limit.node_id, flight.started, exc.code)
        routed_around("upload", target.number, target.limit, target.address, exc)

    def answered(self, ask: _Ask, task: asyncio.Task[Sequence[PieceTarget]]) -> None:
        """Start the replacements the bridge gave; what it did not replace goes on, or stays
        failed."""
        try:
            fresh = list(task.result())
            problem = "no replacement: the bridge had no other farmer"
        except ClientError as exc:
            fresh, problem = [], f"no replacement: {exc}"
        covered = {target.number for target in fresh}
        self.spares_gone = self.spares_gone or len(covered) < len(ask.batch)
        for target in ask.batch:
            number = target.number
            running = [t for t, f in self.flights.items() if f.target is target]
            if number in covered:  # its old order limit is void: what it stored does not count
                self.held.pop(number, None)
                for old in running:
                    self.drop(old, slow=True)
            elif number in self.held:  # a laggard that got there after all: it counts
                self.receipts.setdefault(number, self.held.pop(number))
            elif running:
                self.flights[running[0]].replacing = False
            else:  # failed, before or while the bridge was asked
                self.failures[number] += f"; {problem}"
        self.launch(fresh)

    def line(self, which: int) -> float | None:
        tail = self.lines[which]
        return None if tail is None else tail.after(self.outcomes.latencies)

    def age(self, flight: _Flight) -> float:
        return time.monotonic() - flight.started

    def cancel(self, task: asyncio.Task[PieceReceipt]) -> _Flight:
        flight = self.flights.pop(task)
        task.cancel()
        self.dropped.append(task)
        return flight

    def drop(self, task: asyncio.Task[PieceReceipt], *, slow: bool) -> None:
        """Cancel a piece not needed any more (a `slow` one makes its farmer a suspect)."""
        target, started = (flight := self.cancel(task)).target, flight.started
        self.outcomes.slow(target.number, target.limit.node_id, started, laggard=slow)

    def plan(self) -> float | None:
        """Ask for the pieces the segment is short of, or give up on laggards no farmer can
        replace; the seconds until a piece in flight next crosses a line (None: none will)."""
        lag, give_up = self.line(0), self.line(1)
        first = lag if lag is not None else give_up
        flights = sorted(self.flights.items(), key=lambda item: item[1].started)
        lagging = [
            (t, f) for t, f in flights if f.suspect or (first is not None and self.age(f) >= first)
        ]
        ahead = len(self.flights) - sum(not f.replacing for _, f in lagging)
        coming = sum(len(a.batch) for a in self.asks.values() if not a.laggards)
        short = self.success - len(self.receipts) - len(self.held) - ahead - coming
        can_ask = self.replace is not None and self.budget > 0 and not self.spares_gone
        if short > 0 and can_ask:
            take = min(short, self.budget)
            failed, self.failed = self.failed[:take], self.failed[take:]
            waiting = [f for _, f in lagging if not f.replacing][: take - len(failed)]
            for flight in waiting:
                flight.replacing = True
            self.ask(failed, laggards=False)
            self.ask([flight.target for flight in waiting], laggards=True)
        elif short > 0 and give_up is not None:  # none to be had: wait, up to a point
            for task, flight in lagging:  # any of them would do, none is worth more waiting
                if not flight.replacing and self.age(flight) >= give_up:
                    self.cancel(task)
                    late = f"no receipt after {self.age(flight):.1f} s, far behind the others"
                    self.fail(flight, PieceError(late, code="slow"))
        lines = [line for line in (lag, give_up) if line is not None]
        crossings = [line - self.age(f) for _, f in flights for line in lines]
        return min((c for c in crossings if c > 0), default=None)

    def ask(self, batch: list[PieceTarget], *, laggards: bool) -> None:
        if batch and self.replace is not None:
            self.budget -= len(batch)
            task = asyncio.create_task(_ask(self.replace, batch))
            self.asks[task] = _Ask(batch, laggards)


async def _ask(replace: Replace, batch: list[PieceTarget]) -> Sequence[PieceTarget]:
    return await replace(batch)


@dataclass(slots=True)
class _Job:
    index: int
    buffer: SegmentBuffer
    encoded: EncodedSegment
    segment_key: SegmentKey


class UploadPipeline:
    """Uploads a source as segments through a coordinator, two stages deep.

    Example::

        pipeline = UploadPipeline(transport, offload)
        summary = await pipeline.run(
            SourceReader.open("video.mp4"), object_key=key, scheme=LOCAL,
            segment_size=8 << 20, coordinator=coordinator,
        )
    """

    def __init__(
        self,
        transport: FarmerTransport,
        offload: Offload,
        config: UploadConfig | None = None,
        *,
        suspects: Suspects | None = None,
    ) -> None:
        self._transport = transport
        self._offload = offload
        self._config = config or UploadConfig()
        self._suspects = suspects if suspects is not None else Suspects()

    async def run(
        self,
        reader: SourceReader,
        *,
        object_key: bytes,
        scheme: RedundancyScheme,
        segment_size: int,
        coordinator: UploadCoordinator,
        progress: ProgressCallback | None = None,
        committed: Mapping[int, SegmentKey] | None = None,
        first_index: int = 0,
        empty_segment: bool = True,
    ) -> UploadSummary:
        """Upload everything `reader` yields as segments `first_index`, `first_index` + 1, ...;
        segments in `committed` are checked, not sent. An empty source is one empty segment,
        or none without `empty_segment` (a part of an object: its other parts hold the data).

        `committed` holds the segments an interrupted upload already stored: each is read
        again and its plaintext tag compared (`ResumeMismatch` if the source changed).
        """
        config = self._config
        layout = layout_for(segment_size, scheme.k, scheme.n)
        held = asyncio.Semaphore(config.segments_in_flight)
        jobs: asyncio.Queue[_Job | None] = asyncio.Queue()
        done_segments: list[CommittedSegment] = []
        totals = {"plain": 0, "cipher": 0, "count": 0}
        state = {"done": 0}
        skip = dict(committed or {})
        # The whole-object checksum is taken as each segment is read, in order, so it costs no
        # second pass; a resumed upload reads its committed segments again, so they count too.
        hasher = blake3.blake3()

        def advance(count: int) -> None:
            state["done"] += count
            if progress is not None:
                progress(state["done"], reader.size)

        async def produce() -> None:
            index = first_index
            while True:
                await held.acquire()
                buffer = await self._offload.acquire(layout.size)
                queued = False
                try:
                    size = await reader.read_into(buffer.view[:segment_size])
                    if size == 0 and (index > first_index or not empty_segment):
                        break
                    # blake3 releases the GIL on large inputs: hash beside the event loop.
                    await asyncio.to_thread(hasher.update, buffer.view[:size])
                    totals["plain"] += size
                    totals["count"] += 1
                    if index in skip:
                        await self._check_committed(
                            buffer, layout, index, size, object_key, skip[index]
                        )
                        totals["cipher"] += content.ciphertext_size(size)
                        advance(size)
                    else:
                        content_key = new_content_key()
                        encoded = await self._offload.run(
                            encode_segment,
                            buffer,
                            layout,
                            content_key=content_key,
                            index=index,
                            plaintext_size=size,
                            k=scheme.k,
                            n=scheme.n,
                        )
                        segment_key = SegmentKey.seal(
                            object_key, index, content_key, encoded.plaintext_tag
                        )
                        totals["cipher"] += encoded.ciphertext_size
                        await jobs.put(_Job(index, buffer, encoded, segment_key))
                        queued = True
                finally:
                    if not queued:
                        await self._offload.release(buffer)
                        held.release()
                index += 1
                if size < segment_size:
                    break
            for _ in range(config.segments_uploading):
                await jobs.put(None)

        async def send() -> None:
            while (job := await jobs.get()) is not None:
                try:
                    done_segments.append(await self._send(job, layout, scheme, coordinator))
                    advance(job.encoded.plaintext_size)
                finally:
                    await self._offload.release(job.buffer)
                    held.release()

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(produce())
                for _ in range(config.segments_uploading):
                    group.create_task(send())
        except BaseExceptionGroup as group_error:
            raise first_error(group_error) from None
        finally:
            while not jobs.empty():  # a failed run leaves encoded segments behind
                job = jobs.get_nowait()
                if job is not None:
                    await self._offload.release(job.buffer)
        missing = set(skip) - set(range(first_index, first_index + totals["count"]))
        if missing:
            raise ResumeMismatch(f"the source is shorter than the {len(skip)} segments stored")
        return UploadSummary(
            totals["plain"],
            totals["cipher"],
            totals["count"],
            tuple(done_segments),
            hasher.digest(),
        )

    async def _check_committed(
        self,
        buffer: SegmentBuffer,
        layout: SegmentLayout,
        index: int,
        size: int,
        object_key: bytes,
        stored: SegmentKey,
    ) -> None:
        try:
            content_key = stored.content_key(object_key, index)
        except DecryptionError as exc:
            raise ResumeMismatch(f"segment {index} was stored under another key") from exc
        tag = await self._offload.run(
            tag_segment, buffer, layout, content_key=content_key, index=index, plaintext_size=size
        )
        if tag != stored.plaintext_tag:
            raise ResumeMismatch(f"segment {index} of the source changed since it was stored")

    async def _send(
        self,
        job: _Job,
        layout: SegmentLayout,
        scheme: RedundancyScheme,
        coordinator: UploadCoordinator,
    ) -> CommittedSegment:
        encoded = job.encoded
        targets = await coordinator.begin_segment(job.index, encoded.ciphertext_size)
        view = job.buffer.view

        def piece(number: int) -> memoryview:
            return piece_view(view, layout, number, encoded.piece_size)

        async def replace(failed: Sequence[PieceTarget]) -> Sequence[PieceTarget]:
            return await coordinator.replace_pieces(job.index, failed)

        config = self._config
        outcomes = Outcomes(self._suspects)
        receipts = await put_pieces(
            self._transport,
            targets,
            piece,
            encoded.digests,
            success=scheme.o,
            replace=replace,
            max_replacements=scheme.n
            if config.max_replacements is None
            else config.max_replacements,
            outcomes=outcomes,
            replace_after=config.replace_laggards,
            abandon_after=config.abandon_laggards,
            index=job.index,
        )
        segment = CommittedSegment(
            job.index,
            encoded.plaintext_size,
            encoded.ciphertext_size,
            job.segment_key.encode(),
            receipts,
            tuple(outcomes.items),
        )
        await coordinator.commit_segment(segment)
        return segment
