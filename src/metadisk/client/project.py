"""`AsyncProject`: everything a front end does with one access grant, end-to-end encrypted.

The project turns plaintext paths into encrypted keys (`metadisk.core.paths`), metadata into
sealed blobs (`metadisk.client.formats`), and runs the transfer pipelines against the bridge
(`metadisk.client.bridge_api`) and the farmers (`metadisk.client.farmer_transport`). Nothing
leaves the machine unencrypted but bucket names, sizes and times.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import json
import os
from collections.abc import AsyncGenerator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from metadisk.client.bridge_api import BridgeAPI
from metadisk.client.download import (
    DownloadConfig,
    DownloadPipeline,
    PieceSource,
    SegmentInfo,
)
from metadisk.client.errors import (
    AccessDenied,
    BridgeError,
    ClientError,
    Conflict,
    IntegrityFailure,
    InvalidArgument,
    NotFound,
    ResumeMismatch,
)
from metadisk.client.farmer_transport import FarmerTransport, HttpFarmerTransport, TransportConfig
from metadisk.client.formats import ObjectMetadata, SealedMetadata, SegmentKey, plaintext_tag
from metadisk.client.offload import Offload
from metadisk.client.segmenter import SegmentSizing, SourceReader, UploadSource
from metadisk.client.upload import (
    CommittedSegment,
    PieceTarget,
    ProgressCallback,
    UploadConfig,
    UploadPipeline,
)
from metadisk.core import content
from metadisk.core.erasure import ErasureCodec, RedundancyScheme
from metadisk.core.errors import AccessError, CoreError, DecodeError, DecryptionError
from metadisk.core.grant import AccessGrant, SharePrefix
from metadisk.core.keys import new_content_key
from metadisk.core.paths import decrypt_path, encrypt_path, object_key
from metadisk.wire.api.buckets import Bucket as BucketRecord
from metadisk.wire.api.objects import ListItem, SegmentOrders, SegmentRekey
from metadisk.wire.api.objects import Object as ObjectRecord

# Objects of at most this much plaintext go to the bridge's database in one call instead of to
# farmers: 4 KiB, whose ciphertext (one block and its 16-byte tag, 4,112 bytes) is exactly the
# bridge's limit; the content key rides in the sealed metadata, outside that count.
INLINE_PLAINTEXT = 4096
_RELOCATE_ATTEMPTS = 3  # a move or copy re-reads an object overwritten meanwhile this many times
_RESUME_VERSION = 1


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Tuning of an `AsyncProject`; the defaults suit a laptop and `metadisk up`.

    ``processes`` picks where encryption and erasure coding run: worker processes over shared
    memory (True), threads (False) or by platform (None); ``workers`` how many.
    """

    sizing: SegmentSizing = field(default_factory=SegmentSizing)
    upload: UploadConfig = field(default_factory=UploadConfig)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    processes: bool | None = None
    workers: int | None = None
    bridge_timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class Bucket:
    """A bucket and the redundancy its objects are stored with."""

    name: str
    profile: str
    redundancy: RedundancyScheme
    created_at: int


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """An object (or, in listings, a common prefix) with its decrypted name and metadata."""

    bucket: str
    key: str  # the plaintext path; a prefix ends with "/"
    is_prefix: bool = False
    size: int = 0
    content_type: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0
    segment_count: int = 0


@dataclass(frozen=True, slots=True)
class ObjectPage:
    """One page of a listing; pass `cursor` back for the next one (None: done)."""

    items: tuple[ObjectInfo, ...]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class Permissions:
    """What a shared grant may do."""

    read: bool = True
    write: bool = False
    list: bool = True
    delete: bool = False


class AsyncProject:
    """The client library's async entry point: buckets and objects under one access grant.

    Example::

        async with await AsyncProject.open(grant) as project:
            await project.create_bucket("photos")
            await project.upload("photos", "2024/cat.jpg", "cat.jpg", content_type="image/jpeg")
            async for item in project.list_objects("photos", "2024/"):
                print(item.key, item.size)
            await project.download("photos", "2024/cat.jpg", "copy.jpg")

    Parameters
    ----------
    grant:
        The access grant (`AccessGrant.parse` of the string a user was given).
    config:
        Tuning; see `ClientConfig`.
    bridge, transport, offload:
        Collaborators to use instead of the defaults (tests, or sharing worker processes
        between projects); the project closes only what it created.
    """

    def __init__(
        self,
        grant: AccessGrant,
        *,
        config: ClientConfig | None = None,
        bridge: BridgeAPI | None = None,
        transport: FarmerTransport | None = None,
        offload: Offload | None = None,
    ) -> None:
        self._grant = grant
        self._config = config or ClientConfig()
        self._owned: list[Any] = []
        if bridge is None:
            bridge = BridgeAPI(
                grant.bridge_url, grant.api_key.serialize(), timeout=self._config.bridge_timeout
            )
            self._owned.append(bridge)
        if transport is None:
            transport = HttpFarmerTransport(self._config.transport)
            self._owned.append(transport)
        if offload is None:
            offload = Offload(processes=self._config.processes, workers=self._config.workers)
            self._owned.append(offload)
        self._bridge = bridge
        self._transport = transport
        self._offload = offload
        self._closed = False

    @classmethod
    async def open(cls, grant: str | AccessGrant, **kwargs: Any) -> AsyncProject:
        """Open a project from an access grant string (``mdg1...``) or a parsed grant."""
        if isinstance(grant, str):
            try:
                grant = AccessGrant.parse(grant.strip())
            except DecodeError as exc:
                raise InvalidArgument(f"not an access grant: {exc}") from exc
        return cls(grant, **kwargs)

    async def __aenter__(self) -> AsyncProject:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections and worker processes this project opened."""
        if self._closed:
            return
        self._closed = True
        for owned in reversed(self._owned):
            await owned.aclose()

    @property
    def grant(self) -> AccessGrant:
        return self._grant

    # -- buckets -----------------------------------------------------------------------------

    async def create_bucket(self, name: str, *, profile: str | None = None) -> Bucket:
        """Create a bucket; `profile` names the bridge's redundancy profile (None: default)."""
        return _bucket(await self._bridge.create_bucket(name, profile))

    async def get_bucket(self, name: str) -> Bucket:
        return _bucket(await self._bridge.get_bucket(name))

    async def list_buckets(self) -> list[Bucket]:
        """Every bucket the grant's API key may reach, in name order."""
        buckets: list[Bucket] = []
        cursor = ""
        while True:
            page = await self._bridge.list_buckets(cursor)
            buckets.extend(_bucket(b) for b in page.buckets)
            if page.next_cursor is None:
                return buckets
            cursor = page.next_cursor

    async def delete_bucket(self, name: str, *, force: bool = False) -> None:
        """Delete a bucket; with `force`, also every object in it."""
        await self._bridge.delete_bucket(name, force=force)

    # -- paths -------------------------------------------------------------------------------

    def _locate(self, bucket: str, path: str) -> tuple[str, bytes]:
        """The encrypted key the bridge knows `path` by, and the object's key."""
        if not isinstance(path, str) or not path:
            raise InvalidArgument("an object path is non-empty text")
        try:
            base, relative = self._grant.encryption.resolve(bucket, path)
            encrypted = encrypt_path(base, relative)
            key = object_key(base, relative)
        except AccessError as exc:
            raise AccessDenied(str(exc)) from exc
        except (ValueError, DecodeError) as exc:
            raise InvalidArgument(str(exc)) from exc
        if base.encrypted_path:
            encrypted = f"{base.encrypted_path}/{encrypted}"
        return encrypted, key

    # -- upload ------------------------------------------------------------------------------

    async def upload(
        self,
        bucket: str,
        path: str,
        source: UploadSource,
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
        progress: ProgressCallback | None = None,
        resume_dir: str | os.PathLike[str] | None = None,
    ) -> ObjectInfo:
        """Encrypt and store `source` at `path`, replacing any object there.

        `source` is a file path, a binary file object, bytes, or an async iterator of bytes.
        `metadata` is stored encrypted with the content type. `progress(done, total)` is called
        as segments are stored (total is None for a stream of unknown length).

        With `resume_dir`, an interrupted upload of the same source to the same path picks up
        where it stopped: the state kept there (a 0600 JSON file, no keys) names the bridge's
        pending upload, and only segments not yet committed are sent again.
        """
        encrypted_key, key = self._locate(bucket, path)
        info = ObjectMetadata(0, content_type, dict(metadata or {}))
        info.encode()  # refuse oversized metadata before reading anything
        reader = SourceReader.open(source)
        try:
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
        finally:
            await reader.aclose()

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
        meta = ObjectMetadata(len(data), info.content_type, info.custom)
        sealed = SealedMetadata.seal(key, meta, segment_key)
        record = await self._bridge.put_inline(
            bucket, encrypted_key, ciphertext, len(data), sealed.encode()
        )
        return _object_info(bucket, path, record, meta)

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
        state = None
        if resume_dir is not None:
            state = _ResumeState.locate(
                Path(resume_dir), self._bridge.url, bucket, encrypted_key, source
            )
        committed: dict[int, SegmentKey] = {}
        stream_id: str | None = None
        scheme: RedundancyScheme | None = None
        segment_size = 0
        if state is not None and state.saved is not None:
            resumed = await self._pending(state)
            if resumed is not None:
                stream_id, scheme, segment_size, committed = resumed
        if stream_id is None or scheme is None:
            upload = await self._bridge.begin_object(bucket, encrypted_key)
            stream_id, scheme = upload.stream_id, upload.redundancy
            in_flight = self._config.upload.segments_in_flight
            segment_size = self._config.sizing.segment_size(scheme, in_flight, reader.size)
            if state is not None:
                state.save(stream_id, segment_size)
        coordinator = _UploadCoordinator(self._bridge, stream_id, scheme)
        pipeline = UploadPipeline(self._transport, self._offload, self._config.upload)
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
            meta = ObjectMetadata(summary.plaintext_size, info.content_type, info.custom)
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
        return _object_info(bucket, path, record, meta)

    async def _pending(
        self, state: _ResumeState
    ) -> tuple[str, RedundancyScheme, int, dict[int, SegmentKey]] | None:
        saved = state.saved
        assert saved is not None
        try:
            pending = await self._bridge.get_upload(saved["stream_id"])
        except NotFound:
            state.clear()  # reclaimed, committed or aborted meanwhile: start over
            return None
        committed = {}
        for segment in pending.segments:
            if segment.encrypted_metadata is None:
                raise ResumeMismatch(f"segment {segment.index} of the upload has no key")
            committed[segment.index] = SegmentKey.decode(segment.encrypted_metadata)
        return pending.stream_id, pending.redundancy, int(saved["segment_size"]), committed

    async def _abort(self, stream_id: str) -> None:
        # Best effort, and shielded: the caller may be here because it was cancelled.
        with contextlib.suppress(ClientError, asyncio.CancelledError):
            await asyncio.shield(self._bridge.abort_upload(stream_id))

    # -- download ----------------------------------------------------------------------------

    async def stat(self, bucket: str, path: str) -> ObjectInfo:
        """The object's size, content type, metadata and times."""
        encrypted_key, key = self._locate(bucket, path)
        record = await self._bridge.get_object(bucket, encrypted_key)
        return _object_info(bucket, path, record, _open_metadata(record, key))

    async def stream(
        self,
        bucket: str,
        path: str,
        *,
        offset: int = 0,
        length: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """Yield the object's plaintext (or bytes [offset, offset + length)) in order.

        Close the iterator (``contextlib.aclosing``) if you stop early, so fetches stop at once.
        """
        opened = await self._open(bucket, path)
        views = self._views(bucket, opened, offset, length, progress)
        async with contextlib.aclosing(views):
            async for view in views:
                yield bytes(view)

    async def download(
        self,
        bucket: str,
        path: str,
        destination: str | os.PathLike[str] | BinaryIO,
        *,
        offset: int = 0,
        length: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        """Write the object (or a byte range of it) to a file path or a binary file object."""
        opened = await self._open(bucket, path)
        views = self._views(bucket, opened, offset, length, progress)
        owned = isinstance(destination, str | os.PathLike)
        if isinstance(destination, str | os.PathLike):
            out: BinaryIO = await asyncio.to_thread(open, destination, "wb")
        else:
            out = destination
        try:
            async with contextlib.aclosing(views):
                async for view in views:
                    await asyncio.to_thread(out.write, view)  # straight from the segment buffer
        finally:
            if owned:
                await asyncio.to_thread(out.close)
        return _object_info(bucket, path, opened.record, opened.meta)

    async def _open(self, bucket: str, path: str) -> _Opened:
        encrypted_key, key = self._locate(bucket, path)
        record = await self._bridge.get_object(bucket, encrypted_key)
        return _Opened(encrypted_key, key, record, _open_metadata(record, key))

    async def _views(
        self,
        bucket: str,
        opened: _Opened,
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
        if total == 0:
            return
        if record.inline_data is not None:
            data = _open_inline(record, key)
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
        pipeline = DownloadPipeline(self._transport, self._offload, self._config.download)
        # Pinned to this version: a concurrent overwrite cannot mix two objects' segments.
        coordinator = _DownloadCoordinator(
            self._bridge, bucket, opened.encrypted_key, record.stream_id
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
                yield view
                if progress is not None:
                    progress(done, total)

    # -- listing, deleting, moving -------------------------------------------------------------

    async def list_page(
        self,
        bucket: str,
        prefix: str = "",
        *,
        recursive: bool = False,
        cursor: str | None = None,
        limit: int = 1000,
    ) -> ObjectPage:
        """One page of the objects (and, unless `recursive`, common prefixes) under `prefix`.

        `prefix` is "" or ends with "/". Names that do not decrypt under this grant's keys
        (written by someone with other keys) are left out.
        """
        if prefix and not prefix.endswith("/"):
            raise InvalidArgument("a listing prefix is empty or ends with '/'")
        try:
            base = self._grant.encryption.path_key(bucket, prefix[:-1])
        except AccessError as exc:
            raise AccessDenied(str(exc)) from exc
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        encrypted_prefix = f"{base.encrypted_path}/" if base.encrypted_path else ""
        page = await self._bridge.list_objects(
            bucket, encrypted_prefix, recursive=recursive, cursor=cursor or "", limit=limit
        )
        items = []
        for record in page.items:
            item = _listed(bucket, prefix, encrypted_prefix, base, record)
            if item is not None:
                items.append(item)
        return ObjectPage(tuple(items), page.next_cursor)

    async def list_objects(
        self, bucket: str, prefix: str = "", *, recursive: bool = False
    ) -> AsyncGenerator[ObjectInfo, None]:
        """Every object (and common prefix) under `prefix`, page after page."""
        cursor: str | None = None
        while True:
            page = await self.list_page(bucket, prefix, recursive=recursive, cursor=cursor)
            for item in page.items:
                yield item
            if page.cursor is None:
                return
            cursor = page.cursor

    async def delete(self, bucket: str, path: str) -> None:
        """Delete the object at `path`; its pieces are removed from farmers in the background."""
        encrypted_key, _ = self._locate(bucket, path)
        await self._bridge.delete_object(bucket, encrypted_key)

    async def move(self, bucket: str, path: str, new_bucket: str, new_path: str) -> ObjectInfo:
        """Rename an object within the project without moving its data.

        Only its small keys change: each segment's content key and the metadata key are
        re-wrapped under the new path's object key.
        """
        return await self._relocate(bucket, path, new_bucket, new_path, copy=False)

    async def copy(self, bucket: str, path: str, new_bucket: str, new_path: str) -> ObjectInfo:
        """Copy an object within the project; both share the stored pieces."""
        return await self._relocate(bucket, path, new_bucket, new_path, copy=True)

    async def _relocate(
        self, bucket: str, path: str, new_bucket: str, new_path: str, *, copy: bool
    ) -> ObjectInfo:
        encrypted_key, key = self._locate(bucket, path)
        new_encrypted_key, new_key = self._locate(new_bucket, new_path)
        for attempt in range(_RELOCATE_ATTEMPTS):
            record = await self._bridge.get_object(bucket, encrypted_key)
            meta = _open_metadata(record, key)
            new_sealed, rekeyed = _rewrapped(record, key, new_key)
            try:
                moved = await self._bridge.move_object(
                    bucket,
                    encrypted_key,
                    new_bucket,
                    new_encrypted_key,
                    new_sealed,
                    rekeyed,
                    copy=copy,
                    stream_id=record.stream_id,  # keys re-wrapped for this version only
                )
            except Conflict as exc:
                if exc.code != "object-changed" or attempt == _RELOCATE_ATTEMPTS - 1:
                    raise
                continue  # overwritten since it was read: re-wrap the new version's keys
            return _object_info(new_bucket, new_path, moved, meta)
        raise AssertionError("unreachable")

    # -- sharing -----------------------------------------------------------------------------

    def share(
        self,
        prefixes: Sequence[SharePrefix | tuple[str, str]],
        permissions: Permissions | None = None,
        *,
        not_before: datetime.datetime | int | None = None,
        not_after: datetime.datetime | int | None = None,
    ) -> str:
        """A restricted access grant string for `prefixes` (bucket, path prefix) only.

        The recipient gets the API key narrowed to those prefixes, `permissions` and times, and
        the encryption keys of those prefixes only: nothing above or beside them.

        Example::

            grant = project.share([("photos", "2024")], Permissions(read=True, list=True),
                                  not_after=datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC))
        """
        allowed = permissions or Permissions()
        shares = [p if isinstance(p, SharePrefix) else SharePrefix(*p) for p in prefixes]
        try:
            shared = self._grant.share(
                shares,
                read=allowed.read,
                write=allowed.write,
                list=allowed.list,
                delete=allowed.delete,
                not_before=_unix(not_before),
                not_after=_unix(not_after),
            )
        except AccessError as exc:
            raise AccessDenied(str(exc)) from exc
        except (ValueError, CoreError) as exc:
            raise InvalidArgument(str(exc)) from exc
        return shared.serialize()


@dataclass(frozen=True, slots=True)
class _Opened:
    """One version of an object, as `get object` described it, with its keys."""

    encrypted_key: str
    key: bytes
    record: ObjectRecord
    meta: ObjectMetadata


class _UploadCoordinator:
    """The pipeline's `UploadCoordinator` over the bridge API for one pending upload."""

    def __init__(self, bridge: BridgeAPI, stream_id: str, scheme: RedundancyScheme) -> None:
        self._bridge = bridge
        self._stream_id = stream_id
        self._codec = ErasureCodec(scheme.k, scheme.n)

    async def begin_segment(self, index: int, ciphertext_size: int) -> Sequence[PieceTarget]:
        piece_size = self._codec.piece_size(ciphertext_size)
        orders = await self._bridge.begin_segment(
            self._stream_id, index, ciphertext_size, piece_size
        )
        return _targets(orders)

    async def replace_pieces(
        self, index: int, failed: Sequence[PieceTarget]
    ) -> Sequence[PieceTarget]:
        orders = await self._bridge.replace_pieces(
            self._stream_id, index, [t.number for t in failed], []
        )
        return _targets(orders)

    async def commit_segment(self, segment: CommittedSegment) -> None:
        receipts = [segment.receipts[n] for n in sorted(segment.receipts)]
        await self._bridge.commit_segment(
            self._stream_id,
            segment.index,
            receipts,
            segment.plaintext_size,
            segment.encrypted_key,
        )


class _DownloadCoordinator:
    def __init__(self, bridge: BridgeAPI, bucket: str, key: str, stream_id: str) -> None:
        self._bridge = bridge
        self._bucket = bucket
        self._key = key
        self._stream_id = stream_id

    async def download_segment(
        self, index: int, exclude: Collection[int] = ()
    ) -> Sequence[PieceSource]:
        orders = await self._bridge.download_segment(
            self._bucket, self._key, index, self._stream_id, exclude=exclude
        )
        return [
            PieceSource(o.piece_number, o.order_limit, o.address, o.piece_hash)
            for o in orders.order_limits
        ]


class _ResumeState:
    """Where an interrupted upload left off: a 0600 JSON file per (bridge, bucket, key, source).

    It holds no keys: the stream id, the segment size and what identifies the source. The keys
    of committed segments stay wrapped at the bridge, and the upload re-derives the object key.
    """

    def __init__(self, path: Path, identity: dict[str, Any]) -> None:
        self.path = path
        self.identity = identity
        self.saved: dict[str, Any] | None = None
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if (
            isinstance(raw, dict)
            and raw.get("version") == _RESUME_VERSION
            and {k: raw.get(k) for k in identity} == identity
        ):
            self.saved = raw

    @classmethod
    def locate(
        cls, directory: Path, bridge_url: str, bucket: str, key: str, source: UploadSource
    ) -> _ResumeState:
        identity: dict[str, Any] = {"bridge": bridge_url, "bucket": bucket, "key": key}
        if isinstance(source, str | os.PathLike):
            stat = os.stat(source)
            identity["source"] = os.path.abspath(source)
            identity["size"] = stat.st_size
            identity["mtime_ns"] = stat.st_mtime_ns
        name = hashlib.blake2b(
            json.dumps([bridge_url, bucket, key]).encode(), digest_size=16
        ).hexdigest()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(directory / f"upload-{name}.json", identity)

    def save(self, stream_id: str, segment_size: int) -> None:
        record = {
            "version": _RESUME_VERSION,
            **self.identity,
            "stream_id": stream_id,
            "segment_size": segment_size,
        }
        temp = self.path.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(record, out)
        os.replace(temp, self.path)
        self.saved = record

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.saved = None


def _targets(orders: SegmentOrders) -> list[PieceTarget]:
    """Where each piece goes, with the farmer key its receipt must verify under.

    The bridge names each farmer's key in its PUT order limits; the upload checks that the key
    hashes to the order limit's node id, so a lying bridge cannot make a forged receipt count.
    """
    targets = []
    for order in orders.order_limits:
        if order.public_key is None:
            raise BridgeError(
                f"the order limit for piece {order.piece_number} names no farmer key",
                code="bad-response",
            )
        targets.append(
            PieceTarget(order.piece_number, order.order_limit, order.address, order.public_key)
        )
    return targets


def _rewrapped(
    record: ObjectRecord, key: bytes, new_key: bytes
) -> tuple[bytes | None, list[SegmentRekey]]:
    """The object's sealed metadata and segment keys re-wrapped from `key` to `new_key`."""
    sealed = _sealed(record)
    rekeyed = []
    try:
        for segment in record.segments:
            if segment.encrypted_metadata is None:
                raise IntegrityFailure(f"segment {segment.index} has no key")
            old = SegmentKey.decode(segment.encrypted_metadata)
            new = old.rewrap(key, new_key, segment.index)
            rekeyed.append(SegmentRekey(index=segment.index, encrypted_metadata=new.encode()))
        new_sealed = None if sealed is None else sealed.rewrap(key, new_key).encode()
    except (DecryptionError, DecodeError) as exc:
        raise IntegrityFailure(f"the object's keys do not open: {exc}") from exc
    return new_sealed, rekeyed


def _bucket(record: BucketRecord) -> Bucket:
    return Bucket(record.name, record.profile, record.redundancy, record.created_at)


def _sealed(record: ObjectRecord) -> SealedMetadata | None:
    if record.encrypted_metadata is None:
        return None
    try:
        return SealedMetadata.decode(record.encrypted_metadata)
    except DecodeError as exc:
        raise IntegrityFailure(f"the object's metadata is malformed: {exc}") from exc


def _open_metadata(record: ObjectRecord, key: bytes) -> ObjectMetadata:
    sealed = _sealed(record)
    if sealed is None:
        return ObjectMetadata(record.plain_size)
    try:
        return sealed.open(key)
    except (DecryptionError, DecodeError) as exc:
        raise IntegrityFailure(f"the object's metadata does not decrypt: {exc}") from exc


def _open_inline(record: ObjectRecord, key: bytes) -> bytes:
    sealed = _sealed(record)
    if sealed is None or sealed.inline_key is None or record.inline_data is None:
        raise IntegrityFailure("an inline object without its key")
    try:
        content_key = sealed.inline_key.content_key(key, 0)
        return content.decrypt_segment(content_key, 0, record.inline_data)
    except DecryptionError as exc:
        raise IntegrityFailure(f"the object does not decrypt: {exc}") from exc


def _object_info(bucket: str, path: str, record: ObjectRecord, meta: ObjectMetadata) -> ObjectInfo:
    return ObjectInfo(
        bucket=bucket,
        key=path,
        size=record.plain_size,
        content_type=meta.content_type,
        metadata=dict(meta.custom),
        created_at=record.created_at,
        segment_count=record.segment_count,
    )


def _listed(
    bucket: str, prefix: str, encrypted_prefix: str, base: Any, record: ListItem
) -> ObjectInfo | None:
    relative = record.key[len(encrypted_prefix) :]
    try:
        if record.is_prefix:
            name = decrypt_path(base, relative[:-1]) + "/"
            return ObjectInfo(bucket, prefix + name, is_prefix=True)
        name = decrypt_path(base, relative)
    except DecryptionError:
        return None  # a name under keys this grant does not hold
    meta = ObjectMetadata(record.plain_size or 0)
    if record.encrypted_metadata is not None:
        with contextlib.suppress(DecryptionError, DecodeError):
            meta = SealedMetadata.decode(record.encrypted_metadata).open(object_key(base, name))
    return ObjectInfo(
        bucket=bucket,
        key=prefix + name,
        size=record.plain_size or 0,
        content_type=meta.content_type,
        metadata=dict(meta.custom),
        created_at=record.created_at or 0,
    )


def _unix(moment: datetime.datetime | int | None) -> int | None:
    if moment is None or isinstance(moment, int):
        return moment
    if moment.tzinfo is None:
        raise InvalidArgument("give times with a timezone (e.g. datetime.UTC)")
    return int(moment.timestamp())


__all__ = [
    "AsyncProject",
    "Bucket",
    "ClientConfig",
    "ObjectInfo",
    "ObjectPage",
    "Permissions",
]
