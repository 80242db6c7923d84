"""An object's bytes, stored and read: inline at the bridge, or through the transfer pipelines.

`Transfers` stores a small object inline in one bridge call and any other segment by segment
on farmers (begin a pending upload at the bridge or resume the one a `ResumeState` names, run
`UploadPipeline`, then commit the object or abort it), and reads one object version's
plaintext (its inline data, or `DownloadPipeline`). `AsyncProject` keeps the rest: paths,
keys and metadata, and opening and closing the source.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import blake3

from metadisk.client.bridge_api import BridgeAPI
from metadisk.client.coordinators import (
    BackgroundReports,
    BridgeDownloadCoordinator,
    BridgeUploadCoordinator,
)
from metadisk.client.download import DownloadConfig, DownloadPipeline, SegmentInfo
from metadisk.client.errors import (
    BridgeError,
    ClientError,
    IntegrityFailure,
    InvalidArgument,
    ResumeMismatch,
)
from metadisk.client.farmer_transport import FarmerTransport, Suspects
from metadisk.client.formats import ObjectMetadata, SealedMetadata, SegmentKey, plaintext_tag
from metadisk.client.offload import Offload
from metadisk.client.records import ObjectInfo, PartWritten, object_info, open_inline
from metadisk.client.resume import ResumeState, pending_upload
from metadisk.client.segment_codec import layout_for
from metadisk.client.segmenter import SegmentSizing, SourceReader, UploadSource
from metadisk.client.upload import ProgressCallback, UploadConfig, UploadPipeline
from metadisk.core import content
from metadisk.core.erasure import RedundancyScheme
from metadisk.core.keys import new_content_key
from metadisk.wire.api.objects import MAX_SEGMENT_INDEX
from metadisk.wire.api.objects import Object as ObjectRecord

# Objects of at most this much plaintext go to the bridge's database in one call instead of to
# farmers: 4 KiB, whose ciphertext (one block and its 16-byte tag, 4,112 bytes) is exactly the
# bridge's limit; the content key rides in the sealed metadata, outside that count.
INLINE_PLAINTEXT = 4096
_REMEMBERED_UPLOADS = 1024


class _MemoryBudget:
    """Bytes of segment buffers that concurrent parts may hold at once.

    One upload holds at most `segments_in_flight` buffers, which `SegmentSizing` keeps within
    its memory budget; parts of an upload run at once (an S3 client sends ten), each with a
    pipeline of its own, so together they wait for room in the same budget. A part larger
    than the whole budget still runs, alone.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._used = 0
        self._room = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, amount: int) -> AsyncIterator[None]:
        async with self._room:
            await self._room.wait_for(lambda: not self._used or self._used + amount <= self._size)
            self._used += amount
        try:
            yield
        finally:
            async with self._room:
                self._used -= amount
                self._room.notify_all()


@dataclass(frozen=True, slots=True)
class Opened:
    """One version of an object, as `get object` described it, with its keys."""

    encrypted_key: str
    key: bytes
    record: ObjectRecord
    meta: ObjectMetadata


class Transfers:
    """Uploads and downloads of objects over one bridge, farmer transport and offload."""

    def __init__(
        self,
        bridge: BridgeAPI,
        transport: FarmerTransport,
        offload: Offload,
        *,
        sizing: SegmentSizing,
        upload: UploadConfig,
        download: DownloadConfig,
        suspects: Suspects | None = None,
    ) -> None:
        self._bridge = bridge
        self._transport = transport
        self._offload = offload
        self._sizing = sizing
        self._upload = upload
        self._download = download
        # One memory of hung and failing farmers for every transfer of this client, so that
        # a farmer that hung once costs the next segment and the next object nothing.
        self._suspects = suspects if suspects is not None else Suspects()
        self._reports = BackgroundReports(bridge)
        # Pending uploads that parts go to: (bucket, encrypted key, redundancy) by stream id,
        # so that each part need not ask the bridge (whose answer lists every segment).
        self._uploads: dict[str, tuple[str, str, RedundancyScheme]] = {}
        self._parts_memory = _MemoryBudget(sizing.memory_budget)

    async def aclose(self) -> None:
        """Let segment reports still on their way finish (briefly), then drop them."""
        await self._reports.aclose()

    # -- upload ------------------------------------------------------------------------------

    async def upload(
        self,
        bucket: str,
        path: str,
        encrypted_key: str,
        key: bytes,
        reader: SourceReader,
        info: ObjectMetadata,
        progress: ProgressCallback | None,
        source: UploadSource,
        resume_dir: str | os.PathLike[str] | None,
    ) -> ObjectInfo:
        """Store what `reader` yields as the object at `path`: inline if it is small enough,
        else on farmers (resumable with `resume_dir`). The caller closes `reader`."""
        head = await self._peek_inline(reader)
        if head is not None:
            try:
                return await self._upload_inline(bucket, path, encrypted_key, key, head, info)
            except BridgeError as exc:
                # A bridge with a smaller inline limit (older ones kept 4,096 ciphertext
                # bytes): store the object on farmers instead.
                if exc.code != "inline-too-large":
                    raise
                reader.unread(head)
        return await self._upload_segments(
            bucket, path, encrypted_key, key, reader, info, progress, source, resume_dir
        )

    async def _peek_inline(self, reader: SourceReader) -> bytes | None:
        """The whole source if it is small enough to store inline, else None (nothing lost)."""
        most = INLINE_PLAINTEXT
        if reader.size is not None and reader.size > most:
            return None
        buffer = bytearray(most + 1)
        count = await reader.read_into(memoryview(buffer))
        if count <= most:
            return bytes(buffer[:count])
        reader.unread(bytes(buffer[:count]))
        return None

    async def _upload_inline(
        self,
        bucket: str,
        path: str,
        encrypted_key: str,
        key: bytes,
        data: bytes,
        info: ObjectMetadata,
    ) -> ObjectInfo:
        content_key = new_content_key()
        ciphertext = content.encrypt_segment(content_key, 0, data)
        segment_key = SegmentKey.seal(key, 0, content_key, plaintext_tag(content_key, ciphertext))
        checksum = blake3.blake3(data).digest()
        meta = ObjectMetadata(len(data), info.content_type, info.custom, checksum)
        sealed = SealedMetadata.seal(key, meta, segment_key)
        record = await self._bridge.put_inline(
            bucket, encrypted_key, ciphertext, len(data), sealed.encode()
        )
        return object_info(bucket, path, record, meta)

    async def _upload_segments(
        self,
        bucket: str,
        path: str,
        encrypted_key: str,
        key: bytes,
        reader: SourceReader,
        info: ObjectMetadata,
        progress: ProgressCallback | None,
        source: UploadSource,
        resume_dir: str | os.PathLike[str] | None,
    ) -> ObjectInfo:
        """Store `reader` on farmers segment by segment and commit it as the object at `path`.

        With `resume_dir`, the pending upload is kept if this fails (unless the source changed),
        and a later call picks it up where it stopped; without, it is aborted.
        """
        state = None
        if resume_dir is not None:
            state = ResumeState.locate(
                Path(resume_dir), self._bridge.url, bucket, encrypted_key, source
            )
        committed: dict[int, SegmentKey] = {}
        stream_id: str | None = None
        scheme: RedundancyScheme | None = None
        segment_size = 0
        if state is not None and state.saved is not None:
            resumed = await pending_upload(self._bridge, state)
            if resumed is not None:
                stream_id, scheme, segment_size, committed = resumed
        if stream_id is None or scheme is None:
            upload = await self._bridge.begin_object(bucket, encrypted_key)
            stream_id, scheme = upload.stream_id, upload.redundancy
            in_flight = self._upload.segments_in_flight
            segment_size = self._sizing.segment_size(scheme, in_flight, reader.size)
            if state is not None:
                state.save(stream_id, segment_size)
        coordinator = BridgeUploadCoordinator(self._bridge, stream_id, scheme)
        pipeline = UploadPipeline(
            self._transport, self._offload, self._upload, suspects=self._suspects
        )
        try:
            summary = await pipeline.run(
                reader,
                object_key=key,
                scheme=scheme,
                segment_size=segment_size,
                coordinator=coordinator,
                progress=progress,
                committed=committed,
            )
            meta = ObjectMetadata(
                summary.plaintext_size, info.content_type, info.custom, summary.checksum
            )
            sealed = SealedMetadata.seal(key, meta)
            record = await self._bridge.commit_object(stream_id, sealed.encode())
        except BaseException as exc:
            if state is None or isinstance(exc, ResumeMismatch):
                await self._abort(stream_id)
                if state is not None:
                    state.clear()
            raise
        if state is not None:
            state.clear()
        return object_info(bucket, path, record, meta)

    # -- parts -------------------------------------------------------------------------------

    async def begin_upload(self, bucket: str, encrypted_key: str) -> str:
        """A pending upload to `encrypted_key` for parts; its stream id."""
        began = await self._bridge.begin_object(bucket, encrypted_key)
        self._remember(began.stream_id, bucket, encrypted_key, began.redundancy)
        return began.stream_id

    async def upload_part(
        self,
        bucket: str,
        encrypted_key: str,
        key: bytes,
        upload_id: str,
        reader: SourceReader,
        first_index: int,
        progress: ProgressCallback | None,
    ) -> PartWritten:
        """Store what `reader` yields as segments `first_index`, ... of a pending upload (none
        for an empty source). Parts of one upload may be stored at once: each has its own
        pipeline and coordinator over the shared transport and offload."""
        if isinstance(first_index, bool) or not isinstance(first_index, int):
            raise InvalidArgument("first_index is an integer")
        if not 0 <= first_index <= MAX_SEGMENT_INDEX:
            raise InvalidArgument(f"first_index must be 0 to {MAX_SEGMENT_INDEX}")
        scheme = await self._upload_scheme(bucket, encrypted_key, upload_id)
        in_flight = self._upload.segments_in_flight
        segment_size = self._sizing.segment_size(scheme, in_flight, reader.size)
        buffers = in_flight
        if reader.size is not None:
            count = -(-reader.size // segment_size)
            if first_index + count - 1 > MAX_SEGMENT_INDEX:
                raise InvalidArgument(f"the part's segments would pass index {MAX_SEGMENT_INDEX}")
            buffers = min(buffers, max(count, 1))
        pipeline = UploadPipeline(
            self._transport, self._offload, self._upload, suspects=self._suspects
        )
        held = buffers * layout_for(segment_size, scheme.k, scheme.n).size
        async with self._parts_memory.hold(held):
            summary = await pipeline.run(
                reader,
                object_key=key,
                scheme=scheme,
                segment_size=segment_size,
                coordinator=BridgeUploadCoordinator(self._bridge, upload_id, scheme),
                progress=progress,
                first_index=first_index,
                empty_segment=False,
            )
        count = summary.segment_count
        indices = tuple(range(first_index, first_index + count))
        return PartWritten(first_index, count, summary.plaintext_size, indices, summary.checksum)

    async def commit_upload(
        self,
        bucket: str,
        path: str,
        encrypted_key: str,
        key: bytes,
        upload_id: str,
        segments: Sequence[int],
        info: ObjectMetadata,
    ) -> ObjectInfo:
        """Commit a pending upload as the object made of `segments` (strictly increasing);
        the upload's other segments are dropped. With no segment (only empty parts), the
        object is an empty one, stored inline as any empty upload, and the upload aborted."""
        listed = list(segments)
        if any(isinstance(i, bool) or not isinstance(i, int) for i in listed):
            raise InvalidArgument("segment indices are integers")
        if any(b <= a for a, b in itertools.pairwise(listed)):
            raise InvalidArgument("segment indices must be strictly increasing")
        pending = await self._bridge.get_upload(upload_id)
        self._check_upload(pending.bucket, pending.key, bucket, encrypted_key, upload_id)
        if not listed:
            stored = await self._upload_inline(bucket, path, encrypted_key, key, b"", info)
            await self._abort(upload_id)
            return stored
        sizes = {s.index: s.plain_size for s in pending.segments}
        missing = next((i for i in listed if i not in sizes), None)
        if missing is not None:
            raise BridgeError(
                f"segment {missing} is not a committed segment of the upload",
                code="segments-missing",
                status=400,
            )
        # The whole-plaintext checksum needs every part's bytes in order: only a caller that
        # read them all (one part) can give it; without, downloads skip that check (each
        # segment is still authenticated).
        meta = ObjectMetadata(
            sum(sizes[i] for i in listed), info.content_type, info.custom, info.checksum
        )
        sealed = SealedMetadata.seal(key, meta)
        record = await self._bridge.commit_object(upload_id, sealed.encode(), listed)
        self._uploads.pop(upload_id, None)
        return object_info(bucket, path, record, meta)

    def _remember(
        self, upload_id: str, bucket: str, encrypted_key: str, scheme: RedundancyScheme
    ) -> None:
        self._uploads[upload_id] = (bucket, encrypted_key, scheme)
        while len(self._uploads) > _REMEMBERED_UPLOADS:
            del self._uploads[next(iter(self._uploads))]

    async def _upload_scheme(
        self, bucket: str, encrypted_key: str, upload_id: str
    ) -> RedundancyScheme:
        """The redundancy of a pending upload to `encrypted_key` (asked once per upload)."""
        known = self._uploads.get(upload_id)
        if known is None:
            pending = await self._bridge.get_upload(upload_id)
            self._remember(upload_id, pending.bucket, pending.key, pending.redundancy)
            known = self._uploads[upload_id]
        self._check_upload(known[0], known[1], bucket, encrypted_key, upload_id)
        return known[2]

    @staticmethod
    def _check_upload(
        found_bucket: str, found_key: str, bucket: str, encrypted_key: str, upload_id: str
    ) -> None:
        # Segment keys are wrapped under the path's object key: parts sent to another path's
        # upload could never be read.
        if (found_bucket, found_key) != (bucket, encrypted_key):
            raise InvalidArgument(f"upload {upload_id} is not an upload to this path")

    async def _abort(self, stream_id: str) -> None:
        # Best effort, and shielded: the caller may be here because it was cancelled.
        with contextlib.suppress(ClientError, asyncio.CancelledError):
            await asyncio.shield(self._bridge.abort_upload(stream_id))

    # -- download ----------------------------------------------------------------------------

    async def views(
        self,
        bucket: str,
        opened: Opened,
        offset: int,
        length: int | None,
        progress: ProgressCallback | None,
    ) -> AsyncGenerator[memoryview, None]:
        """The plaintext of one object version, as views valid until the next step."""
        record, key = opened.record, opened.key
        size = record.plain_size
        if offset < 0 or (length is not None and length < 0):
            raise InvalidArgument("offset and length must not be negative")
        if offset > size:
            raise InvalidArgument(f"offset {offset} is past the end ({size} bytes)")
        total = size - offset if length is None else min(length, size - offset)
        # Only a read of the whole object can be held to the whole-object checksum.
        expected = opened.meta.checksum if total == size else None
        hasher = blake3.blake3() if expected is not None else None
        if total == 0:
            if expected is not None and blake3.blake3().digest() != expected:
                raise IntegrityFailure("the object does not match its checksum")
            return
        if record.inline_data is not None:
            data = open_inline(record, key)
            if expected is not None and blake3.blake3(data).digest() != expected:
                raise IntegrityFailure("the object does not match its checksum")
            yield memoryview(data)[offset : offset + total]
            if progress is not None:
                progress(total, total)
            return
        segments = [
            SegmentInfo(s.index, s.plain_size, s.encrypted_size, s.encrypted_metadata or b"")
            for s in record.segments
        ]
        schemes = {s.redundancy for s in record.segments}
        if len(schemes) != 1:
            raise IntegrityFailure("the object's segments do not share one redundancy scheme")
        pipeline = DownloadPipeline(
            self._transport, self._offload, self._download, suspects=self._suspects
        )
        # Pinned to this version: a concurrent overwrite cannot mix two objects' segments.
        coordinator = BridgeDownloadCoordinator(
            self._bridge, bucket, opened.encrypted_key, record.stream_id, self._reports
        )
        chunks = pipeline.chunks(
            segments,
            object_key=key,
            scheme=schemes.pop(),
            coordinator=coordinator,
            offset=offset,
            length=total,
        )
        done = 0
        async with contextlib.aclosing(chunks):
            async for view in chunks:
                done += len(view)
                if hasher is not None:
                    # Before the yield: the view is only valid until the next step.
                    await asyncio.to_thread(hasher.update, view)
                yield view
                if progress is not None:
                    progress(done, total)
        if hasher is not None and hasher.digest() != expected:
            # The segments all decrypted, so each is what some key holder stored: what differs
            # is the whole, e.g. metadata sealed for other data. The bytes went out already;
            # this error is what tells the reader not to trust them.
            raise IntegrityFailure("the object does not match its checksum")
