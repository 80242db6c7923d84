"""`AsyncProject`: everything a front end does with one access grant, end-to-end encrypted.

The project turns plaintext paths into encrypted keys (`metadisk.core.paths`), metadata into
sealed blobs (`metadisk.client.formats`), and runs the transfer pipelines against the bridge
(`metadisk.client.bridge_api`) and the farmers (`metadisk.client.farmer_transport`). Nothing
leaves the machine unencrypted but bucket names, sizes and times.

This module is the facade; the work sits below it:

- `records`: what it returns (`Bucket`, `ObjectInfo`, ...), made from the bridge's answers;
- `transfers`: an object's bytes, inline at the bridge or through the pipelines, with `resume`
  for interrupted uploads and `coordinators` for the bridge's half of each pipeline;
- `relocate`: move and copy, which re-wrap keys and move no piece.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from metadisk.client.bridge_api import BridgeAPI
from metadisk.client.config import ClientConfig
from metadisk.client.errors import AccessDenied, InvalidArgument
from metadisk.client.formats import ObjectMetadata
from metadisk.client.records import (
    Bucket,
    ObjectInfo,
    ObjectPage,
    PartWritten,
    PendingUploadInfo,
    Permissions,
    bucket_from,
    listed,
    object_info,
    open_metadata,
)
from metadisk.client.relocate import relocate
from metadisk.client.segmenter import SourceReader, UploadSource
from metadisk.core.errors import AccessError, CoreError, DecodeError, DecryptionError
from metadisk.core.grant import AccessGrant, SharePrefix
from metadisk.core.paths import PathKey, decrypt_path, encrypt_path, object_key

if TYPE_CHECKING:
    # The transfer pipelines, imported when the first transfer needs them (`_pipelines`): a
    # listing, a stat or a move never does, and `metadisk ls` starts without them.
    from metadisk.client.farmer_transport import FarmerTransport
    from metadisk.client.offload import Offload
    from metadisk.client.transfers import Opened, Transfers
    from metadisk.client.upload import ProgressCallback
    from metadisk.wire.api.accounts import ProjectUsage


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
        self._bridge = bridge
        self._transport = transport
        self._offload = offload
        self._transfers: Transfers | None = None
        self._closed = False

    def _pipelines(self) -> Transfers:
        """The transfer pipelines, built on first use with the transport and offload they need.

        Synchronous, with no await between the check and the assignment: on one event loop no
        other coroutine runs in between, so two first transfers at once build one set.
        """
        if self._closed:
            raise RuntimeError("this project is closed")
        if self._transfers is not None:
            return self._transfers
        from metadisk.client.farmer_transport import HttpFarmerTransport, Suspects
        from metadisk.client.offload import Offload
        from metadisk.client.transfers import Transfers

        if self._transport is None:
            self._transport = HttpFarmerTransport(self._config.transport)
            self._owned.append(self._transport)
        if self._offload is None:
            self._offload = Offload(processes=self._config.processes, workers=self._config.workers)
            self._owned.append(self._offload)
        self._transfers = Transfers(
            self._bridge,
            self._transport,
            self._offload,
            sizing=self._config.sizing,
            upload=self._config.upload,
            download=self._config.download,
            suspects=Suspects(self._config.suspect_for),
        )
        return self._transfers

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
        if self._transfers is not None:  # segment reports on their way, before the bridge closes
            await self._transfers.aclose()
        for owned in reversed(self._owned):
            await owned.aclose()

    @property
    def grant(self) -> AccessGrant:
        return self._grant

    async def usage(self) -> ProjectUsage:
        """The project's storage, egress (this month), buckets, objects and segments against
        its limits, and what pending uploads reserve; needs a key for every bucket."""
        return await self._bridge.usage()

    # -- buckets -----------------------------------------------------------------------------

    async def create_bucket(self, name: str, *, profile: str | None = None) -> Bucket:
        """Create a bucket; `profile` names the bridge's redundancy profile (None: default)."""
        return bucket_from(await self._bridge.create_bucket(name, profile))

    async def get_bucket(self, name: str) -> Bucket:
        return bucket_from(await self._bridge.get_bucket(name))

    async def list_buckets(self) -> list[Bucket]:
        """Every bucket the grant's API key may reach, in name order."""
        buckets: list[Bucket] = []
        cursor = ""
        while True:
            page = await self._bridge.list_buckets(cursor)
            buckets.extend(bucket_from(b) for b in page.buckets)
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
        size: int | None = None,
    ) -> ObjectInfo:
        """Encrypt and store `source` at `path`, replacing any object there.

        `source` is a file path, a binary file object, bytes, or an async iterator of bytes.
        `metadata` is stored encrypted with the content type. `progress(done, total)` is called
        as segments are stored (total is None for a stream of unknown length). `size` is the
        source's length when the caller knows it and the source cannot tell (a stream with a
        Content-Length): segments are sized to it, and a source of another length is
        `InvalidArgument`.

        With `resume_dir`, an interrupted upload of the same source to the same path picks up
        where it stopped: the state kept there (a 0600 JSON file, no keys) names the bridge's
        pending upload, and only segments not yet committed are sent again.
        """
        encrypted_key, key = self._locate(bucket, path)
        info = ObjectMetadata(0, content_type, dict(metadata or {}))
        info.encode()  # refuse oversized metadata before reading anything
        reader = SourceReader.open(source, size)
        try:
            return await self._pipelines().upload(
                bucket, path, encrypted_key, key, reader, info, progress, source, resume_dir
            )
        finally:
            await reader.aclose()

    # -- uploads in parts (S3 multipart) -------------------------------------------------------

    async def begin_upload(self, bucket: str, path: str) -> str:
        """Begin a pending upload to `path`; returns its id (the stream id).

        Store its parts with `upload_part` (at once if you like), then `commit_upload` the
        ones that make the object, or `abort_upload`.
        """
        encrypted_key, _ = self._locate(bucket, path)
        return await self._pipelines().begin_upload(bucket, encrypted_key)

    async def upload_part(
        self,
        bucket: str,
        path: str,
        upload_id: str,
        source: UploadSource,
        *,
        first_index: int,
        size: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> PartWritten:
        """Store `source` as segments first_index, first_index+1, ... of the pending upload.

        Segment indices bind each segment's encryption, so a part's segments keep them: give
        each part a range of its own (e.g. part number times 2**17); an empty part stores no
        segment. `size`: as for `upload`. Parts of one upload may be stored concurrently.
        """
        encrypted_key, key = self._locate(bucket, path)
        reader = SourceReader.open(source, size)
        try:
            return await self._pipelines().upload_part(
                bucket, encrypted_key, key, upload_id, reader, first_index, progress
            )
        finally:
            await reader.aclose()

    async def commit_upload(
        self,
        bucket: str,
        path: str,
        upload_id: str,
        segments: Sequence[int],
        *,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
        checksum: bytes | None = None,
    ) -> ObjectInfo:
        """Make the pending upload the object at `path`, made of `segments` (the indices of
        the parts' segments, strictly increasing) in that order; the upload's other segments
        are dropped and their pieces deleted. A missing one is `BridgeError` with code
        ``segments-missing``. No segment at all (only empty parts) makes an empty object.

        Parts are hashed apart, so the object has no whole-plaintext checksum unless one is
        given: an object of one part can pass its `PartWritten.checksum`, and downloads then
        check the whole as after `upload`; otherwise they check each segment only.
        """
        encrypted_key, key = self._locate(bucket, path)
        info = _new_metadata(content_type, metadata or {}, checksum)
        return await self._pipelines().commit_upload(
            bucket, path, encrypted_key, key, upload_id, segments, info
        )

    # -- download ----------------------------------------------------------------------------

    async def stat(self, bucket: str, path: str) -> ObjectInfo:
        """The object's size, content type, metadata and times."""
        encrypted_key, key = self._locate(bucket, path)
        record = await self._bridge.get_object(bucket, encrypted_key)
        return object_info(bucket, path, record, open_metadata(record, key))

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
        views = self._pipelines().views(bucket, opened, offset, length, progress)
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
        views = self._pipelines().views(bucket, opened, offset, length, progress)
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
        return object_info(bucket, path, opened.record, opened.meta)

    async def _open(self, bucket: str, path: str) -> Opened:
        from metadisk.client.transfers import Opened

        encrypted_key, key = self._locate(bucket, path)
        record = await self._bridge.get_object(bucket, encrypted_key)
        return Opened(encrypted_key, key, record, open_metadata(record, key))

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
        base, encrypted_prefix = self._folder(bucket, prefix)
        page = await self._bridge.list_objects(
            bucket, encrypted_prefix, recursive=recursive, cursor=cursor or "", limit=limit
        )
        items = []
        for record in page.items:
            item = listed(bucket, prefix, encrypted_prefix, base, record)
            if item is not None:
                items.append(item)
        return ObjectPage(tuple(items), page.next_cursor)

    async def list_uploads(self, bucket: str, prefix: str = "") -> list[PendingUploadInfo]:
        """The pending (interrupted or running) uploads below `prefix` ("" or ending in "/"),
        oldest first, up to the bridge's 1,000; names this grant cannot decrypt are left out."""
        base, encrypted_prefix = self._folder(bucket, prefix)
        found = []
        for upload in await self._bridge.list_uploads_under(bucket, encrypted_prefix):
            try:
                name = decrypt_path(base, upload.key[len(encrypted_prefix) :])
            except DecryptionError:
                continue
            found.append(
                PendingUploadInfo(
                    bucket, prefix + name, upload.stream_id, upload.created_at, upload.deadline
                )
            )
        return found

    async def abort_upload(self, stream_id: str) -> None:
        """Abort a pending upload: its reservation is released and its pieces deleted."""
        await self._bridge.abort_upload(stream_id)

    def _folder(self, bucket: str, prefix: str) -> tuple[PathKey, str]:
        if prefix and not prefix.endswith("/"):
            raise InvalidArgument("a listing prefix is empty or ends with '/'")
        try:
            base = self._grant.encryption.path_key(bucket, prefix[:-1])
        except AccessError as exc:
            raise AccessDenied(str(exc)) from exc
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        return base, f"{base.encrypted_path}/" if base.encrypted_path else ""

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

    async def copy(
        self,
        bucket: str,
        path: str,
        new_bucket: str,
        new_path: str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Copy an object within the project; both share the stored pieces.

        With `content_type` or `metadata`, the copy's metadata is replaced: each one given
        replaces the original's (size and checksum are kept). A copy onto the object's own
        path replaces its metadata in place (S3's copy with ``x-amz-metadata-directive:
        REPLACE``).
        """
        change = None
        if content_type is not None or metadata is not None:
            custom = None if metadata is None else dict(metadata)
            _new_metadata(content_type or "", custom or {})

            def change(old: ObjectMetadata) -> ObjectMetadata:
                return ObjectMetadata(
                    old.size,
                    old.content_type if content_type is None else content_type,
                    old.custom if custom is None else custom,
                    old.checksum,
                )

        return await self._relocate(bucket, path, new_bucket, new_path, copy=True, change=change)

    async def _relocate(
        self,
        bucket: str,
        path: str,
        new_bucket: str,
        new_path: str,
        *,
        copy: bool,
        change: Callable[[ObjectMetadata], ObjectMetadata] | None = None,
    ) -> ObjectInfo:
        encrypted_key, key = self._locate(bucket, path)
        new_encrypted_key, new_key = self._locate(new_bucket, new_path)
        moved, meta = await relocate(
            self._bridge,
            bucket,
            encrypted_key,
            key,
            new_bucket,
            new_encrypted_key,
            new_key,
            copy=copy,
            new_metadata=change,
        )
        return object_info(new_bucket, new_path, moved, meta)

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


def _new_metadata(
    content_type: str, custom: Mapping[str, str], checksum: bytes | None = None
) -> ObjectMetadata:
    """Metadata to seal (its size set later); `InvalidArgument` for what cannot be stored,
    before any I/O."""
    try:
        info = ObjectMetadata(0, content_type, dict(custom), checksum)
        info.encode()
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from exc
    return info


def _unix(moment: datetime.datetime | int | None) -> int | None:
    if moment is None or isinstance(moment, int):
        return moment
    if moment.tzinfo is None:
        raise InvalidArgument("give times with a timezone (e.g. datetime.UTC)")
    return int(moment.timestamp())


__all__ = ["AsyncProject", "ClientConfig"]
