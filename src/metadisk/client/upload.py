"""The upload pipeline: segments in, pieces out to farmers, long-tail cancellation.

::

    source --read--> [buffer] --encrypt+encode+hash (worker)--> [pieces] --PUT x n--> farmers
                                                                        \\--receipts--> bridge

Two stages run at once: while segment i's pieces are on the wire, segment i+1 is being read and
encoded. At most ``segments_in_flight`` buffers exist, so memory does not grow with the file.

Per segment (`put_pieces`): all n pieces start in parallel. Each receipt is verified (farmer's
signature, serial, piece id, size, hash and Merkle root) before it counts; as soon as o receipts
are in, the stragglers are cancelled. A failed piece is retried at once on a replacement order
limit from the coordinator (the bridge), while the others keep going, so a retry never delays
the cancellation.

The pipeline knows nothing of the bridge's API: it talks to an `UploadCoordinator` (begin a
segment, replace failed pieces, commit a segment), which the project implements over HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from metadisk.client.errors import (
    ClientError,
    PieceError,
    ResumeMismatch,
    UploadFailed,
)
from metadisk.client.farmer_transport import FarmerTransport, routed_around
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
from metadisk.core.errors import CoreError, DecryptionError, SignatureError
from metadisk.core.identity import NodeId
from metadisk.core.keys import new_content_key
from metadisk.core.messages import OrderLimit, PieceReceipt

ProgressCallback = Callable[[int, "int | None"], None]
"""Called with (bytes done, total bytes or None if unknown) on the event loop's thread."""


@dataclass(frozen=True, slots=True)
class PieceTarget:
    """One order limit for one piece and the farmer it is addressed to."""

    number: int  # piece number in the segment, 0 .. n-1
    limit: OrderLimit
    address: str  # farmer's data-plane base URL
    public_key: bytes  # farmer's Ed25519 key: its receipts must verify under it


@dataclass(frozen=True, slots=True)
class CommittedSegment:
    """What the bridge records for a stored segment."""

    index: int
    plaintext_size: int
    ciphertext_size: int
    encrypted_key: bytes  # formats.SegmentKey, opaque to the bridge
    receipts: Mapping[int, PieceReceipt]  # piece number -> verified receipt


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
class UploadConfig:
    """Tuning of the upload pipeline.

    `segments_in_flight` bounds the buffers held (being read, encoded or sent); at most
    `segments_uploading` of them are on the wire at once, so a segment's slow tail overlaps the
    next one's start. `max_replacements` caps retries per segment (None: n).
    """

    segments_in_flight: int = 3
    segments_uploading: int = 2
    max_replacements: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.segments_uploading < self.segments_in_flight:
            raise ValueError("need 1 <= segments_uploading < segments_in_flight")


@dataclass(frozen=True, slots=True)
class UploadSummary:
    """What an upload stored."""

    plaintext_size: int
    ciphertext_size: int
    segment_count: int
    segments: tuple[CommittedSegment, ...] = field(default=(), repr=False)  # this run's only


def check_receipt(
    receipt: PieceReceipt, target: PieceTarget, digest: PieceDigest, size: int
) -> None:
    """Accept a receipt only if it is signed by the farmer for exactly the piece we sent."""
    limit = target.limit
    problems = [
        ("serial", receipt.serial == limit.serial),
        ("node", receipt.node_id == limit.node_id),
        ("piece id", receipt.piece_id == limit.piece_id),
        ("size", receipt.size == size),
        ("piece hash", receipt.piece_hash == digest.piece_hash),
    ]
    wrong = [name for name, ok in problems if not ok]
    if wrong:
        raise PieceError(
            f"receipt does not match the piece: {', '.join(wrong)}", code="bad-receipt"
        )
    try:
        receipt.verify_signature(target.public_key)
    except SignatureError as exc:
        raise PieceError(f"receipt signature: {exc}", code="bad-receipt") from exc


def _check_target(target: PieceTarget, n: int) -> None:
    if not 0 <= target.number < n:
        raise PieceError(f"piece number {target.number} outside 0..{n - 1}", code="bad-target")
    if not target.limit.action.is_put:
        raise PieceError("order limit is not for an upload", code="bad-target")
    try:
        ok = NodeId.from_public_key(target.public_key) == target.limit.node_id
    except CoreError:
        ok = False
    if not ok:
        raise PieceError("farmer key does not match the order limit's node", code="bad-target")


async def _put_one(
    transport: FarmerTransport, target: PieceTarget, data: memoryview, digest: PieceDigest
) -> PieceReceipt:
    receipt = await transport.put_piece(target.address, target.limit, digest.piece_hash, data)
    check_receipt(receipt, target, digest, len(data))
    return receipt


async def put_pieces(
    transport: FarmerTransport,
    targets: Sequence[PieceTarget],
    pieces: Callable[[int], memoryview],
    digests: Sequence[PieceDigest],
    *,
    success: int,
    replace: Callable[[Sequence[PieceTarget]], Awaitable[Sequence[PieceTarget]]] | None = None,
    max_replacements: int = 0,
) -> dict[int, PieceReceipt]:
    """Send a segment's pieces in parallel; return verified receipts once `success` are in.

    `pieces(number)` gives piece `number`'s bytes and `digests[number]` its hash and Merkle root.
    Stragglers are cancelled as soon as `success` receipts are verified. A failed piece is sent
    again to the target `replace` returns for it, at most `max_replacements` times in all, while
    the others carry on. Raises `UploadFailed` (with each piece's failure) if `success` cannot
    be reached.
    """
    n = len(digests)
    receipts: dict[int, PieceReceipt] = {}
    failures: dict[int, str] = {}
    uploads: dict[asyncio.Task[PieceReceipt], PieceTarget] = {}
    replacing: dict[asyncio.Task[Sequence[PieceTarget]], list[PieceTarget]] = {}
    budget = max_replacements

    def start(target: PieceTarget) -> PieceTarget | None:
        """Start one upload; return the target back if it cannot even start."""
        try:
            _check_target(target, n)
        except PieceError as exc:
            failures[target.number] = f"{exc.code}: {exc}"
            return target
        if target.number in receipts:
            return None  # stored meanwhile; nothing to do
        task = asyncio.create_task(
            _put_one(transport, target, pieces(target.number), digests[target.number])
        )
        uploads[task] = target
        return None

    def retry(failed: list[PieceTarget]) -> None:
        nonlocal budget
        if not failed or replace is None or budget <= 0 or len(receipts) >= success:
            return
        batch, budget = failed[:budget], budget - min(budget, len(failed))
        replacing[asyncio.create_task(_ask(replace, batch))] = batch

    try:
        retry([t for t in map(start, targets) if t is not None])
        while len(receipts) < success and (uploads or replacing):
            done, _ = await asyncio.wait(
                [*uploads, *replacing], return_when=asyncio.FIRST_COMPLETED
            )
            failed: list[PieceTarget] = []
            for task in done:
                if task in uploads:
                    target = uploads.pop(task)  # type: ignore[arg-type]
                    try:
                        receipts.setdefault(target.number, task.result())  # type: ignore[arg-type]
                    except PieceError as exc:
                        failures[target.number] = f"{exc.code}: {exc}"
                        failed.append(target)
                        routed_around("upload", target.number, target.limit, target.address, exc)
                else:
                    batch = replacing.pop(task)  # type: ignore[arg-type]
                    try:
                        fresh: Sequence[PieceTarget] = task.result()  # type: ignore[assignment]
                    except ClientError as exc:
                        for target in batch:
                            failures[target.number] += f"; no replacement: {exc}"
                        continue
                    failed.extend(t for t in map(start, fresh) if t is not None)
            retry(failed)
    finally:
        # Long-tail cancellation: whatever is still running is not needed (or we failed).
        rest = [*uploads, *replacing]
        for task in rest:
            task.cancel()
        if rest:
            await asyncio.gather(*rest, return_exceptions=True)
    if len(receipts) < success:
        raise UploadFailed(
            f"only {len(receipts)} of the {success} pieces needed were stored",
            failures=failures,
        )
    return receipts


async def _ask(
    replace: Callable[[Sequence[PieceTarget]], Awaitable[Sequence[PieceTarget]]],
    batch: list[PieceTarget],
) -> Sequence[PieceTarget]:
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
        self, transport: FarmerTransport, offload: Offload, config: UploadConfig | None = None
    ) -> None:
        self._transport = transport
        self._offload = offload
        self._config = config or UploadConfig()

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
    ) -> UploadSummary:
        """Upload everything `reader` yields; segments in `committed` are checked, not sent.

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

        def advance(count: int) -> None:
            state["done"] += count
            if progress is not None:
                progress(state["done"], reader.size)

        async def produce() -> None:
            index = 0
            while True:
                await held.acquire()
                buffer = await self._offload.acquire(layout.size)
                queued = False
                try:
                    size = await reader.read_into(buffer.view[:segment_size])
                    if size == 0 and index > 0:
                        break
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
            raise _first_error(group_error) from None
        finally:
            while not jobs.empty():  # a failed run leaves encoded segments behind
                job = jobs.get_nowait()
                if job is not None:
                    await self._offload.release(job.buffer)
        missing = set(skip) - set(range(totals["count"]))
        if missing:
            raise ResumeMismatch(f"the source is shorter than the {len(skip)} segments stored")
        return UploadSummary(
            totals["plain"], totals["cipher"], totals["count"], tuple(done_segments)
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

        max_replacements = self._config.max_replacements
        receipts = await put_pieces(
            self._transport,
            targets,
            piece,
            encoded.digests,
            success=scheme.o,
            replace=replace,
            max_replacements=scheme.n if max_replacements is None else max_replacements,
        )
        segment = CommittedSegment(
            job.index,
            encoded.plaintext_size,
            encoded.ciphertext_size,
            job.segment_key.encode(),
            receipts,
        )
        await coordinator.commit_segment(segment)
        return segment


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to raise from a failed task group: the first that is not a cancellation."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first_error(error)
        if not isinstance(error, asyncio.CancelledError):
            return error
    return group.exceptions[0]
